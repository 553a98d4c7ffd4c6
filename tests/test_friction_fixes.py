"""Issue 32's friction fixes, each checked through the entry a user reaches first (mostly the CLI)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ctflow_gym.cli import main


@pytest.mark.parametrize("command", ["build", "thin", "combine"])
def test_dataset_writers_accept_a_relative_out(command, random_dataset_path, tmp_path, monkeypatch, capsys):
    """A relative ``--out`` used to be joined twice (scratch folder inside itself) and always failed."""
    monkeypatch.chdir(tmp_path)
    source = str(random_dataset_path)
    argv = {
        "build": ["dataset", "build", "--kind", "random", "--steps", "200", "--no-progress"],
        "thin": ["dataset", "thin", source, "--keep-every", "2", "--no-progress"],
        "combine": ["dataset", "combine", source, source, "--dataset-id", "test/hopper/twice-v0"],
    }[command]
    assert main([*argv, "--out", "mroot"]) == 0, capsys.readouterr().err
    written = Path(capsys.readouterr().out.split("dataset written to ")[1].strip())
    assert (tmp_path / written / "data" / "metadata.json").is_file()
    assert [p.name for p in (tmp_path / "mroot").iterdir()] == ["ctflow" if command != "combine" else "test"]


# ---------------------------------------------------------------- predict checks its observation; spaces match


@pytest.fixture(scope="module")
def tiny_refiner(random_dataset):
    """A refiner fitted in seconds on the tiny Hopper random dataset (its numbers mean nothing)."""
    from ctflow_gym import TrajectoryRefiner

    sizes = dict(ae_hidden=32, flow_hidden=32, batch_size=32)
    steps = dict(ae_steps=20, flow_steps=20, predictor_steps=10, inverse_dynamics_steps=10)
    return TrajectoryRefiner(window=8, seed=0, **sizes, **steps).fit(random_dataset, progress_bar=False)


NON_FINITE = {
    "all nan": np.full(11, np.nan),
    "one inf": np.where(np.arange(11) == 3, np.inf, 0.0),
    "nan in a batch": np.stack([np.zeros(11), np.full(11, np.nan)]),
}


@pytest.fixture(scope="module")
def tiny_agent(random_dataset_path):
    """A GTPAgent trained for two steps: enough to act."""
    from agents import GTPAgent

    tiny = dict(actor_hidden=32, critic_hidden=32, critic_ensemble=1, batch_size=32, device="cpu")
    return GTPAgent("Hopper-v5", random_dataset_path, seed=0, **tiny).learn(2)


@pytest.mark.parametrize("case", NON_FINITE, ids=list(NON_FINITE))
def test_gtp_predict_rejects_a_non_finite_observation(case, tiny_agent):
    agent = tiny_agent
    assert np.isfinite(agent.predict(np.zeros(11))[0]).all()
    with pytest.raises(ValueError, match=r"observation must hold finite values.*\(11,\).*got (nan|inf)"):
        agent.predict(NON_FINITE[case])


def test_refined_policy_predict_checks_the_observation(tiny_refiner):
    import gymnasium as gym

    from ctflow_gym import RefinedPolicy
    from ctflow_gym.data import default_policy_path, load_sb3_policy

    env = gym.make("Hopper-v5", max_episode_steps=30)
    refined = RefinedPolicy(load_sb3_policy(default_policy_path()), tiny_refiner, env, verify=False)
    obs, _ = env.reset(seed=0)
    for observation in (np.full(11, np.nan), np.where(np.arange(11) == 3, -np.inf, obs)):
        with pytest.raises(ValueError, match=r"observation must hold finite values.*\(11,\).*got (nan|-inf)"):
            refined.predict(observation)
    with pytest.raises(ValueError, match=r"observation must have shape \(11,\)"):
        refined.predict(np.zeros(5))
    assert np.isfinite(refined.predict(obs)[0]).all()  # a good observation still works after the refusals


def test_refined_policy_refuses_a_policy_for_another_env_when_built(tiny_refiner):
    import gymnasium as gym
    from stable_baselines3 import SAC

    from ctflow_gym import RefinedPolicy

    walker_policy = SAC("MlpPolicy", gym.make("Walker2d-v5"), seed=0, device="cpu")  # obs 17, actions 6
    with pytest.raises(ValueError, match=r"policy: .*\(17,\).*\(6,\).*\(11,\).*\(3,\)"):
        RefinedPolicy(walker_policy, tiny_refiner, gym.make("Hopper-v5"), verify=False)


def test_refined_policy_names_a_callable_policy_whose_actions_have_the_wrong_size(tiny_refiner):
    """A callable has no spaces to check when built; its first action is checked instead."""
    import gymnasium as gym

    from ctflow_gym import RefinedPolicy

    env = gym.make("Hopper-v5", max_episode_steps=30)
    refined = RefinedPolicy(lambda obs: np.zeros(6), tiny_refiner, env, verify=False)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"policy: .*action of shape \(6,\).*\(3,\)"):
        refined.predict(obs)


# ---------------------------------------------------------------- CLI output: a line per evaluation, rounded numbers

LONG_FLOAT = re.compile(r"\d\.\d{4,}")
"""A number printed with more than three decimals: not rounded for a reader."""


def test_agent_train_prints_a_rounded_line_per_evaluation(random_dataset_path, tmp_path, capsys):
    tiny = ["--batch-size", "32", "--critic-ensemble", "1", "--action-candidates", "2", "--sampling-steps", "1"]
    argv = ["agent", "train", "--dataset", str(random_dataset_path), "--steps", "4", *tiny]
    argv += ["--eval-freq", "2", "--eval-episodes", "2", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    evaluation = r"score -?\d+\.\d \(return -?\d+\.\d \+- \d+\.\d over 2 episodes\)"
    assert re.search(rf"^step 2: {evaluation}$", out, re.M) and re.search(rf"^step 4: {evaluation}$", out, re.M), out
    assert re.search(rf"^GTPAgent \(4 steps\) saved to .*: {evaluation}$", out, re.M), out
    assert not LONG_FLOAT.search(out), out
    assert (
        main(["agent", "evaluate", str(tmp_path / "run" / "model"), "--episodes", "2", "--out", str(tmp_path / "e")])
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(rf"^GTPAgent, 2 episodes, K=1, N=2: {evaluation}$", out, re.M) and not LONG_FLOAT.search(out)


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return float(found.group(1))


def test_wrap_commit_shows_the_policy_alone_beside_every_refined_number(tiny_refiner, tmp_path, capsys):
    import gymnasium as gym

    from ctflow_gym.data import load_sb3_policy, shipped_policy_path
    from ctflow_gym.wrappers import run_episodes

    tiny_refiner.save(tmp_path / "refiner")
    policy = str(shipped_policy_path("medium"))  # falls within a few hundred steps: short episodes
    argv = ["wrap", str(tmp_path / "refiner"), "--policy", policy, "--mode", "commit", "--episodes", "2"]
    assert main([*argv, "--seed", "5", "--out", str(tmp_path / "wrap")]) == 0
    out = capsys.readouterr().out
    assert not LONG_FLOAT.search(out), out
    report = json.loads((tmp_path / "wrap" / "wrap.json").read_text())
    alone = run_episodes(gym.make("Hopper-v5"), load_sb3_policy(policy), 2, seed=5)
    assert report["baseline_returns"] == alone  # the same policy, unrefined, on the same reset seeds
    refined, baseline = np.mean(report["episode_returns"]), np.mean(alone)
    episodes = r"return (-?\d+\.\d) \+- \d+\.\d with refinement, (-?\d+\.\d) \+- \d+\.\d for the policy alone"
    assert _number(episodes, out) == round(refined, 1)
    assert re.search(episodes, out).group(2) == f"{baseline:.1f}"
    assert _number(r"on the same seeds: ([+-]\d+\.\d) ", out) == round(refined - baseline, 1)
    windows = r"per replayed window, return (-?\d+\.\d) refined vs (-?\d+\.\d) for the policy's own "
    windows += r"\(mean realised gain ([+-]\d+\.\d+) "
    window = re.search(windows, out)
    assert window, out
    assert float(window.group(2)) == round(report["mean_source_return"], 1)
    assert float(window.group(3)) == round(report["mean_realized_gain"], 3)


def test_wrap_shadow_says_its_returns_are_the_policy_alone(tiny_refiner, tmp_path, capsys):
    tiny_refiner.save(tmp_path / "refiner")
    from ctflow_gym.data import shipped_policy_path

    argv = ["wrap", str(tmp_path / "refiner"), "--policy", str(shipped_policy_path("medium")), "--episodes", "1"]
    assert main([*argv, "--out", str(tmp_path / "wrap")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"return -?\d+\.\d \+- \d+\.\d, the policy alone \(shadow mode", out), out
    assert "refined vs" in out and not LONG_FLOAT.search(out)


def test_refiner_evaluate_shows_the_windows_own_return_beside_the_refined(
    tiny_refiner, random_dataset_path, tmp_path, capsys
):
    tiny_refiner.save(tmp_path / "refiner")
    argv = ["refiner", "evaluate", str(tmp_path / "refiner"), "--dataset", str(random_dataset_path)]
    assert main([*argv, "--windows", "6", "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    line = (
        r"window return (-?\d+\.\d) refined vs (-?\d+\.\d) for the dataset's own \(mean realised gain ([+-]\d\.\d{3}) "
    )
    found = re.search(line, out)
    assert found, out
    source, gain = report["source_return"]["mean"], report["realized_gain"]["mean"]
    assert [float(x) for x in found.groups()] == [round(source + gain, 1), round(source, 1), round(gain, 3)]
    assert not LONG_FLOAT.search(out), out


def test_demo_summary_prints_rounded_numbers_with_each_baseline(capsys):
    from ctflow_gym.cli.demo import print_summary

    gain = {"mean": 0.123456789, "se": 0.0456789}
    summary = {
        "dataset": {"id": "ctflow/hopper/medium-replay-v1", "episodes": 10, "steps": 999, "return_min": 1.23456789},
        "refiner_heldout": {
            "windows": 40,
            "strength": 0.5,
            "proxy_gain": {"mean": 0.0987654321, "se": 0.01},
            "realized_gain": gain,
            "realized_gain_positive_fraction": 0.55555,
            "source_return": {"mean": 38.123456789, "se": 1.0},
        },
        "wrapper": {
            "episode_returns": [1012.3456789],
            "windows_refined": 60,
            "mean_proxy_gain": 0.0123456789,
            "mean_realized_gain": -0.0234567891,
            "mean_source_return": 26.0123456789,
            "mean_refined_return": 25.9888888888,
        },
        "sac_policy": {"mean_return": 1012.3456789, "normalized_score": 31.23456789},
        "gtp": {"steps": 20, "sampling_steps": 5, "mean_return": 30.0123456, "std_return": 0.4123456},
        "timings_s": {"refiner_s": 12.3456, "total_s": 45.6789},
        "files": {"refiner": "out/refiner"},
    }
    summary["dataset"]["return_max"] = 3000.987654321
    summary["gtp"]["normalized_score"] = 1.5448492240518834
    print_summary(summary)
    out = capsys.readouterr().out
    assert "window return 38.2 refined vs 38.1 for the dataset's own" in out, out
    assert "window return 26.0 refined vs 26.0 for the policy's own" in out, out
    assert "D4RL score 1.5" in out and not LONG_FLOAT.search(out), out
