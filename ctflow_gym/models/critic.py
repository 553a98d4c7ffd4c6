"""Double Q-networks: two independent Q(s, a) heads (clipped double-Q learning), alone or several at once."""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP


class DoubleQ(nn.Module):
    """``forward(obs, act) -> (q1, q2)``, each of shape (B,).

    ReLU MLP heads, as the critics of TD3+BC and IQL (and ~4x cheaper than SiLU on CPU).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.q1 = MLP(obs_dim + act_dim, 1, hidden, layers, activation=nn.ReLU)
        self.q2 = MLP(obs_dim + act_dim, 1, hidden, layers, activation=nn.ReLU)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The pessimistic value min(q1, q2)."""
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)

    def member_min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """:meth:`min_q` (one critic: shape (B,)); the ensemble's gives one row per member."""
        return self.min_q(obs, act)

    def combine(self, member_values: torch.Tensor) -> torch.Tensor:
        """Per-member values (as :meth:`member_min_q` returns them) as the critic's own: one critic's are."""
        return member_values

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The parameter groups whose gradient norms are clipped each on its own: one critic is one group."""
        return [list(self.parameters())]


class DoubleQEnsemble(nn.Module):
    """``members`` independent :class:`DoubleQ` critics; ``forward(obs, act) -> (q1, q2)``, each (members, B).

    Each member is trained against its own TD target (its own target network's min),
    as an independent critic would be; :meth:`min_q`, what actions are ranked and valued
    by, is the mean over members of each one's min(q1, q2), so one member's errors in
    ranking actions are averaged with the others'. :meth:`member_min_q` keeps them apart.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, members: int = 2):
        super().__init__()
        if members < 2:
            raise ValueError(f"members must be >= 2 (one critic is a DoubleQ); got {members!r}")
        self.members = nn.ModuleList(DoubleQ(obs_dim, act_dim, hidden, layers) for _ in range(members))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = [member(obs, act) for member in self.members]
        return torch.stack([q1 for q1, _ in heads]), torch.stack([q2 for _, q2 in heads])

    def member_min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min(q1, q2) of every member, shape (members, B)."""
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The mean over members of each one's min(q1, q2), shape (B,)."""
        return self.combine(self.member_min_q(obs, act))

    def combine(self, member_values: torch.Tensor) -> torch.Tensor:
        """Per-member values (members, B) as the ensemble's own (B,): their mean over members."""
        return member_values.mean(0)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """One group per member: each member's gradient is clipped as a lone critic's would be."""
        return [list(member.parameters()) for member in self.members]
