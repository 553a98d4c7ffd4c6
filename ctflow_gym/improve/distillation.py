"""``distill``: a verified refined policy made into a standalone policy, by DAgger with it as the expert.

Why. ``RefinedPolicy(policy, refiner, env, verify=True, continuation=C)`` acts better
than ``policy`` in closed loop once the continuation C reaches far enough to see the
falls a window sets up (the Results page of the documentation has the numbers), but it
acts with the refiner and the simulator beside it: every window it looks ahead, refines,
replays its candidates and chooses. A user wants that behaviour in a policy that needs
neither. Cloning the teacher's own rollouts (round 0 below) teaches the learner only the
teacher's states; the learner then drifts to states the teacher never visited, where it
was told nothing. DAgger (Ross, Gordon and Bagnell, AISTATS 2011) fixes exactly that:
each later round rolls out the policy learned so far and asks the teacher what to do
where the learner went, and the learner is trained on everything gathered so far.

What the teacher answers is a whole window: at the start of every window of the
roll-out, the teacher plans from the state reached (:meth:`RefinedPolicy.plan
<ctflow_gym.wrappers.RefinedPolicy.plan>`; the env is restored after), and the window
it chose is realised in the simulator from that state
(:func:`~ctflow_gym.replay.realise_window`): up to H real transitions with their
simulator states, recorded as one episode of the dataset (as :func:`improve_dataset`
writes its windows). Round 0 then executes the teacher's window (the teacher rolls
out); rounds >= 1 execute the learner's own H actions from the same state (the learner
rolls out; DAgger's beta = 0 after the first round, its usual practical choice). A
teacher with ``replan_every`` m < H (a receding horizon) answers with the first m steps
of the window it chose, as it acts, and is asked again every m steps: a *Markov* teacher,
whose label at a state is chosen from that state, where a whole window's later actions
were chosen at the window's start (by a verified teacher, by what happens after it), so
they are not a function of the states they are recorded at, which is what behaviour
cloning fits (the Results page measures both). It costs H/m times the look-ahead and
replay. Round
k's episode returns are therefore the closed-loop returns of round k - 1's learner on
round k's reset seeds (``seed + 1000 k + episode``): a learning curve for free.

Every round's windows are added to one Minari dataset, ``dataset_id``, rewritten
atomically at the end of each round (each write holds every round so far, and its build
record lists them); ``learn(path)`` then trains the round's learner on it: any callable
from that dataset's folder to a policy (an object with SB3's ``predict``, or a callable
from an observation to an action), for example BC::

    from agents import BCAgent
    from ctflow_gym import RefinedPolicy
    from ctflow_gym.improve import distill

    teacher = RefinedPolicy(policy, refiner, gym.make("Hopper-v5"), strength=4.0, candidates=3, continuation=400)
    learn = lambda path: BCAgent("Hopper-v5", path, seed=0).learn(20_000)
    report = distill(teacher, learn, "ctflow/hopper/distilled-v0")
    report.policy.predict(observation)   # no refiner, no simulator

An interrupted run resumes: the same call finds the rounds already written (same teacher
settings, episodes and seed, else it refuses unless ``overwrite``), trains the learner on
them again (``learn`` should be seeded, so that this is the same policy) and goes on; a
call with more ``rounds`` continues a finished run the same way.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from minari.dataset.minari_dataset import parse_dataset_id

from ctflow_gym import progress
from ctflow_gym.data.actor_policies import policy_action_fn
from ctflow_gym.data.derived import write_derived_dataset
from ctflow_gym.data.minari_io import build_record, load_dataset, minari_root
from ctflow_gym.data.validation import require_int
from ctflow_gym.improve.writing import realised_buffer
from ctflow_gym.replay import capture_snapshot, restore_snapshot
from ctflow_gym.replay.realisation import RealisedWindow, realise_window
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, SIM_STATE_INFO_KEY, get_sim_state

RECORD_KEY = "distillation"
"""Where the dataset's build record keeps the distillation's teacher, config and rounds."""


@dataclass
class DistillationConfig:
    """How :func:`distill` runs.

    Attributes:
        rounds: DAgger rounds after round 0 (round 0: the teacher rolls out; rounds
            1..``rounds``: the learner of the round before). 0 is plain behaviour cloning
            of the teacher. Default 2, as ``ctflow distill`` and the benchmark: on the
            Hopper measurements later rounds did not reliably add to the first ones (the
            Results page).
        episodes: episodes rolled out per round. Default 40: on the Hopper measurements BC
            on 40 of the verified teacher's episodes was well above BC on 10, where the
            controls' BC was not (the Results page); the learner is short of data before it
            is short of DAgger rounds.
        seed: round k's episode e resets with seed ``seed + 1000 k + e``.
    """

    rounds: int = 2
    episodes: int = 40
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field that is out of range."""
        require_int(self.rounds, "rounds", least=0)
        require_int(self.episodes, "episodes")
        require_int(self.seed, "seed", least=0)


@dataclass
class DistillationRound:
    """One round of :func:`distill`.

    Attributes:
        round: its number (0: the teacher rolled out).
        rolled_out_by: ``"teacher"`` or ``"learner"`` (the learner of the round before).
        episode_returns: the closed-loop return of each episode rolled out.
        windows: teacher windows recorded (episodes added to the dataset).
        steps: transitions in them.
        refined_windows: of those, the windows where the teacher chose a refined window
            over its base policy's.
        seconds: wall time of the round's roll-outs (not of ``learn``).
    """

    round: int
    rolled_out_by: str
    episode_returns: list[float]
    windows: int
    steps: int
    refined_windows: int
    seconds: float


@dataclass
class DistillationReport:
    """What :func:`distill` did: the dataset written, each round, and the last round's learner (``policy``)."""

    dataset_id: str
    path: Path
    rounds: list[DistillationRound] = field(default_factory=list)
    policy: Any = None


def require_teacher(teacher: Any) -> None:
    """Raise ``TypeError`` naming ``teacher`` unless it plans windows (as ``RefinedPolicy`` does)."""
    missing = [name for name in ("env", "window", "plan", "history") if not hasattr(teacher, name)]
    if missing:
        raise TypeError(
            f"teacher must be a RefinedPolicy (or plan windows like one); {type(teacher).__name__} lacks {missing}"
        )


def teacher_windows(
    teacher: Any, policy: Any = None, episodes: int = 10, seed: int = 0, progress_bar: bool = False
) -> tuple[list[RealisedWindow], list[float], int]:
    """Roll out ``policy`` (None: the teacher itself) and record the teacher's window at the start of every window.

    A window is H steps, or the teacher's ``replan_every`` m where it replans sooner (only
    the first m steps of what it chose are recorded and executed). Returns ``(windows,
    episode returns, refined windows)``: the realised windows the
    teacher chose, from the states the roll-out reached (see the module docstring), the
    return of each of the ``episodes`` episodes (reset seeds ``seed``, ``seed + 1``, ...)
    and how many of the windows were refined ones. Runs in ``teacher.env``.
    """
    require_teacher(teacher)
    env = teacher.env
    act = None if policy is None else policy_action_fn(policy, deterministic=True)
    stride = int(getattr(teacher, "replan_every", None) or teacher.window)
    windows, returns, refined = [], [], 0
    for episode in progress.progress_bar(range(episodes), desc="distill", unit="episode", disable=not progress_bar):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            plan = teacher.plan(observation)
            refined += bool(teacher.history[-1].get("refined", False))
            snapshot = capture_snapshot(env)
            realised = realise_window(env, get_sim_state(env, REPLAY_STATE_SPEC), plan, observation, steps=stride)
            restore_snapshot(env, snapshot)
            windows.append(realised)
            for t in range(stride if act is not None else len(realised)):
                action = realised.actions[t] if act is None else act(observation)
                observation, reward, terminated, truncated, _ = env.step(action)
                total, done = total + float(reward), terminated or truncated
                if done:
                    break
            done = done or (act is None and realised.terminated)
        returns.append(total)
    return windows, returns, refined


def _teacher_settings(teacher: Any) -> dict[str, Any]:
    refiner = getattr(teacher, "refiner", None)
    names = ("strength", "candidates", "continuation", "execution", "replan_every", "gamma", "verify")
    settings = {name: getattr(teacher, name) for name in names if hasattr(teacher, name)}
    settings["window"] = int(teacher.window)
    settings["value_fn"] = getattr(teacher, "value_fn", None) is not None
    settings["refiner"] = None if refiner is None else type(refiner).__name__
    settings["refiner_checkpoint"] = getattr(refiner, "checkpoint_path", None)
    return settings


def _read_windows(path: Path) -> list[RealisedWindow]:
    windows = []
    for episode in load_dataset(path).iterate_episodes():
        windows.append(
            RealisedWindow(
                observations=np.asarray(episode.observations, dtype=np.float64),
                actions=np.asarray(episode.actions, dtype=np.float32),
                rewards=np.asarray(episode.rewards, dtype=np.float64),
                terminated=bool(episode.terminations[-1]),
                sim_states=np.asarray(episode.infos[SIM_STATE_INFO_KEY], dtype=np.float64),
            )
        )
    return windows


def distill(
    teacher: Any,
    learn: Callable[[Path], Any],
    dataset_id: str,
    root: str | os.PathLike | None = None,
    config: DistillationConfig | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    **overrides: Any,
) -> DistillationReport:
    """Distil ``teacher`` into the policy ``learn`` trains, by DAgger (see the module docstring).

    Args:
        teacher: a :class:`~ctflow_gym.wrappers.RefinedPolicy` (its env, a MuJoCo env, is
            where every roll-out runs); verified (``verify=True``) to distil a better policy.
            An unverified teacher is the control: its refined windows are realised (real
            transitions) but nothing chose them over the policy's own.
        learn: dataset folder -> policy (``predict`` or a callable); called once per round.
        dataset_id: the Minari id the windows are written as, under ``root`` (default:
            Minari's root).
        config: :class:`DistillationConfig`; keyword ``overrides`` replace its fields.
        overwrite: replace a dataset of that id made otherwise (another teacher or
            config, or not by distillation); the same distillation is resumed instead.
        progress_bar: a bar over each round's episodes.

    Returns a :class:`DistillationReport` whose ``policy`` is the last round's learner.
    """
    config = DistillationConfig(**{**asdict(config or DistillationConfig()), **overrides})
    config.validate()
    require_teacher(teacher)
    if not callable(learn):
        raise TypeError(f"learn must be a callable from a dataset folder to a policy; got {type(learn).__name__}")
    parse_dataset_id(dataset_id)
    root = Path(root) if root is not None else minari_root()
    path = root / dataset_id
    settings = {"teacher": _teacher_settings(teacher), "episodes": config.episodes, "seed": config.seed}
    report = DistillationReport(dataset_id, path)
    windows: list[RealisedWindow] = []
    if path.exists():
        previous = (build_record(load_dataset(path)) or {}).get(RECORD_KEY)
        same = previous is not None and all(previous.get(key) == value for key, value in settings.items())
        if same:
            report.rounds = [DistillationRound(**row) for row in previous["rounds"]]
            windows = _read_windows(path)
        elif not overwrite:
            raise FileExistsError(
                f"dataset_id: {path} exists and was not made by this distillation (teacher, episodes, seed); "
                "pass overwrite=True to replace it"
            )
    if report.rounds:
        report.policy = learn(path)
    for number in range(len(report.rounds), config.rounds + 1):
        started = time.time()
        rolled_out_by = "teacher" if number == 0 else "learner"
        new, returns, refined = teacher_windows(
            teacher, report.policy, config.episodes, config.seed + 1000 * number, progress_bar
        )
        windows += new
        report.rounds.append(
            DistillationRound(
                number, rolled_out_by, returns, len(new), int(sum(len(w) for w in new)), refined, time.time() - started
            )
        )
        record = {RECORD_KEY: {**settings, "rounds": [asdict(r) for r in report.rounds]}}
        record["sim_state_spec"] = REPLAY_STATE_SPEC  # what the windows' states were captured with
        write_derived_dataset(
            teacher.env.spec,
            [realised_buffer(i, window) for i, window in enumerate(windows)],
            dataset_id,
            root,
            record,
            algorithm_name="ctflow_gym distill (DAgger, verified refined teacher)",
            code_permalink="ctflow_gym.improve.distill",
            description=f"windows of a verified refined policy at the states of {number + 1} DAgger rounds",
            scratch_prefix=".ctflow-distill-",
        )
        report.policy = learn(path)
    return report
