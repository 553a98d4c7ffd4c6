"""Optional ``torch.compile`` of an agent's loss functions, falling back to eager with a warning.

``learn(..., compile=...)`` takes ``False`` (default: eager), ``True`` (the ``"inductor"``
backend) or the name of any ``torch.compile`` backend. Only the forward passes of the
losses are compiled (with their backward, through AOTAutograd); optimiser steps, target
updates and the NaN guard stay eager, so a compiled step updates exactly the same
state as an eager one, to float rounding (compiled kernels fuse and reorder
arithmetic: the numbers agree to about 1e-6, not bit for bit).

Why eager is the default on CPU and on GPU: eager is bit-reproducible, and on this
project's 2-core CPU machine compiling bought little per step for tens of seconds of
compiling before the first step (seconds once inductor's cache is warm). GTP's CPU step
is bound by its matrix products, which compiling does not reduce. On a GPU, where
launches are the cost, compiling fuses them: with the step replayed from a CUDA graph
(:mod:`agents.steps`) it made a GTP step markedly faster on an H100, again for tens of
seconds of compiling. It stays opt-in there too: compiling costs that start-up and
recompiles per agent, and the graph alone gives most of the speed. The measured speeds
are on the Results page of the documentation.

If compiling fails (no C++ compiler for inductor on CPU, an unsupported device or
Python, an unknown backend name), the first call warns naming the ``compile`` option and
the error, and the function runs eagerly from then on.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch


def compile_backend(compile: Any) -> str | None:
    """The backend name for ``learn``'s ``compile`` option: None (eager), ``"inductor"`` for True, or the string.

    Raises ``ValueError`` naming ``compile`` for anything else.
    """
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor"
    if isinstance(compile, str) and compile:
        return compile
    raise ValueError(f"compile must be False, True or a torch.compile backend name; got {compile!r}")


class CompiledOrEager:
    """``function`` compiled with ``backend`` (None: eager), run eagerly after a failed compile.

    Args:
        function: the eager function (e.g. a bound method computing losses).
        backend: a ``torch.compile`` backend name, or None for eager only.
    """

    def __init__(self, function: Callable[..., Any], backend: str | None):
        self.eager = function
        self.backend = backend
        self.compiled: Callable[..., Any] | None = None
        if backend is not None:
            try:
                self.compiled = torch.compile(function, backend=backend, dynamic=False)
            except Exception as error:  # an unsupported Python or torch build refuses at once
                self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        warnings.warn(
            f"compile={self.backend!r}: torch.compile cannot compile here ({type(error).__name__}: {error}); "
            "training continues eagerly",
            RuntimeWarning,
            stacklevel=3,
        )
        self.compiled = None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as error:  # inductor without a compiler, an unknown backend, ...
                self._fall_back(error)
        return self.eager(*args)
