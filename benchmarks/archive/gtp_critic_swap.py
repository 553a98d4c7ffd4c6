"""Whose fault is a weak GTP seed: its actor's samples or its critic's choice? (evaluation only).

Usage::

    python benchmarks/gtp_critic_swap.py --checkpoints /tmp/ctflow_s1_40_200/seed3/model \
        /tmp/ctflow_s1_40_200/seed4/model [--episodes 20] [--envs 10] [--reset-seed 4000] \
        [--sampling-steps 5] [--name gtp_critic_swap]

GTP acts by sampling N actions from its flow map and taking the one its target critic
values most (``predict(deterministic=True)``); one sample per action scores ~30 in every
seed, so a seed's score is mostly the critic's choice. This probe takes every actor
(the EMA flow map that acts) with every critic (both Q heads and their EMA targets) of
``--checkpoints`` (same dataset, so the same normalisation, which is checked) and scores
each pairing: rows = actor, columns = critic, and all the critics pooled (each candidate
ranked by the mean of the critics' min Q). A weak seed whose actor scores well with the
other seeds' critics, and whose critic drags every actor down, failed in its critic; the
other way round, in its actor's samples. Also the actor alone (one sample,
``action_candidates=1``).
Writes ``<--name>.md`` / ``.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import checkpoint_probe_parser, machine_info, markdown_table, write_results

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID


def require_same_normalisation(agents: dict[str, GTPAgent]) -> None:
    """Raise ``ValueError`` unless every checkpoint normalises observations as the first does."""
    first_name, first = next(iter(agents.items()))
    for checkpoint, agent in agents.items():
        for name in ("obs_mean", "obs_std"):
            if not np.array_equal(getattr(agent.stats, name), getattr(first.stats, name)):
                raise ValueError(f"{checkpoint} and {first_name} normalise observations differently")


def take_critic(agent: GTPAgent, critic_agent: GTPAgent) -> GTPAgent:
    """``agent`` with ``critic_agent``'s critic and critic target copied in (its actor unchanged)."""
    agent.critic.load_state_dict(critic_agent.critic.state_dict())
    agent.critic_target.load_state_dict(critic_agent.critic_target.state_dict())
    return agent


class PooledCritic(torch.nn.Module):
    """Q(s, a) = the mean over several critics of each one's min_j Q_j: a post-hoc ensemble across runs."""

    def __init__(self, critics: list[torch.nn.Module]) -> None:
        super().__init__()
        self.critics = torch.nn.ModuleList(critics)

    def min_q(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """What ``GTPAgent.select_actions`` ranks the candidates by."""
        return torch.stack([critic.min_q(observations, actions) for critic in self.critics]).mean(0)


@torch.no_grad()
def offline_choices(
    actors: dict[str, GTPAgent], critics: dict[str, torch.nn.Module], states: int, candidates: int, steps: int
) -> dict[str, dict]:
    """Per critic, on every actor's candidates: its gain from choosing and how often it picks as the others do.

    ``critics`` are modules with ``min_q`` (what ``GTPAgent.select_actions`` ranks by: a
    checkpoint's ``critic_target``, one member of an ensemble, a pooled critic).
    ``states`` dataset states (seed 0) and N = ``candidates`` samples of K = ``steps``
    per state from each actor (deterministic start noise, as ``predict`` draws it). Per
    critic, averaged over the actors: ``gain``, the mean over states of max Q - mean Q of
    the candidates (its min_j Q_target_j); ``agreement``, the share of states where it picks
    the same candidate as another critic, averaged over the other critics (chance: 1 / N).
    """
    first = next(iter(actors.values()))
    index = torch.randint(len(first.transitions), (states,), generator=torch.Generator().manual_seed(0))
    observations = first._data["observations"][index].repeat_interleave(candidates, dim=0)
    gains = {name: [] for name in critics}
    agreements = {name: [] for name in critics}
    for actor in actors.values():
        actions = actor.sample_actions(observations, steps, deterministic=True)
        picks = {}
        for name, critic in critics.items():
            q = critic.min_q(observations, actions).view(states, candidates)
            gains[name].append(float((q.max(1).values - q.mean(1)).mean()))
            picks[name] = q.argmax(1)
        for name in critics:
            others = [float((picks[name] == picks[other]).float().mean()) for other in critics if other != name]
            agreements[name].append(float(np.mean(others)))
    return {
        name: {"gain": float(np.mean(gains[name])), "agreement": float(np.mean(agreements[name]))} for name in critics
    }


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_critic_swap")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=4000, help="first reset seed of the episodes")
    parser.add_argument("--sampling-steps", type=int, default=5, help="K of every evaluation")
    parser.add_argument("--states", type=int, default=1024, help="dataset states of the offline table")
    args = parser.parse_args()
    critics = {c: GTPAgent.load(c, dataset=DEFAULT_DATASET_ID) for c in args.checkpoints}
    require_same_normalisation(critics)
    evaluate = lambda agent, **options: agent.evaluate(  # noqa: E731
        args.episodes, seed=args.reset_seed, n_envs=args.envs, sampling_steps=args.sampling_steps, **options
    )["normalized_score"]
    scores: dict[str, dict[str, float]] = {}
    alone: dict[str, float] = {}
    for actor in args.checkpoints:
        alone[actor] = evaluate(critics[actor], action_candidates=1, deterministic=False)
        scores[actor] = {}
        paired = GTPAgent.load(actor, dataset=DEFAULT_DATASET_ID)  # critics[actor] stays a critic source
        for critic, critic_agent in critics.items():
            scores[actor][critic] = evaluate(take_critic(paired, critic_agent))
            print(f"[critic-swap] actor {actor} critic {critic}: {scores[actor][critic]:.1f}", flush=True)
        paired.critic_target = PooledCritic([agent.critic_target for agent in critics.values()])
        scores[actor]["pooled"] = evaluate(paired)
        print(f"[critic-swap] actor {actor} pooled critics: {scores[actor]['pooled']:.1f}", flush=True)
    names = {c: f"c{i}" for i, c in enumerate(args.checkpoints)}
    rows = [
        [f"{names[a]} {a}", *[f"{scores[a][c]:.1f}" for c in [*args.checkpoints, "pooled"]], f"{alone[a]:.1f}"]
        for a in args.checkpoints
    ]
    offline = offline_choices(
        critics,
        {name: agent.critic_target for name, agent in critics.items()},
        args.states,
        critics[args.checkpoints[0]].action_candidates,
        args.sampling_steps,
    )
    meta = {
        "episodes": args.episodes,
        "envs": args.envs,
        "reset_seed": args.reset_seed,
        "sampling_steps": args.sampling_steps,
        "machine": machine_info(),
    }
    text = "\n".join(
        [
            "# GTP: every actor with every critic",
            "",
            (
                f"D4RL score, {args.episodes} episodes per cell (reset seeds {args.reset_seed}..), K = "
                f"{args.sampling_steps}, acting as `predict(deterministic=True)`: the best of N samples of the "
                "row's actor by the column's critic; pooled: by the mean over all the critics of each one's min Q "
                "(an ensemble across runs, after the fact). Last column: the row's actor alone (one sample per action, "
                f"sampled start noise). Machine: {meta['machine']}."
            ),
            "",
            markdown_table(["actor \\ critic", *[names[c] for c in args.checkpoints], "pooled", "actor alone"], rows),
            "",
            (
                f"Offline, no episode: {args.states} dataset states (seed 0), N = "
                f"{critics[args.checkpoints[0]].action_candidates} candidates of K = {args.sampling_steps} per state "
                "from each actor in turn; per critic, averaged over the actors: its gain from choosing (mean over "
                "states of max Q - mean Q of the candidates) and the share of states where it picks the candidate "
                "another critic picks (averaged over the other critics)."
            ),
            "",
            markdown_table(
                ["critic", "gain from choosing", "same pick as another critic"],
                [[names[c], f"{offline[c]['gain']:.2f}", f"{offline[c]['agreement']:.3f}"] for c in args.checkpoints],
            ),
            "",
        ]
    )
    results = {"scores": scores, "actor_alone": alone, "offline": offline}
    write_results(Path(args.out), args.name, {"meta": meta, "results": results}, text)
    print(text)


if __name__ == "__main__":
    main()
