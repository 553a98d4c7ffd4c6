"""The refiner's feedback models: scalar regressors of a window's feedback.

Two are used, both instances of :class:`FeedbackModel`:

- the start-value baseline V(s_1) of ``feedback="advantage"``: fitted on the training
  windows' first observations, it turns window returns into advantages
  R(tau) - V(s_1) that credit a window's decisions rather than the state it started in;
- the proxy return predictor P(z) of appendix A.5: fitted on latents of held-out
  episodes only (never used for pairs or flow training), it gives the paper's offline
  proxy gain P(E(refined)) - P(E(source)).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ctflow_gym.checkpoint import load_module_tensors, module_tensors
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models import MLP
from ctflow_gym.refine.codec import batched
from ctflow_gym.refine.losses import feedback_regression_loss
from ctflow_gym.refine.training import train_minibatch

HIDDEN, LAYERS = 256, 2
"""Width and depth of the feedback MLPs."""


class FeedbackModel:
    """An MLP from inputs to a scalar feedback, trained on standardised targets.

    Args:
        in_dim: input size.
        device: torch device.
        mean, std: the target standardisation; :meth:`predict` returns raw units.
    """

    def __init__(self, in_dim: int, device: torch.device | str, mean: float = 0.0, std: float = 1.0):
        self.network = MLP(in_dim, 1, HIDDEN, LAYERS).to(device)
        self.mean, self.std = float(mean), float(std)

    @classmethod
    def fit(
        cls,
        inputs: torch.Tensor,
        feedback: np.ndarray,
        steps: int,
        batch_size: int,
        lr: float,
        generator: torch.Generator,
        name: str,
        logger: RunLogger = NULL_LOGGER,
        progress_bar: bool = True,
    ) -> tuple["FeedbackModel", float]:
        """Fit on ``inputs`` (N, in_dim) and ``feedback`` (N,); returns the model and its final loss."""
        mean, std = float(feedback.mean()), float(feedback.std() + 1e-8)
        model = cls(inputs.shape[1], inputs.device, mean, std)
        target = torch.as_tensor((feedback - mean) / std, dtype=torch.float32, device=inputs.device)
        loss = train_minibatch(
            model.network.parameters(),
            lambda b: feedback_regression_loss(model.network, inputs[b], target[b]),
            len(inputs),
            steps,
            batch_size,
            lr,
            generator,
            name,
            logger,
            progress_bar,
        )
        model.network.eval()
        return model, loss

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> np.ndarray:
        """Feedback estimates (N,) in raw units."""
        return batched(lambda x: self.network(x).squeeze(-1), inputs).cpu().numpy() * self.std + self.mean

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The network's tensors keyed ``"<prefix>.<parameter>"``."""
        return module_tensors({prefix: self.network})

    def meta(self) -> dict[str, Any]:
        """JSON-ready metadata: input size and standardisation."""
        return {"in_dim": int(self.network[0].in_features), "mean": self.mean, "std": self.std}

    @classmethod
    def from_saved(
        cls,
        meta: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        prefix: str,
        device: torch.device | str,
        path: str | os.PathLike,
    ) -> "FeedbackModel":
        """Inverse of :meth:`meta` / :meth:`tensors`; ``path`` (the checkpoint) is named if the tensors do not fit."""
        model = cls(meta["in_dim"], device, meta["mean"], meta["std"])
        load_module_tensors({prefix: model.network}, tensors, path)
        model.network.eval()
        return model
