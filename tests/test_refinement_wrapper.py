"""RefinementWrapper: shadow identity, exact restore, commit consistency, bad input."""

import gymnasium as gym
import numpy as np
import pytest

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import get_sim_state
from ctflow_gym.wrappers import RefinementWrapper


@pytest.fixture(scope="module")
def refiner(random_dataset):
    return TrajectoryRefiner(
        window=8,
        ae_steps=200,
        flow_steps=200,
        predictor_steps=100,
        inverse_dynamics_steps=300,
        ae_hidden=64,
        flow_hidden=64,
    ).fit(random_dataset, progress_bar=False)


def _actions(n, seed=0):
    return np.random.default_rng(seed).uniform(-0.4, 0.4, (n, 3)).astype(np.float32)


def _run(env, actions, seed=7):
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append(
            (
                obs,
                reward,
                terminated,
                truncated,
                {k: v for k, v in info.items() if k != "refinement"},
                get_sim_state(env),
            )
        )
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs, info))
    return trace


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, dict):
                assert u.keys() == v.keys()
                for key in u:
                    np.testing.assert_array_equal(u[key], v[key])
            else:
                np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("replay", [False, True])
def test_shadow_mode_leaves_the_episode_bit_for_bit(refiner, replay):
    actions = _actions(150)
    plain = _run(gym.make("Hopper-v5", max_episode_steps=60), actions)
    wrapped_env = RefinementWrapper(gym.make("Hopper-v5", max_episode_steps=60), refiner, strength=1.0, replay=replay)
    wrapped = _run(wrapped_env, actions)
    _assert_same(plain, wrapped)
    assert wrapped_env.totals.windows_refined > 5
    assert wrapped_env.totals.windows_replayed == (wrapped_env.totals.windows_refined if replay else 0)


def test_window_report_and_replay_truth(refiner):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiner, strength=1.0, replay=True)
    env.reset(seed=1)
    actions = _actions(8, seed=3)
    reports = []
    for t, action in enumerate(actions):
        _, _, terminated, _, info = env.step(action)
        assert not terminated
        if "refinement" in info:
            reports.append((t, info["refinement"]))
    assert [t for t, _ in reports] == [7]
    report = reports[0][1]
    np.testing.assert_array_equal(report["source_actions"], actions)
    assert report["actions"].shape == (8, 3) and report["observations"].shape == (8, 11)
    assert report["realized_gain"] == pytest.approx(report["realized_return"] - report["source_return"])
    # The refined return is what a fresh env gives for the executed actions from the same start.
    check = gym.make("Hopper-v5")
    check.reset(seed=1)
    expected = sum(check.step(a)[1] for a in report["executed_actions"])
    assert report["realized_return"] == expected
    assert np.isfinite(env.totals.mean_realized_gain)
    # Tracked execution (the default with an inverse-dynamics model) corrects the planned actions.
    assert not np.array_equal(report["executed_actions"], report["actions"])


def test_open_loop_execution_replays_the_refined_actions(refiner):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiner, strength=1.0, replay=True, execution="open_loop")
    env.reset(seed=1)
    for action in _actions(8, seed=3):
        _, _, _, _, info = env.step(action)
    report = info["refinement"]
    np.testing.assert_array_equal(report["executed_actions"], report["actions"])


def test_strength_zero_realizes_zero_gain(refiner):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiner, strength=0.0, replay=True)
    env.reset(seed=2)
    for action in _actions(16, seed=4):
        env.step(action)
    assert env.totals.realized_gains == [0.0, 0.0]


def test_commit_mode_keeps_time_counters(refiner):
    env = RefinementWrapper(
        gym.make("Hopper-v5", max_episode_steps=40), refiner, strength=1.0, replay=True, mode="commit"
    )
    env.reset(seed=5)
    steps, total, truncated, terminated = 0, 0.0, False, False
    committed_rewards = []
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(_actions(1, seed=steps)[0] * 0.5)
        steps += 1
        total += reward
        report = info.get("refinement")
        if report and report["committed"]:
            committed_rewards.append(report["realized_gain"])
            # the episode continues from the refined end state
            assert report["realized_gain"] > 0
    assert truncated or terminated
    if truncated:
        assert steps == 40  # no jump in the time-limit counter
    assert env.totals.windows_committed == len(committed_rewards) >= 1
    # the simulator clock agrees with the number of steps taken
    assert env.unwrapped.data.time == pytest.approx(steps * env.unwrapped.dt)


def test_commit_mode_judges_by_return_plus_value_of_the_end_state(refiner):
    def value(observation):
        return -1000.0 * float(observation[1])  # a strong preference on the torso angle

    gamma = 0.9
    env = RefinementWrapper(
        gym.make("Hopper-v5", max_episode_steps=200),
        refiner,
        strength=1.0,
        replay=True,
        mode="commit",
        value_fn=value,
        gamma=gamma,
    )
    obs, _ = env.reset(seed=3)
    reports, steps, done = [], 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(_actions(1, seed=steps)[0] * 0.5)
        steps += 1
        done = terminated or truncated
        report = info.get("refinement")
        if report is None:
            continue
        reports.append(report)
        tail = gamma**refiner.config.window
        assert report["committed"] == (
            not report["refined_terminated"] and report["refined_score"] > report["source_score"]
        )
        if report["committed"]:
            # the episode goes on from the refined end state, which the score valued
            assert report["refined_score"] == pytest.approx(report["realized_return"] + tail * value(obs))
    assert len(reports) >= 5
    by_return = [not r["refined_terminated"] and r["realized_return"] > r["source_return"] for r in reports]
    assert any(r["committed"] != b for r, b in zip(reports, by_return)), (
        "the value of the end state never changed a decision"
    )


def test_exception_in_refinement_restores_the_env(refiner, monkeypatch):
    env = RefinementWrapper(gym.make("Hopper-v5"), refiner, replay=True)
    env.reset(seed=0)
    for action in _actions(7):
        env.step(action)

    def broken_refine(*args, **kwargs):
        raise RuntimeError("boom")

    plain = gym.make("Hopper-v5")
    plain.reset(seed=0)
    for action in _actions(8):
        plain.step(action)
    monkeypatch.setattr(refiner, "refine", broken_refine)
    with pytest.raises(RuntimeError, match="boom"):
        env.step(_actions(8)[7])
    np.testing.assert_array_equal(get_sim_state(env), get_sim_state(plain))


def test_bad_inputs(refiner):
    with pytest.raises(ValueError, match=r"observation/action shapes \(17,\)/\(6,\) differ"):
        RefinementWrapper(gym.make("HalfCheetah-v5"), refiner)
    with pytest.raises(TypeError, match="continuous 1-D Box action space"):
        RefinementWrapper(gym.make("CartPole-v1"), refiner)
    with pytest.raises(ValueError, match="strength must be a finite number >= 0"):
        RefinementWrapper(gym.make("Hopper-v5"), refiner, strength=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        RefinementWrapper(gym.make("Hopper-v5"), refiner, mode="yolo")
    with pytest.raises(ValueError, match="needs replay=True"):
        RefinementWrapper(gym.make("Hopper-v5"), refiner, mode="commit")
    with pytest.raises(TypeError, match="value_fn must be a callable"):
        RefinementWrapper(gym.make("Hopper-v5"), refiner, replay=True, value_fn=3.0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        RefinementWrapper(gym.make("Hopper-v5"), refiner, replay=True, value_fn=lambda o: 0.0, gamma=1.5)
    with pytest.raises(TypeError, match="replay=True needs a MuJoCo env"):
        _non_mujoco_replay(refiner)


def _non_mujoco_replay(refiner):
    """A non-MuJoCo env with Hopper's sizes: refinement works, replay is refused."""
    from gymnasium.spaces import Box

    class Toy(gym.Env):
        observation_space = Box(-np.inf, np.inf, (11,), np.float64)
        action_space = Box(-1, 1, (3,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(11), {}

        def step(self, action):
            return np.zeros(11), 0.0, False, False, {}

    shadow = RefinementWrapper(Toy(), refiner)
    shadow.reset(seed=0)
    for _ in range(8):
        _, _, _, _, info = shadow.step(np.zeros(3, np.float32))
    assert "refinement" in info
    RefinementWrapper(Toy(), refiner, replay=True)
