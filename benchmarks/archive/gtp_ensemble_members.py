"""Do the critics of one ``critic_ensemble`` run disagree as much as critics of separate runs? (offline only).

Usage::

    python benchmarks/gtp_ensemble_members.py --checkpoints /tmp/ctflow_ens5/seed4/model_100000 \
        /tmp/ctflow_ens5/seed4/model [--reference /tmp/ctflow_s1_40_200/seed{0,1,2,3,4}/model_50000] \
        [--states 1024] [--sampling-steps 5] [--name gtp_ensemble_members]

Pooling the final critics of five separate runs put every actor at 101-102
(``gtp_critic_swap.md``), and those critics pick the same candidate in only 16-17% of
states: their errors are nearly independent. ``GTPConfig.critic_ensemble = M`` trains M
critics in one run instead, on the same batches and the same actor, so its members'
errors may be less independent and their mean worth less. For each checkpoint (an
ensemble run's), on its own actor's candidates (``--states`` dataset states, N = the
agent's ``action_candidates`` samples of K = ``--sampling-steps``, deterministic start
noise): every member's gain from choosing and its agreement with the other members
(:func:`gtp_critic_swap.offline_choices`), and the pooled critic's (the mean of the
members' min Q, what the agent ranks by). ``--reference``: checkpoints of separate runs
(e.g. single-critic seeds at the same step), whose critics are compared the same way on
all their actors' candidates, as ``gtp_critic_swap.py`` does: the across-runs baseline.
No episode is run. Writes ``<--name>.md`` / ``.json``.
"""

from __future__ import annotations

from pathlib import Path

from common import checkpoint_probe_parser, machine_info, markdown_table, write_results
from gtp_critic_swap import offline_choices, require_same_normalisation

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.models import DoubleQEnsemble


def member_choices(agent: GTPAgent, states: int, steps: int) -> dict[str, dict]:
    """Gain and agreement of each member of ``agent``'s target critic ensemble, and of their mean, on its candidates."""
    if not isinstance(agent.critic_target, DoubleQEnsemble):
        raise ValueError("checkpoints must be of agents trained with critic_ensemble >= 2")
    critics = {f"member {i}": member for i, member in enumerate(agent.critic_target.members)}
    critics["mean of members"] = agent.critic_target
    return offline_choices({"own actor": agent}, critics, states, agent.action_candidates, steps)


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_ensemble_members")
    parser.add_argument("--states", type=int, default=1024, help="dataset states")
    parser.add_argument("--sampling-steps", type=int, default=5, help="K of the candidates")
    parser.add_argument("--reference", nargs="*", default=[], help="checkpoints of separate runs to compare across")
    args = parser.parse_args()
    results = {}
    for checkpoint in args.checkpoints:
        agent = GTPAgent.load(checkpoint, dataset=DEFAULT_DATASET_ID)
        results[checkpoint] = {
            "step": agent.num_timesteps,
            "critics": member_choices(agent, args.states, args.sampling_steps),
        }
        print(f"[ensemble-members] {checkpoint}: {results[checkpoint]}", flush=True)
    reference = {}
    if args.reference:
        agents = {checkpoint: GTPAgent.load(checkpoint, dataset=DEFAULT_DATASET_ID) for checkpoint in args.reference}
        require_same_normalisation(agents)
        critics = {checkpoint: agent.critic_target for checkpoint, agent in agents.items()}
        candidates = next(iter(agents.values())).action_candidates
        reference = offline_choices(agents, critics, args.states, candidates, args.sampling_steps)
    meta = {"states": args.states, "sampling_steps": args.sampling_steps, "machine": machine_info()}
    rows = []
    for checkpoint, result in results.items():
        critics = result["critics"]
        members = [name for name in critics if name.startswith("member")]
        rows.append(
            [
                checkpoint,
                f"{result['step'] // 1000}k",
                " / ".join(f"{critics[name]['gain']:.2f}" for name in members),
                " / ".join(f"{critics[name]['agreement']:.3f}" for name in members),
                f"{critics['mean of members']['gain']:.2f}",
                f"{critics['mean of members']['agreement']:.3f}",
            ]
        )
    text = "\n".join(
        [
            "# GTP critic ensembles: how much do the members of one run disagree?",
            "",
            (
                f"Offline, no episode: {args.states} dataset states (seed 0), N = the agent's action_candidates "
                f"samples of K = {args.sampling_steps} per state from the checkpoint's own actor. Gain from choosing: "
                "mean over states of max Q - mean Q of the candidates (each critic's min of its two heads); same "
                "pick: the share of states where a member picks the candidate another member picks (averaged over "
                "the others; chance 1 / N). The mean of members' agreement is with the members. For comparison, "
                "the final critics of five separate single-critic runs agree on 16-17% of states "
                f"(`gtp_critic_swap.md`). Machine: {meta['machine']}."
            ),
            "",
            markdown_table(
                [
                    "checkpoint",
                    "step",
                    "members' gain",
                    "members' same pick",
                    "mean of members: gain",
                    "mean of members: same pick as a member",
                ],
                rows,
            ),
            "",
        ]
    )
    if reference:
        text += "\n".join(
            [
                "",
                "## Across separate runs (--reference)",
                "",
                "Each run's critic on every reference run's actor's candidates, averaged over the actors.",
                "",
                markdown_table(
                    ["checkpoint", "gain from choosing", "same pick as another run's critic"],
                    [[c, f"{r['gain']:.2f}", f"{r['agreement']:.3f}"] for c, r in reference.items()],
                ),
                "",
            ]
        )
    data = {"meta": meta, "results": results, "reference": reference}
    write_results(Path(args.out), args.name, data, text)
    print(text)


if __name__ == "__main__":
    main()
