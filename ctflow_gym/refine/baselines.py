"""The training windows the paper's replacement baselines (Table 1) draw from.

- ``"nearest"``: the nearest improved neighbour in latent space replaces the source;
- ``"random"``: a random improved training window replaces it.

The baselines themselves are refiner families (:mod:`~ctflow_gym.refine.replacement`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ctflow_gym.refine.codec import LatentCodec


@dataclass
class TrainingBank:
    """The training windows the replacement baselines draw from.

    Attributes:
        latents: (N, d) standardised latents.
        feedback: (N,) training feedback (float64).
        observations, actions: (N, H, dim) raw windows.
    """

    latents: np.ndarray
    feedback: np.ndarray
    observations: np.ndarray
    actions: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The bank as named arrays (for saving)."""
        return {
            "latents": self.latents,
            "feedback": self.feedback,
            "observations": self.observations,
            "actions": self.actions,
        }

    def replace(
        self, codec: LatentCodec, z_src: torch.Tensor, method: str, margin: float, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latents and normalised windows of the bank windows that replace each source.

        A new window's own feedback is unknown: the feedback of its nearest bank window
        stands in for it. A source with no improved window (by ``margin``) keeps its
        nearest bank window. Returns ``(latents, observations, actions)`` tensors.
        """
        bank_z = torch.as_tensor(self.latents, device=z_src.device)
        distances = torch.cdist(z_src, bank_z)
        order = torch.argsort(distances, dim=1).cpu().numpy()
        own_feedback = self.feedback[order[:, 0]]
        rng = np.random.default_rng(seed)
        chosen = np.empty(len(z_src), dtype=np.int64)
        for i in range(len(z_src)):
            better = self.feedback >= own_feedback[i] + margin
            if method == "nearest":
                ranked = order[i][better[order[i]]]
                chosen[i] = ranked[0] if len(ranked) else order[i, 0]
            else:
                candidates = np.flatnonzero(better)
                chosen[i] = rng.choice(candidates) if len(candidates) else order[i, 0]
        obs, act = codec.normalized_tensors(self.observations[chosen], self.actions[chosen])
        return bank_z[torch.as_tensor(chosen, device=z_src.device)], obs, act
