"""The refiner contract, tested once for every refiner family.

``ShiftTowardTarget`` below is a second refiner family defined in this file only: it
moves each action a fraction ``strength`` of the way toward a fixed target action. It
works with ``RefinementWrapper``, ``RefinedPolicy``, closed-loop evaluation and
``load_refiner`` through the contract alone, without touching any other file.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ctflow_gym import (
    FTBRefiner,
    RefinedPolicy,
    RefinementResult,
    RefinementWrapper,
    Refiner,
    TrajectoryRefiner,
    load_refiner,
    register_refiner,
)
from ctflow_gym.checkpoint import load_tensors, read_checkpoint_meta, save_checkpoint
from ctflow_gym.data import make_windows
from ctflow_gym.refine import (
    REFINERS,
    NearestImprovedRefiner,
    NonLocalRefiner,
    RandomImprovedRefiner,
    ReconstructionRefiner,
    refiner_kind,
)
from ctflow_gym.refine.ensemble import RefinerEnsemble, agreement
from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows
from ctflow_gym.refine.perturbation import GaussianPerturbation

FAMILIES = [
    "TrajectoryRefiner",
    "FTBRefiner",
    "ShiftTowardTarget",
    "GaussianPerturbation",
    "RefinerEnsemble",
    "NearestImprovedRefiner",
    "RandomImprovedRefiner",
    "ReconstructionRefiner",
    "NonLocalRefiner",
]


TINY_FTB = dict(
    window=8,
    stride=2,
    segment=10,
    blocks=4,
    score_hidden=32,
    score_steps=50,
    generator_hidden=16,
    generator_blocks=2,
    generator_steps=40,
    sample_steps=4,
    top_n=10,
)
"""Flow to Better small enough to fit in a second or two on the tiny random dataset (its numbers mean nothing)."""


@register_refiner
class ShiftTowardTarget:
    """Moves every action toward ``target`` by ``strength`` (1: all the way), clipped to [-1, 1]."""

    def __init__(self, target: np.ndarray, window: int = 8, env_id: str | None = "Hopper-v5"):
        self.target = np.asarray(target, dtype=np.float32)
        self.window, self.env_id = window, env_id
        self.obs_dim, self.act_dim = 11, len(self.target)
        self.is_fitted = True

    def refine(self, observations, actions=None, strength: float = 1.0) -> RefinementResult:
        observations, actions = np.asarray(observations, np.float32), np.asarray(actions, np.float32)
        refined = np.clip(actions + strength * (self.target - actions), -1.0, 1.0)
        deviation = np.sqrt((np.linalg.norm(refined - actions, axis=-1) ** 2).mean(-1))
        return RefinementResult(observations=observations, actions=refined, action_deviation=deviation)

    def save(self, path):
        meta = {"window": self.window, "env_id": self.env_id}
        return save_checkpoint(path, refiner_kind(type(self)), meta, {"target": torch.as_tensor(self.target)})

    @classmethod
    def load(cls, path, device=None):
        meta = read_checkpoint_meta(path, kinds=[refiner_kind(cls)])
        return cls(load_tensors(path)["target"].numpy(), meta["window"], meta["env_id"])


@pytest.fixture(scope="module")
def refiners(random_dataset):
    """A fitted instance of every refiner family (one per registered class)."""
    tiny = dict(
        window=8,
        ae_steps=150,
        flow_steps=150,
        predictor_steps=50,
        inverse_dynamics_steps=150,
        ae_hidden=64,
        flow_hidden=64,
    )
    flow = TrajectoryRefiner(**tiny).fit(random_dataset, progress_bar=False)
    shift = ShiftTowardTarget(np.array([0.3, -0.2, 0.1], np.float32))
    ftb = FTBRefiner(**TINY_FTB).fit(random_dataset, progress_bar=False)
    return {
        "TrajectoryRefiner": flow,
        "FTBRefiner": ftb,
        "ShiftTowardTarget": shift,
        "GaussianPerturbation": GaussianPerturbation("Hopper-v5", window=8, sigma=0.2),
        "RefinerEnsemble": RefinerEnsemble([flow, shift]),
        "NearestImprovedRefiner": NearestImprovedRefiner(flow),
        "RandomImprovedRefiner": RandomImprovedRefiner(flow),
        "ReconstructionRefiner": ReconstructionRefiner(flow),
        "NonLocalRefiner": NonLocalRefiner(**tiny).fit(random_dataset, progress_bar=False),
    }


@pytest.fixture(scope="module")
def windows(random_dataset):
    return make_windows(random_dataset, window=8).subset(slice(0, 12))


def test_every_registered_refiner_is_tested(refiners):
    assert set(REFINERS) == set(refiners)


@pytest.mark.parametrize("name", FAMILIES)
def test_contract(name, refiners, windows, tmp_path):
    refiner = refiners[name]
    assert isinstance(refiner, Refiner) and refiner.is_fitted and refiner.window == 8
    result = refiner.refine(windows.observations, windows.actions, strength=0.0)
    np.testing.assert_array_equal(result.actions, windows.actions)
    moved = refiner.refine(windows.observations, windows.actions, strength=1.0)
    assert moved.actions.shape == windows.actions.shape and moved.observations.shape == windows.observations.shape
    assert np.all(moved.actions >= -1.0) and np.all(moved.actions <= 1.0)
    loaded = load_refiner(refiner.save(tmp_path / name))
    assert type(loaded) is type(refiner)
    np.testing.assert_array_equal(
        loaded.refine(windows.observations, windows.actions, strength=1.0).actions, moved.actions
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_closed_loop_evaluation(name, refiners, windows):
    refiner = refiners[name]
    at_zero = evaluate_refinement(refiner, windows, strength=0.0, validity=False)
    assert at_zero["realized_gain"]["mean"] == 0.0
    report = evaluate_refinement(refiner, windows, strength=1.0)
    assert np.isfinite(report["realized_gain"]["mean"]) and "dynamics_error" in report


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("mode", ["shadow", "commit"])
def test_refinement_wrapper(name, mode, refiners):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiners[name], strength=1.0, replay=True, mode=mode)
    env.reset(seed=0)
    reports = []
    for _ in range(24):
        _, _, terminated, truncated, info = env.step(np.zeros(3, np.float32))
        reports += [info["refinement"]] if "refinement" in info else []
        if terminated or truncated:
            break
    assert reports and all(np.isfinite(r["realized_gain"]) for r in reports)
    assert env.totals.windows_replayed == len(reports)


@pytest.mark.parametrize("name", FAMILIES)
def test_refined_policy(name, refiners):
    env = gym.make("Hopper-v5")
    policy = RefinedPolicy(lambda obs: np.zeros(3, np.float32), refiners[name], env, strength=1.0, verify=True)
    obs, _ = env.reset(seed=0)
    for _ in range(16):
        action, _ = policy.predict(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert policy.history and policy.history[0]["refined"] in (True, False)


def test_an_object_outside_the_contract_is_refused():
    with pytest.raises(TypeError, match="Refiner contract"):
        RefinementWrapper(gym.make("Hopper-v5"), object())


def test_run_episodes_takes_models_and_callables_and_refuses_others():
    from ctflow_gym.wrappers import run_episodes

    env = gym.make("Hopper-v5", max_episode_steps=20)
    zero = lambda obs: np.zeros(3, np.float32)  # noqa: E731
    assert run_episodes(env, zero, 2, seed=3) == run_episodes(env, zero, 2, seed=3)
    with pytest.raises(ValueError, match="episodes must be"):
        run_episodes(env, zero, 0)
    with pytest.raises(TypeError, match="policy must be"):
        run_episodes(env, object(), 1)


def test_record_episodes_are_run_episodes_with_lengths_ends_and_times():
    from ctflow_gym.wrappers import record_episodes, run_episodes

    env = gym.make("Hopper-v5", max_episode_steps=20)
    zero = lambda obs: np.zeros(3, np.float32)  # noqa: E731
    records = record_episodes(env, zero, 2, seed=3)
    assert [r.episode_return for r in records] == run_episodes(env, zero, 2, seed=3)
    assert [(r.seed, r.length, r.terminated) for r in records] == [(3, 20, False), (4, 20, False)]
    assert all(r.seconds > 0 for r in records)
    push = lambda obs: np.ones(3, np.float32)  # noqa: E731  (full torque: the hopper falls)
    [fell] = record_episodes(gym.make("Hopper-v5"), push, 1)
    assert fell.terminated and fell.length < 1000


@pytest.mark.parametrize("name", ["TrajectoryRefiner", "GaussianPerturbation"])
def test_candidates_are_replayed_and_the_best_is_chosen(name, refiners):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiners[name], strength=1.0, replay=True, candidates=3)
    env.reset(seed=0)
    for _ in range(8):
        _, _, _, _, info = env.step(np.zeros(3, np.float32))
    report = info["refinement"]
    scores = report["candidate_scores"]
    assert len(scores) == 3 and report["chosen_candidate"] == int(np.argmax(scores))
    assert report["strength"] == pytest.approx((report["chosen_candidate"] + 1) / 3)
    assert report["refined_score"] == max(scores)

    policy_env = gym.make("Hopper-v5")
    policy = RefinedPolicy(lambda obs: np.zeros(3, np.float32), refiners[name], policy_env, candidates=4)
    obs, _ = policy_env.reset(seed=0)
    for _ in range(8):
        obs, *_ = policy_env.step(policy.predict(obs)[0])
    # One look-ahead of H steps and four replayed candidates of H steps: every step is counted.
    assert policy.simulator_steps == 8 + 4 * 8
    # With a continuation each scored window (the base one and every candidate) runs 5 more policy steps.
    continued = RefinedPolicy(
        lambda obs: np.zeros(3, np.float32), refiners[name], policy_env, candidates=4, continuation=5
    )
    obs, _ = policy_env.reset(seed=0)
    obs, *_ = policy_env.step(continued.predict(obs)[0])
    assert continued.simulator_steps == (8 + 5) + 4 * (8 + 5)


def test_bad_candidate_counts_and_execution_modes_are_refused(refiners):
    env = gym.make("Hopper-v5")
    zero = lambda obs: np.zeros(3, np.float32)  # noqa: E731
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="candidates must be an integer >= 1"):
            RefinedPolicy(zero, refiners["TrajectoryRefiner"], env, candidates=bad)
    with pytest.raises(ValueError, match="candidates=2 needs verify=True"):
        RefinedPolicy(zero, refiners["TrajectoryRefiner"], env, candidates=2, verify=False)
    with pytest.raises(ValueError, match="continuation must be an integer >= 0"):
        RefinedPolicy(zero, refiners["TrajectoryRefiner"], env, continuation=-1)
    with pytest.raises(ValueError, match="continuation=4 needs verify=True"):
        RefinedPolicy(zero, refiners["TrajectoryRefiner"], env, continuation=4, verify=False)
    with pytest.raises(ValueError, match="candidates=2 needs replay=True"):
        RefinementWrapper(gym.make("Hopper-v5"), refiners["TrajectoryRefiner"], candidates=2)
    # Tracking needs an inverse-dynamics model; these families have none.
    for name in ("ShiftTowardTarget", "GaussianPerturbation"):
        with pytest.raises(ValueError, match="execution='tracked' needs an inverse-dynamics model"):
            RefinedPolicy(zero, refiners[name], env, execution="tracked")
    with pytest.raises(ValueError, match="execution must be one of"):
        RefinementWrapper(gym.make("Hopper-v5"), refiners["TrajectoryRefiner"], execution="closed")


def test_a_value_function_returning_nan_is_named(refiners):
    env = gym.make("Hopper-v5")
    nan_value = lambda obs: float("nan")  # noqa: E731
    policy = RefinedPolicy(lambda obs: np.zeros(3, np.float32), refiners["ShiftTowardTarget"], env, value_fn=nan_value)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="value_fn returned nan"):
        policy.predict(obs)


def test_an_ensemble_refines_with_the_member_its_seed_names(refiners, windows):
    ensemble = refiners["RefinerEnsemble"]
    obs, act = windows.observations, windows.actions
    for seed, member in ((0, "TrajectoryRefiner"), (1, "ShiftTowardTarget"), (4, "TrajectoryRefiner")):
        np.testing.assert_array_equal(
            ensemble.refine(obs, act, strength=1.0, seed=seed).actions,
            refiners[member].refine(obs, act, strength=1.0).actions,
        )
    with pytest.raises(ValueError, match="members: an ensemble needs at least 2 refiners"):
        RefinerEnsemble([refiners["TrajectoryRefiner"]])
    with pytest.raises(ValueError, match="members must share window"):
        RefinerEnsemble([refiners["TrajectoryRefiner"], GaussianPerturbation("Hopper-v5", window=4)])


def test_an_ensemble_is_fitted_from_seeds(random_dataset):
    tiny = dict(window=8, ae_steps=30, flow_steps=30, predictor_steps=10, inverse_dynamics_steps=30, ae_hidden=32)
    ensemble = RefinerEnsemble.fit(random_dataset, seeds=(3, 4), progress_bar=False, combine="mean", **tiny)
    assert [m.config.seed for m in ensemble.members] == [3, 4] and ensemble.inverse_dynamics is not None
    assert ensemble.combine == "mean" and [m.config.split_seed for m in ensemble.members] == [3, 3]
    # Every member held out the same episodes, so the ensemble has held-out windows none trained on.
    held_out = ensemble.members[0].fit_info["held_out_episodes"]
    assert held_out and ensemble.fit_info["held_out_episodes"] == sorted(held_out)
    assert ensemble.members[1].fit_info["held_out_episodes"] == held_out
    windows = held_out_windows(ensemble, random_dataset, count=20)
    assert set(np.unique(windows.episode_ids)) <= set(held_out)
    with pytest.raises(ValueError, match="seeds: an ensemble needs at least 2 distinct seeds"):
        RefinerEnsemble.fit(random_dataset, seeds=(1, 1), **tiny)


def test_agreement_is_one_for_equal_moves_and_zero_for_opposite_ones():
    source = np.zeros((1, 2, 3), np.float32)
    move = np.ones((1, 2, 3), np.float32)
    np.testing.assert_allclose(agreement(source, np.stack([move, move])), [1.0])
    np.testing.assert_allclose(agreement(source, np.stack([move, -move])), [0.0], atol=1e-7)
    np.testing.assert_allclose(agreement(source, np.stack([source, source])), [1.0])  # nobody moves
    right_angle = np.zeros_like(move)
    right_angle[0, 0, :2] = np.sqrt(3.0), -np.sqrt(3.0)  # as long as move, at right angles to it
    np.testing.assert_allclose(agreement(source, np.stack([move, right_angle])), [1.0 / np.sqrt(2.0)], rtol=1e-6)


def test_an_ensemble_mean_and_its_agreement_gate(refiners, windows, tmp_path):
    flow, shift = refiners["TrajectoryRefiner"], refiners["ShiftTowardTarget"]
    obs, act = windows.observations, windows.actions
    members = [flow.refine(obs, act, strength=1.0), shift.refine(obs, act, strength=1.0)]
    mean = RefinerEnsemble([flow, shift], combine="mean").refine(obs, act, strength=1.0)
    np.testing.assert_allclose(mean.actions, (members[0].actions + members[1].actions) / 2, atol=1e-6)
    np.testing.assert_allclose(mean.observations, (members[0].observations + members[1].observations) / 2, atol=1e-5)
    assert not mean.gated.any() and mean.agreement.shape == (len(windows),)
    unchanged = RefinerEnsemble([flow, shift], combine="mean").refine(obs, act, strength=0.0)
    np.testing.assert_array_equal(unchanged.actions, act)  # strength 0: the source exactly, as the contract says
    # A gate above every window's agreement leaves every window exactly as it was.
    strict = RefinerEnsemble([flow, shift], combine="mean", agreement_gate=1.0)
    gated = strict.refine(obs, act, strength=1.0)
    assert (mean.agreement < 1.0).all() and gated.gated.all()
    np.testing.assert_array_equal(gated.actions, act)
    np.testing.assert_array_equal(gated.observations, obs)
    # Gating a rotating ensemble keeps the chosen member's refinement where members agree.
    threshold = float(np.median(mean.agreement))
    rotating = RefinerEnsemble([flow, shift], agreement_gate=threshold).refine(obs, act, strength=1.0, seed=1)
    keep = mean.agreement >= threshold
    np.testing.assert_array_equal(rotating.actions[keep], members[1].actions[keep])
    np.testing.assert_array_equal(rotating.actions[~keep], act[~keep])
    loaded = load_refiner(strict.save(tmp_path / "strict"))
    assert (loaded.combine, loaded.agreement_gate) == ("mean", 1.0)
    with pytest.raises(ValueError, match="combine must be one of"):
        RefinerEnsemble([flow, shift], combine="vote")
    for bad in (-0.1, 1.5, "high", True):
        with pytest.raises(ValueError, match="agreement_gate must be"):
            RefinerEnsemble([flow, shift], agreement_gate=bad)


def test_a_gated_window_runs_the_base_policy_and_says_so(refiners):
    env = gym.make("Hopper-v5", max_episode_steps=20)
    strict = RefinerEnsemble([refiners["TrajectoryRefiner"], refiners["ShiftTowardTarget"]], agreement_gate=1.0)
    zero = lambda obs: np.zeros(3, np.float32)  # noqa: E731
    policy = RefinedPolicy(zero, strict, env, verify=False)
    obs, _ = env.reset(seed=2)
    action, _ = policy.predict(obs)
    np.testing.assert_array_equal(action, np.zeros(3, np.float32))
    assert policy.history[-1] == {
        "refined": False,
        "source_return": policy.history[-1]["source_return"],
        "reason": "the refiner's agreement gate kept the base window",
    }


def test_gaussian_perturbation_treats_one_window_as_a_batch_of_one_and_checks_shapes(refiners, windows):
    noise = refiners["GaussianPerturbation"]
    one = noise.refine(windows.observations[0], windows.actions[0], strength=1.0, seed=5)
    batch = noise.refine(windows.observations[:1], windows.actions[:1], strength=1.0, seed=5)
    assert one.actions.shape == (1, 8, 3) and one.observations.shape == (1, 8, 11)
    np.testing.assert_array_equal(one.actions, batch.actions)
    with pytest.raises(ValueError, match=r"actions must have shape \(N, 8, 3\)"):
        noise.refine(windows.observations, windows.actions[:, :4])
    with pytest.raises(ValueError, match=r"observations must have shape \(12, 8, 11\)"):
        noise.refine(windows.observations[:, :, :5], windows.actions)


def test_the_paper_baselines_are_the_same_replacements_as_before_and_fit_themselves(refiners, windows, random_dataset):
    flow = refiners["TrajectoryRefiner"]
    nearest = NearestImprovedRefiner(flow).refine(windows.observations, windows.actions)
    # the nearest improved training window replaces each source: its actions are a training window's
    bank_actions = flow.bank.actions.reshape(len(flow.bank.actions), -1)
    rows = nearest.actions.reshape(len(nearest.actions), -1)
    assert all(np.any(np.all(np.isclose(bank_actions, row, atol=1e-5), axis=1)) for row in rows)
    random_a = RandomImprovedRefiner(flow).refine(windows.observations, windows.actions, seed=1)
    random_b = RandomImprovedRefiner(flow).refine(windows.observations, windows.actions, seed=1)
    np.testing.assert_array_equal(random_a.actions, random_b.actions)
    fitted = NearestImprovedRefiner(**flow.config.to_dict()).fit(random_dataset, progress_bar=False)
    np.testing.assert_array_equal(fitted.refine(windows.observations, windows.actions).actions, nearest.actions)
    assert NonLocalRefiner(window=8).config.targets == "nonlocal"


def test_the_paper_baselines_refuse_bad_input(refiners, windows):
    flow = refiners["TrajectoryRefiner"]
    with pytest.raises(TypeError, match="a refiner or RefinerConfig fields, not both"):
        NearestImprovedRefiner(flow, window=8)
    with pytest.raises(TypeError, match="refiner must be a TrajectoryRefiner"):
        NearestImprovedRefiner(refiners["FTBRefiner"])
    with pytest.raises(TypeError, match="takes no options"):
        ReconstructionRefiner(flow).refine(windows.observations, windows.actions, steps=3)
    with pytest.raises(RuntimeError, match="RandomImprovedRefiner is not fitted"):
        RandomImprovedRefiner(window=8).refine(windows.observations, windows.actions)
    with pytest.raises(ValueError, match="targets: NonLocalRefiner trains on non-local pairs"):
        NonLocalRefiner(targets="local")
    for refiner in (flow, NearestImprovedRefiner(flow)):  # arrays without actions; a Windows batch carries them
        with pytest.raises(ValueError, match="actions are required unless observations is a Windows batch"):
            refiner.refine(windows.observations)
        np.testing.assert_array_equal(
            refiner.refine(windows).actions, refiner.refine(windows.observations, windows.actions).actions
        )
