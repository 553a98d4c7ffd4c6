"""RefinementWrapper with the ecosystem's own tools: gymnasium's checker and env specs,
gymnasium and SB3 vector envs, Minari's DataCollector.

Worker processes are started with "spawn" (gymnasium) and "forkserver" (SB3's own
default): with "fork", a worker that refines deadlocks once the parent has run torch
with more than one thread (its OpenMP pool does not survive a fork).
"""

from __future__ import annotations

import copy
import gc
import pickle
import subprocess
import sys
import warnings
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from ctflow_gym import TrajectoryRefiner, load_refiner
from ctflow_gym.data import load_dataset, make_windows
from ctflow_gym.data.minari_io import minari_root_at
from ctflow_gym.refine import NearestImprovedRefiner
from ctflow_gym.replay import SimStateRecorder, closed_loop_returns, get_sim_state
from ctflow_gym.wrappers import COMMITTED_INFO_KEY, RefinementStepData, RefinementWrapper

MAX_STEPS = 40


@pytest.fixture(scope="module")
def refiner(random_dataset):
    """A fitted refiner that exists only in memory (never saved)."""
    sizes = {"ae_steps": 150, "flow_steps": 150, "predictor_steps": 50, "ae_hidden": 64, "flow_hidden": 64}
    return TrajectoryRefiner(window=8, **sizes).fit(random_dataset, progress_bar=False)


@pytest.fixture(scope="module")
def refiner_folder(refiner, tmp_path_factory):
    """The same refiner saved to a checkpoint folder (a copy is saved: ``refiner`` stays in memory only)."""
    return copy.deepcopy(refiner).save(tmp_path_factory.mktemp("refiner") / "refiner")


@pytest.fixture(scope="module")
def sac_policy():
    from ctflow_gym.data import default_policy_path, load_sb3_policy

    return load_sb3_policy(default_policy_path())


def _hopper(max_steps: int = MAX_STEPS) -> gym.Env:
    return gym.make("Hopper-v5", max_episode_steps=max_steps)


def _wrapped(refiner, **kwargs) -> RefinementWrapper:
    """A module-level factory, so that spawned worker processes can unpickle it."""
    return RefinementWrapper(_hopper(), refiner, **kwargs)


def _monitored(refiner, **kwargs):
    """SB3's Monitor outside the wrapper, so that episode returns include what committed windows earned."""
    from stable_baselines3.common.monitor import Monitor

    return Monitor(_wrapped(refiner, **kwargs))


def _actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 3)).astype(np.float32)


def _trace(env: gym.Env, actions: np.ndarray, seed: int = 4) -> list:
    """Everything the env hands out for ``actions`` from ``reset(seed=seed)``, resetting after episode ends."""
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace += [obs, reward, terminated, truncated, info.get("refinement")]
        if terminated or truncated:
            trace.append(env.reset()[0])
    return trace


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict) or isinstance(y, dict):
            assert x.keys() == y.keys()
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
        else:
            np.testing.assert_array_equal(x, y)


def _checker_warnings(env: gym.Env) -> set[str]:
    """The messages of gymnasium's check_env, with the env's name cut off the one that names it.

    The render check is skipped: it makes the env in every render mode of Hopper, and
    "human" needs a display (GLFW aborts the process on a headless machine).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    return {str(w.message).split("(<")[0] for w in caught}


def test_fitted_refiner_pickles_and_refines_identically(refiner, random_dataset):
    windows = make_windows(random_dataset, window=8).subset(slice(0, 16))
    copied = pickle.loads(pickle.dumps(refiner))
    for original, twin in ((refiner, copied), (NearestImprovedRefiner(refiner), NearestImprovedRefiner(copied))):
        a = original.refine(windows.observations, windows.actions, strength=0.7)
        b = twin.refine(windows.observations, windows.actions, strength=0.7)
        for name in ("observations", "actions", "predicted_gain", "action_deviation", "latent_deviation"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{type(original)}: {name}")


def test_checkpoint_path_follows_save_load_and_fit(refiner, refiner_folder, random_dataset):
    assert refiner.checkpoint_path is None  # fitted, never saved
    loaded = load_refiner(refiner_folder)
    assert loaded.checkpoint_path == str(refiner_folder.resolve())
    assert TrajectoryRefiner.load(refiner_folder).checkpoint_path == str(refiner_folder.resolve())


@pytest.mark.parametrize("source", ["folder", "memory"])
@pytest.mark.parametrize("mode,replay", [("shadow", False), ("shadow", True), ("commit", True)])
def test_gymnasium_check_env_passes(refiner, refiner_folder, source, mode, replay):
    chosen = load_refiner(refiner_folder) if source == "folder" else refiner
    value_fn = (lambda obs: 0.0) if replay else None
    env = RefinementWrapper(gym.make("Hopper-v5"), chosen, replay=replay, mode=mode, value_fn=value_fn)
    # check_env also rebuilds the env from env.spec (gym.make) and closes it twice.
    assert _checker_warnings(env) == _checker_warnings(gym.make("Hopper-v5"))


def test_spec_records_the_refiner_folder_and_rebuilds_an_identical_env(refiner_folder):
    env = RefinementWrapper(
        _hopper(), str(refiner_folder), strength=0.8, replay=True, mode="commit", refine_options={"steps": 4}
    )
    kwargs = env.spec.additional_wrappers[-1].kwargs
    print(env.spec.pprint(disable_print=True, print_all=True))
    assert kwargs == {
        "refiner": str(refiner_folder.resolve()),
        "strength": 0.8,
        "replay": True,
        "mode": "commit",
        "steps": None,
        "value_fn": None,
        "gamma": 0.99,
        "refine_options": {"steps": 4},
        "candidates": 1,
        "execution": "auto",
    }  # the logger is not recorded
    text = env.spec.to_json()
    rebuilt = gym.make(EnvSpec.from_json(text))
    assert isinstance(rebuilt, RefinementWrapper) and rebuilt.spec.to_json() == text
    actions = _actions(90)
    _assert_same(_trace(env, actions), _trace(rebuilt, actions))
    assert env.totals.windows_refined >= 8 and env.totals.summary() == rebuilt.totals.summary()


def test_spec_of_an_in_memory_refiner_says_so(refiner, tmp_path):
    env = RefinementWrapper(_hopper(), refiner, replay=True, mode="commit", value_fn=lambda obs: float(obs[0]))
    kwargs = env.spec.additional_wrappers[-1].kwargs
    assert kwargs["refiner"].startswith("<in-memory TrajectoryRefiner ")
    assert kwargs["value_fn"].startswith("<in-memory function ")
    text = env.spec.to_json()  # valid JSON: Minari can store it with a dataset
    # In this process, while the refiner lives, the spec rebuilds the same env (as check_env needs).
    rebuilt = gym.make(EnvSpec.from_json(text))
    assert rebuilt.refiner is refiner and rebuilt.spec.to_json() == text
    actions = _actions(50, seed=1)
    _assert_same(_trace(env, actions), _trace(rebuilt, actions))
    # Anywhere else it cannot be rebuilt, and gym.make says why and what to do.
    code = (
        "import sys, gymnasium as gym; from gymnasium.envs.registration import EnvSpec\n"
        "try:\n    gym.make(EnvSpec.from_json(sys.stdin.read()))\n"
        "except ValueError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=120, check=False
    )
    assert "refiner: the env spec records <in-memory TrajectoryRefiner" in result.stdout, result.stderr
    assert "existed only in the memory" in result.stdout and "refiner.save(folder)" in result.stdout
    # Once saved, the same wrapper records the folder.
    saved = copy.deepcopy(refiner)
    later = RefinementWrapper(_hopper(), saved)
    assert later.spec.additional_wrappers[-1].kwargs["refiner"].startswith("<in-memory")
    saved.save(tmp_path / "saved")
    assert later.spec.additional_wrappers[-1].kwargs["refiner"] == str((tmp_path / "saved").resolve())
    # A handle whose refiner is gone is refused with the same message.
    handle = RefinementWrapper(_hopper(), copy.deepcopy(refiner)).spec.additional_wrappers[-1].kwargs["refiner"]
    gc.collect()
    with pytest.raises(ValueError, match="refiner: the env spec records <in-memory TrajectoryRefiner"):
        RefinementWrapper(_hopper(), handle)


def test_refiner_folder_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="refiner: .* is not a refiner checkpoint folder"):
        RefinementWrapper(_hopper(), str(tmp_path / "missing"))


def _vector_run(venv, steps: int = 60) -> list:
    obs, _ = venv.reset(seed=[11, 12])
    trace = [obs]
    for t in range(steps):
        actions = np.stack([_actions(1, seed=t)[0], _actions(1, seed=t + 99)[0]])
        obs, reward, terminated, truncated, infos = venv.step(actions)
        trace += [obs, reward, terminated, truncated, infos.get("_refinement"), infos.get("refinement")]
    return trace


def test_gymnasium_vector_envs(refiner, refiner_folder):
    kwargs = {"strength": 1.0, "replay": True, "mode": "commit"}
    sync = gym.vector.SyncVectorEnv([partial(_wrapped, refiner, **kwargs)] * 2)
    expected = _vector_run(sync)
    # The in-memory refiner is pickled to each spawned worker.
    async_env = gym.vector.AsyncVectorEnv([partial(_wrapped, refiner, **kwargs)] * 2, context="spawn")
    try:
        _assert_same(_vector_run(async_env), expected)
    finally:
        async_env.close()
    # The README's form: make_vec with the refiner's folder; each env loads its own copy.
    made = gym.make_vec(
        "Hopper-v5",
        num_envs=2,
        vectorization_mode="sync",
        max_episode_steps=MAX_STEPS,
        wrappers=[partial(RefinementWrapper, refiner=str(refiner_folder), **kwargs)],
    )
    _assert_same(_vector_run(made), expected)
    masks = [m for m in expected[5::6] if m is not None]
    reports = [r for r in expected[6::6] if r is not None]
    assert len(masks) >= 4 and all(m.all() for m in masks)  # both envs close a window every 8 steps
    assert all(r["realized_gain"].shape == (2,) and r["actions"].shape == (2, 8, 3) for r in reports)
    assert any(r["committed"].any() for r in reports)


def test_sb3_vec_envs_with_evaluate_policy(refiner, sac_policy):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    kwargs = {"strength": 1.0, "replay": True, "mode": "commit"}

    def evaluate(venv):
        reports = []

        def collect(local_vars, _):
            if "refinement" in local_vars["info"]:
                reports.append((local_vars["i"], local_vars["info"]["refinement"]))

        venv.seed(3)
        returns, lengths = evaluate_policy(
            sac_policy, venv, n_eval_episodes=2, return_episode_rewards=True, callback=collect
        )
        venv.close()
        return returns, lengths, reports

    returns, lengths, reports = evaluate(DummyVecEnv([partial(_monitored, refiner, **kwargs)] * 2))
    sub_returns, sub_lengths, sub_reports = evaluate(
        SubprocVecEnv([partial(_monitored, refiner, **kwargs)] * 2, start_method="forkserver")
    )
    assert lengths == sub_lengths and returns == sub_returns
    assert len(reports) == len(sub_reports) >= 2 * (MAX_STEPS // 8 - 1)
    for (i, a), (j, b) in zip(reports, sub_reports):
        assert i == j
        _assert_same([a], [b])
    # The returns SB3 measures are the wrapped env's, committed gains included.
    single = _wrapped(refiner, **kwargs)
    obs, _ = single.reset(seed=3)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = single.step(sac_policy.predict(obs, deterministic=True)[0])
        total, done = total + reward, terminated or truncated
    assert single.totals.windows_committed >= 1
    assert returns[0] == pytest.approx(total, rel=1e-6)


def _collect(refiner, root, inside: bool, episodes: int = 3, policy=None) -> tuple[list, int]:
    """Record commit-mode episodes with Minari; the recorder outside (recommended) or inside the wrapper."""
    from minari import DataCollector

    kwargs = {"strength": 1.0, "replay": True, "mode": "commit"}
    if inside:
        env = RefinementWrapper(SimStateRecorder(gym.make("Hopper-v5", max_episode_steps=48)), refiner, **kwargs)
    else:
        env = SimStateRecorder(RefinementWrapper(gym.make("Hopper-v5", max_episode_steps=48), refiner, **kwargs))
    with minari_root_at(root):
        collector = DataCollector(env, step_data_callback=RefinementStepData, record_infos=True)
        gains = []
        for episode in range(episodes):
            obs, _ = collector.reset(seed=episode)
            done = False
            while not done:
                obs, _, terminated, truncated, info = collector.step(policy.predict(obs, deterministic=True)[0])
                done = terminated or truncated
                report = info.get("refinement")
                if report is not None and report["committed"]:
                    gains.append(report["realized_gain"])
                    # the committed step's info describes the refined end state the episode goes on from
                    np.testing.assert_array_equal(info["sim_state"], get_sim_state(collector))
                    assert info["x_position"] == collector.unwrapped.data.qpos[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari asks for an author e-mail
            collector.create_dataset(
                dataset_id="test/hopper/refined-v0", eval_env="Hopper-v5", algorithm_name="SAC + refiner"
            )
        collector.close()
    return gains, root / "test" / "hopper" / "refined-v0"


def test_minari_records_committed_episodes_that_replay(refiner_folder, sac_policy, tmp_path):
    refiner = load_refiner(refiner_folder)
    gains, path = _collect(refiner, tmp_path / "outside", inside=False, policy=sac_policy)
    assert len(gains) >= 2
    dataset = load_dataset(path)
    assert dataset.env_spec.additional_wrappers[0].kwargs["refiner"] == str(refiner_folder.resolve())
    recovered = dataset.recover_environment()  # gym.make of the recorded spec loads the refiner
    assert isinstance(recovered.env, RefinementWrapper) and recovered.env.mode == "commit"
    # A recorder inside the wrapper records the same data (the wrapper refreshes sim_state on commits).
    _, inside_path = _collect(refiner, tmp_path / "inside", inside=True, policy=sac_policy)
    inside = load_dataset(inside_path)
    for a, b in zip(dataset.iterate_episodes(), inside.iterate_episodes()):
        for name in ("observations", "actions", "rewards"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for key in a.infos:
            np.testing.assert_array_equal(a.infos[key], b.infos[key])

    windows = make_windows(dataset, window=8, stride=8)  # aligned with the wrapper's windows
    committed = np.zeros(len(windows), dtype=bool)
    for i, (episode_id, start) in enumerate(zip(windows.episode_ids, windows.start_steps)):
        episode = next(iter(dataset.iterate_episodes([int(episode_id)])))
        committed[i] = np.asarray(episode.infos[COMMITTED_INFO_KEY])[1 + start : 1 + start + 8].any()
    returns, _, _ = closed_loop_returns(windows.env_id, windows.sim_states, windows.actions)
    recorded = windows.rewards.sum(axis=1)
    # Windows of plain-env steps replay bit for bit from their recorded sim_state, including
    # those that start where a committed window put the episode.
    np.testing.assert_array_equal(returns[~committed], recorded[~committed])
    same_episode = windows.episode_ids[:-1] == windows.episode_ids[1:]
    after_commit = committed[:-1] & ~committed[1:] & same_episode
    assert after_commit.any(), "no plain window starts where a commit put the episode"
    # A committed window's recorded rewards hold the policy's steps plus the window's realised gain.
    assert committed.sum() == len(gains)
    np.testing.assert_allclose(recorded[committed] - returns[committed], gains, atol=1e-9)
