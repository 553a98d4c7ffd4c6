"""Generating a better window conditioned on a worse one: Euler steps of the guided flow.

Classifier-free guidance (paper section 3.3, w = 1.2):
v = v(x_t, t | empty) + w (v(x_t, t | c) - v(x_t, t | empty)), integrated from
x_0 ~ N(0, I) at t = 0 to the window at t = 1 (flow matching's counterpart of the
paper's DDPM ancestral sampling; the code's low-noise DDPM variant, noise scaled by
the posterior variance rather than its square root, has no analogue in a
deterministic ODE sampler). With ``start`` the first observation is held at the
given one along the path (inpainting), so the plan starts where the simulator is.
"""

from __future__ import annotations

import torch

from ctflow_gym.models.temporal_velocity import ConditionalTemporalVelocity


@torch.no_grad()
def generate(
    velocity: ConditionalTemporalVelocity,
    condition: torch.Tensor,
    guidance: float,
    steps: int,
    generator: torch.Generator,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Windows (B, H, dim) generated for the worse windows ``condition`` (B, H, dim), normalised units.

    ``start`` (B, obs_dim): normalised first observations to inpaint (the first
    ``obs_dim`` entries of step 0), or None.
    """
    batch = len(condition)
    noise = torch.randn(condition.shape, generator=generator, device=condition.device, dtype=condition.dtype)
    x = noise.clone()
    both = torch.cat([condition, condition])
    present = torch.cat([torch.ones(batch), torch.zeros(batch)]).to(condition)
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        if start is not None:
            x[:, 0, : start.shape[-1]] = (1 - t) * noise[:, 0, : start.shape[-1]] + t * start
        v = velocity(torch.cat([x, x]), torch.full((2 * batch,), t).to(x), both, present)
        conditional, unconditional = v[:batch], v[batch:]
        x = x + dt * (unconditional + guidance * (conditional - unconditional))
    if start is not None:
        x[:, 0, : start.shape[-1]] = start
    return x
