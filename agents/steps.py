"""How ``learn`` takes its gradient steps: one by one from Python, or replaying a CUDA graph.

:class:`EagerSteps` is the reference: each step draws a minibatch, runs the agent's
``_train_step`` and sums its metrics on the device (read once per log interval).

:class:`GraphedSteps` (``learn(cuda_graph=True)``, the default on CUDA devices) captures the whole step once in a
``torch.cuda.CUDAGraph`` (minibatch gather, losses, backward passes, gradient clipping,
Adam, EMA updates, metric sums) and then replays it: a step is one launch instead of
several hundred small ones from Python, the technique of pytorch-labs' LeanRL for SAC
and TD3. With networks of width 256 on batches of 256, launching kernels costs more
than running them, so this is where a GPU's time goes (the GPU speeds on the Results page of the documentation).

It computes the same steps as :class:`EagerSteps`, in the same order and from the same
random streams: the minibatch indices come from the agent's numpy generator, drawn on
the host exactly as eager steps draw them and copied into the graph's index buffer, and
the noise from the agent's torch generator, registered with the graph so that replays
advance it as eager draws would. Adam runs capturable (its step count and bias
correction on the device) and fused (one kernel for all parameters), which rounds in
the last bits differently, so a graphed run follows the eager one to float rounding,
not bit for bit (``tests/test_steps.py``: the weights after 40 steps agree to 1e-4).

What differs, and why:

- **Warm-up.** The first ``WARMUP_STEPS`` steps run eagerly (on a side stream, as
  CUDA graph capture requires: lazy initialisations and Adam's state must exist
  before capture). They are ordinary training steps.
- **Recapture.** A graph is bound to its tensors and shapes; whenever the agent's
  :meth:`~agents.base.OfflineAgent._graph_key` changes (GTP: the number of noise levels
  of Eq. 76, a handful of times in a run) a new graph is captured.
- **The non-finite-loss guard.** A step cannot stop halfway inside a graph. Each
  replay first copies the training state (weights, EMA copies, Adam's moments and
  step counts) to a backup, and records whether each checked loss is finite; after
  the replay the flags are read (the one host synchronisation per step) and, if a loss
  was not finite, the backup is copied back before :class:`~agents.errors.NonFiniteLossError`
  is raised. So ``learn`` saves the state of the previous step as "last good", as it
  does eagerly. (The random generators have advanced past the failed step.)
- **Version counters.** A replay writes the weights without bumping their tensors'
  version counters, so after every replay the agent's
  :meth:`~agents.base.OfflineAgent._weights_changed` drops caches keyed by them.
- Optimisers are switched to their capturable, fused form for the call and back to
  :data:`ORDINARY_FORM` afterwards; checkpoints are always written in the ordinary form.

If the device is not CUDA, or capture fails (an op that synchronises with the host, an
unsupported torch build), training continues eagerly with a warning naming
``cuda_graph``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from agents.compilation import compile_backend
from agents.errors import NonFiniteLossError

if TYPE_CHECKING:
    from agents.base import OfflineAgent

WARMUP_STEPS = 3
"""Eager steps before the first capture (PyTorch's documented whole-network capture uses 3)."""


class EagerSteps:
    """Gradient steps from Python, one ``_train_step`` each; metrics summed on the device.

    Args:
        agent: the agent to train (its dataset attached).
    """

    restores_whole_step = False
    """A non-finite loss leaves the updates its step made before it (see :class:`~agents.errors.NonFiniteLossError`)."""

    def __init__(self, agent: "OfflineAgent"):
        self.agent = agent
        self.sums: dict[str, torch.Tensor | float] = {}
        self.count = 0

    def step(self) -> None:
        """One gradient step (raises :class:`~agents.errors.NonFiniteLossError` before a non-finite update)."""
        agent = self.agent
        metrics = agent._train_step(agent.sample_batch(agent.config.batch_size))
        for name, value in metrics.items():
            # Summed where they are (in float64: the same sums as Python floats), read per log interval.
            value = value.detach().double() if isinstance(value, torch.Tensor) else value
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        """Each metric's mean over the steps since the last call (reads the device once)."""
        means = {name: float(value) / self.count for name, value in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means

    def close(self) -> None:
        """Nothing to release."""


ORDINARY_FORM = {"capturable": False, "fused": None, "foreach": None}
"""Adam's defaults for how it runs, which the agents' optimisers are made with and saved in."""


def has_graph_modes(group: dict) -> bool:
    """Whether an optimiser's param group has Adam's capturable and fused modes (the keys of :data:`ORDINARY_FORM`)."""
    return set(ORDINARY_FORM) <= set(group)


def make_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Switch an Adam-style optimiser to its capturable, fused form (or back to :data:`ORDINARY_FORM`).

    Capturable optimisers keep the step count on the parameters' device (a CUDA graph
    cannot read a host number); the ordinary form keeps it on the CPU. Fused: one
    kernel updates every parameter (fewer launches in the graph; the same update to
    float rounding).
    """
    for group in optimizer.param_groups:
        if not has_graph_modes(group):
            raise ValueError(f"cuda_graph: {type(optimizer).__name__} has no capturable, fused mode")
        group.update({"capturable": True, "fused": True, "foreach": False} if capturable else ORDINARY_FORM)
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].to(param.device if capturable else "cpu")


class GraphedSteps(EagerSteps):
    """Gradient steps replayed from a CUDA graph of the whole step (see the module docstring).

    Args:
        agent: the agent to train, on a CUDA device.
    """

    restores_whole_step = True
    """Whether the last step was a replay, whose non-finite loss restores the previous step's state (warm-up and
    fallback steps run eagerly: False)."""

    def __init__(self, agent: "OfflineAgent"):
        super().__init__(agent)
        if agent.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device; this agent is on {agent.device}")
        batch = agent.config.batch_size
        self.host_index = torch.empty(batch, dtype=torch.long).pin_memory()
        self.index = torch.zeros(batch, dtype=torch.long, device=agent.device)
        self.copied = torch.cuda.Event()
        self.side_stream = torch.cuda.Stream(agent.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key = None
        self.warm_steps = 0
        self.failed = False
        self.names: list[str] | None = None
        self.device_sums: torch.Tensor | None = None
        self.checked: list[str] = []
        self.finite: torch.Tensor | None = None
        self.loss_values: torch.Tensor | None = None
        self.state: list[torch.Tensor] = []
        self.backup: list[torch.Tensor] = []
        self.switched = all(has_graph_modes(g) for o in agent._optimizers().values() for g in o.param_groups)
        if not self.switched:
            warnings.warn(
                "cuda_graph: an optimiser of this agent has no capturable, fused mode (Adam's); training eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self.failed = True
        for optimizer in agent._optimizers().values() if self.switched else ():
            make_capturable(optimizer, True)

    # -------------------------------------------------------------- stepping
    def step(self) -> None:
        """One gradient step: eager while warming up, else a replay (capturing first if needed)."""
        key = self.agent._graph_key()
        if self.graph is None or key != self.key:
            if self.failed or self.warm_steps < WARMUP_STEPS:
                self._eager_step()
                return
            self._capture(key)
            if self.graph is None:  # capture failed (warned): eager from now on
                self.failed = True
                self._eager_step()
                return
        self._load_index()
        self.restores_whole_step = True
        self.graph.replay()
        finite = self.finite.cpu()  # the one synchronisation per step
        self.agent._weights_changed()
        if not bool(finite.all()):
            with torch.no_grad():
                torch._foreach_copy_(self.state, self.backup)
            self.agent._weights_changed()
            bad = int((~finite).nonzero()[0, 0])
            raise NonFiniteLossError(self.checked[bad], float(self.loss_values[bad]))
        self.count += 1

    def _load_index(self) -> None:
        """The next minibatch's indices, drawn on the host as eager steps draw them, into the graph's buffer."""
        agent = self.agent
        self.copied.synchronize()  # the last copy out of the pinned buffer is done before it is rewritten
        self.host_index.numpy()[:] = agent._batch_indices(agent.config.batch_size)
        self.index.copy_(self.host_index, non_blocking=True)
        self.copied.record()

    def _eager_step(self) -> None:
        self.restores_whole_step = False
        with torch.cuda.stream(self.side_stream):
            self.side_stream.wait_stream(torch.cuda.current_stream())
            self._load_index()
            metrics = self.agent._train_step(self.agent._batch_at(self.index))
            self._accumulate(metrics)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        self.warm_steps += 1
        self.count += 1

    def _accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        if self.names is None:
            self.names = list(metrics)
            self.device_sums = torch.zeros(len(self.names), dtype=torch.float64, device=self.agent.device)
        self.device_sums.add_(torch.stack([metrics[name].detach().reshape(()).double() for name in self.names]))

    # -------------------------------------------------------------- capture
    def _capture(self, key) -> None:
        agent = self.agent
        self.graph = None  # frees the old graph's memory before the new capture
        torch.cuda.synchronize(agent.device)
        if not self.state:
            self.state = training_state_tensors(agent)
            # detached: a clone of a parameter would keep its autograd node alive, bound to this stream
            self.backup = [tensor.detach().clone() for tensor in self.state]
        for optimizer in agent._optimizers().values():
            optimizer.zero_grad(set_to_none=True)
        # Caches filled since the last replay (an evaluation, a checkpoint's fit) would be
        # read by the capture instead of recorded into it.
        agent._weights_changed()
        graph = torch.cuda.CUDAGraph()
        generator_state = agent.generator.get_state()
        agent._finite_flags = []
        try:
            graph.register_generator_state(agent.generator)
            with torch.cuda.graph(graph):
                with torch.no_grad():
                    torch._foreach_copy_(self.backup, self.state)
                metrics = agent._train_step(agent._batch_at(self.index))
                self._accumulate(metrics)
                flags = agent._finite_flags
                self.checked = [name for name, _ in flags]
                losses = torch.stack([loss.detach().float().reshape(()) for _, loss in flags])
                self.finite = torch.isfinite(losses)
                self.loss_values = losses
        except Exception as error:  # an op that synchronises, an unsupported build, ...
            cause = error.__context__ or error  # ending a broken capture raises anew, hiding the op that broke it
            warnings.warn(
                f"cuda_graph=True: capturing the training step failed ({type(cause).__name__}: {cause}); "
                "training continues eagerly",
                RuntimeWarning,
                stacklevel=4,
            )
            for optimizer in agent._optimizers().values():
                optimizer.zero_grad(set_to_none=True)
            # A generator registered with a failed capture stays in capture mode: continue with a fresh one.
            agent.generator = torch.Generator(device=agent.device)
            agent.generator.set_state(generator_state)
            torch.cuda.synchronize(agent.device)
            return
        finally:
            agent._finite_flags = None
            agent._weights_changed()
        self.graph, self.key = graph, key

    def means(self) -> dict[str, float]:
        """Each metric's mean over the steps since the last call (reads the device once)."""
        if not self.count or self.device_sums is None:
            self.count = 0
            return {}
        sums = self.device_sums.tolist()
        self.device_sums.zero_()
        means = {name: value / self.count for name, value in zip(self.names, sums)}
        self.count = 0
        return means

    def close(self) -> None:
        """Release the graph and return the optimisers to their ordinary (non-capturable) form."""
        self.graph = None
        torch.cuda.synchronize(self.agent.device)
        for optimizer in self.agent._optimizers().values() if self.switched else ():
            make_capturable(optimizer, False)
        self.agent._weights_changed()


def training_state_tensors(agent: "OfflineAgent") -> list[torch.Tensor]:
    """Every tensor a training step writes: the modules' parameters and buffers, and the optimisers' states."""
    tensors = [t for module in agent._modules().values() for t in (*module.parameters(), *module.buffers())]
    for optimizer in agent._optimizers().values():
        for state in optimizer.state.values():
            tensors += [value for value in state.values() if isinstance(value, torch.Tensor)]
    return tensors


def training_steps(agent: "OfflineAgent", cuda_graph: bool | str, compile: bool | str | None = None) -> EagerSteps:
    """The stepper ``learn`` uses: :class:`GraphedSteps` or :class:`EagerSteps`.

    ``cuda_graph``: True, False or ``"auto"`` (graphs on a CUDA device, eager
    elsewhere: graphs are where a GPU's speed is, and a CPU has no use for them).
    ``True`` on a device without CUDA warns and steps eagerly, as it does for an agent
    class that overrides ``sample_batch`` (a graph replays ``_batch_indices`` /
    ``_batch_at``, the two halves a subclass should override instead).

    ``compile``: also set the agent's losses to compiled or eager first, as
    ``learn(compile=...)`` does (:mod:`agents.compilation`); None leaves them as they
    are. With it, the stepper is ``learn``'s steps outside ``learn``, e.g. to time one
    step: each ``step()`` trains on the agent's next minibatch, and the caller advances
    ``agent.num_timesteps`` where the agent's schedule depends on it.
    """
    if compile is not None:
        agent._use_compile(compile_backend(compile))
    if cuda_graph == "auto":
        cuda_graph = agent.device.type == "cuda"
    if not cuda_graph:
        return EagerSteps(agent)
    if not agent._samples_in_halves:
        warnings.warn(
            f"cuda_graph: {type(agent).__name__} overrides sample_batch, which a captured step cannot call "
            "(it draws through _batch_indices and _batch_at: override those instead); training eagerly",
            RuntimeWarning,
            stacklevel=3,
        )
        return EagerSteps(agent)
    if agent.device.type != "cuda":
        warnings.warn(
            f"cuda_graph=True: the agent is on {agent.device}, CUDA graphs need a CUDA device; training eagerly",
            RuntimeWarning,
            stacklevel=3,
        )
        return EagerSteps(agent)
    return GraphedSteps(agent)
