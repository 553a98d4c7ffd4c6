"""The minibatch Adam loop shared by the refiners' networks (CTFlow's and Flow to Better's)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.progress import progress_bar as make_progress_bar


def train_minibatch(
    parameters: Iterable[torch.nn.Parameter],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    name: str,
    logger: RunLogger = NULL_LOGGER,
    progress_bar: bool = True,
    log_every: int = 100,
    sample: Callable[[], Any] | None = None,
    max_grad_norm: float | None = None,
    lr_lambda: Callable[[int], float] | None = None,
) -> float:
    """Minimise ``loss_fn(batch)`` with Adam for ``steps`` steps.

    Batches are ``sample()`` when given, else indices drawn uniformly with replacement
    from ``range(n_samples)`` by ``generator``. ``max_grad_norm`` clips the gradient's
    norm; ``lr_lambda(step)`` scales the learning rate (``LambdaLR``). The loss goes to
    ``logger`` as ``"<name>"`` every ``log_every`` steps. Returns the mean loss of the
    last ``log_every`` steps. A non-finite loss stops training with
    ``FloatingPointError`` naming the step.
    """
    parameters = list(parameters)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = None if lr_lambda is None else torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    recent: list[float] = []
    bar = make_progress_bar(range(steps), desc=name, disable=not progress_bar, leave=False)
    for step in bar:
        if sample is not None:
            batch = sample()
        else:
            batch = torch.randint(n_samples, (min(batch_size, n_samples),), generator=generator)
        loss = loss_fn(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        recent.append(loss.item())
        if len(recent) > log_every:
            recent.pop(0)
        if step % log_every == 0 or step == steps - 1:
            mean = sum(recent) / len(recent)
            bar.set_postfix(loss=f"{mean:.4g}")
            logger.log({name: mean}, step=step)
    return sum(recent) / max(len(recent), 1)
