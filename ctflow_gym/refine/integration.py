"""Refinement by fixed-step Euler integration of the learned velocity field (section 2.4, appendix A.7)."""

from __future__ import annotations

import torch

from ctflow_gym.models.velocity_field import SourceConditionedVelocity


@torch.no_grad()
def integrate(
    velocity: SourceConditionedVelocity,
    z_src: torch.Tensor,
    strength: float,
    steps: int,
    record_at: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fixed-step Euler on dz/dt = v(z, t, z_src) from z(0) = z_src to t = strength.

    Returns z(strength) and, when ``record_at`` (sorted times in [0, strength]) is
    given, z at those times (T, B, d), each taken at the nearest Euler step.
    ``strength = 0`` returns ``z_src`` itself; above 1 the field is extrapolated.
    """
    z = z_src.clone()
    path = [z.clone()] if record_at is not None else None
    if strength > 0:
        dt = strength / steps
        for i in range(steps):
            t = torch.full((len(z),), i * dt, device=z.device, dtype=z.dtype)
            z = z + dt * velocity(z, t, z_src)
            if path is not None:
                path.append(z.clone())
    if record_at is None:
        return z, None
    grid = torch.linspace(0.0, strength, len(path))
    nearest = [int(torch.argmin((grid - float(t)).abs())) for t in record_at]
    return z, torch.stack([path[i] for i in nearest])
