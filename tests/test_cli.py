import json
from pathlib import Path

import numpy as np
import pytest
from wandb_records import logged_keys, read_offline_run

from ctflow_gym.cli import main
from ctflow_gym.data import load_dataset
from ctflow_gym.data.minari_io import build_record


def test_dataset_info_prints_summary(random_dataset_path, capsys):
    assert main(["dataset", "info", str(random_dataset_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 1500 and summary["env_id"] == "Hopper-v5"


def test_unknown_dataset_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert main(["dataset", "info", "nobody/nothing-v0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctflow: error: dataset: no Minari dataset") and "Traceback" not in err


def test_build_through_the_cli(tmp_path, capsys):
    assert main(["dataset", "build", "--kind", "random", "--steps", "50", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "ctflow" / "hopper" / "random-v0" / "data" / "metadata.json").is_file()
    assert main(["dataset", "build", "--kind", "random", "--steps", "50", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err


# ---------------------------------------------------------------- issue 6: the workflow


def test_dataset_list_and_thin_to_a_step_target(random_dataset_path, tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    assert (
        main(
            [
                "dataset",
                "thin",
                str(random_dataset_path),
                "--target-steps",
                "500",
                "--out",
                str(root),
                "--dataset-id",
                "test/hopper/small-v0",
            ]
        )
        == 0
    )
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    capsys.readouterr()
    assert main(["dataset", "list"]) == 0
    listed = capsys.readouterr().out
    shipped, recipes = listed.split("recipes (")
    assert "ctflow/hopper/medium-replay-v1" in shipped and "ctflow/pointmaze/umaze-v1" in recipes
    assert "test/hopper/small-v0" in listed.split("other local datasets")[1]
    pieces = ["dataset", "thin", str(random_dataset_path), "--target-steps", "300", "--piece", "10", "--out", str(root)]
    assert main(pieces + ["--dataset-id", "test/hopper/pieces-v0", "--no-progress"]) == 0
    assert build_record(load_dataset(root / "test/hopper/pieces-v0"))["thinned"]["piece"] == 10
    best = ["dataset", "thin", str(random_dataset_path), "--top-fraction", "0.1", "--out", str(root)]
    assert main(best + ["--dataset-id", "test/hopper/best-v0", "--no-progress"]) == 0
    assert main(["dataset", "info", "test/hopper/best-v0"]) == 0
    assert '"top_fraction": 0.1' in capsys.readouterr().out
    assert main(best[:4] + ["1.5"] + best[5:] + ["--dataset-id", "test/hopper/x-v0"]) == 2
    assert "top_fraction" in capsys.readouterr().err


def test_demo_end_to_end_with_wandb_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "demo",
        "--refiner-steps",
        "60",
        "--held-out-windows",
        "40",
        "--episodes",
        "1",
        "--gtp-steps",
        "20",
        "--eval-episodes",
        "1",
        "--wandb",
        "offline",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "realised gain when replayed in MuJoCo" in printed and "D4RL score" in printed and "wandb sync" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gtp"]["steps"] == 20 and len(summary["gtp"]["returns"]) == 1
    assert summary["wrapper"]["windows_refined"] == summary["wrapper"]["windows_replayed"] > 0
    assert np.isfinite(summary["refiner_heldout"]["realized_gain"]["mean"])
    for name in ("refinement_path.png", "returns.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "refiner" / "weights.safetensors").is_file() and (out / "gtp" / "checkpoint.json").is_file()
    run = read_offline_run(Path(summary["files"]["wandb_run"]))
    keys = logged_keys(run)
    for key in (
        "refiner/ae_loss",
        "refiner/flow_loss",
        "wrapper/realized_gain",
        "train/actor_loss",
        "train/critic_loss",
        "demo/gtp_normalized_score",
        "demo/returns/_type",
        "refiner/refinement_path/_type",
    ):
        assert key in keys, key
    assert run["config"]["demo"]["gtp_steps"] == 20


def test_refiner_fit_evaluate_and_wrap(random_dataset_path, tmp_path, capsys):
    fit_out = tmp_path / "fit"
    assert (
        main(
            [
                "refiner",
                "fit",
                "--dataset",
                str(random_dataset_path),
                "--window",
                "8",
                "--ae-steps",
                "50",
                "--flow-steps",
                "50",
                "--predictor-steps",
                "20",
                "--inverse-dynamics-steps",
                "50",
                "--out",
                str(fit_out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (fit_out / "refiner" / "checkpoint.json").is_file() and (fit_out / "refinement_path.png").is_file()
    eval_out = tmp_path / "eval"
    assert (
        main(
            [
                "refiner",
                "evaluate",
                str(fit_out / "refiner"),
                "--dataset",
                str(random_dataset_path),
                "--windows",
                "20",
                "--out",
                str(eval_out),
            ]
        )
        == 0
    )
    report = json.loads((eval_out / "evaluation.json").read_text())
    assert report["windows"] == 20 and "realized_gain" in report
    wrap_out = tmp_path / "wrap"
    assert main(["wrap", str(fit_out / "refiner"), "--episodes", "1", "--out", str(wrap_out)]) == 0
    wrapped = json.loads((wrap_out / "wrap.json").read_text())
    assert wrapped["windows_replayed"] == wrapped["windows_refined"] > 0
    assert wrapped["windows_committed"] == 0 and wrapped["mode"] == "shadow"
    assert "mean realised gain" in capsys.readouterr().out
    commit_out = tmp_path / "commit"
    assert (
        main(
            [
                "wrap",
                str(fit_out / "refiner"),
                "--episodes",
                "1",
                "--mode",
                "commit",
                "--critic-tail",
                "--out",
                str(commit_out),
            ]
        )
        == 0
    )
    committed = json.loads((commit_out / "wrap.json").read_text())
    assert committed["mode"] == "commit" and committed["value_tail"] is True
    assert 0 <= committed["windows_committed"] <= committed["windows_replayed"] > 0
    assert "commit mode" in capsys.readouterr().out


def test_refiner_fit_makes_an_ensemble_that_evaluates_on_shared_held_out_episodes(random_dataset_path, tmp_path):
    from ctflow_gym import load_refiner

    out = tmp_path / "ensemble"
    tiny = ["--window", "8", "--ae-steps", "30", "--flow-steps", "30", "--predictor-steps", "10"]
    argv = ["refiner", "fit", "--dataset", str(random_dataset_path), *tiny, "--inverse-dynamics-steps", "30"]
    argv += ["--ensemble-seeds", "4", "5", "--combine", "mean", "--agreement-gate", "0.5", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    ensemble = load_refiner(out / "refiner")
    assert type(ensemble).__name__ == "RefinerEnsemble" and (ensemble.combine, ensemble.agreement_gate) == ("mean", 0.5)
    info = json.loads((out / "fit_info.json").read_text())
    assert [m["held_out_episodes"] for m in info["members"]] == [info["held_out_episodes"]] * 2
    eval_out = tmp_path / "eval"
    evaluate = ["refiner", "evaluate", str(out / "refiner"), "--dataset", str(random_dataset_path), "--windows", "10"]
    assert main([*evaluate, "--out", str(eval_out)]) == 0
    assert json.loads((eval_out / "evaluation.json").read_text())["windows"] == 10


def test_evaluation_windows_come_from_held_out_episodes(random_dataset, tmp_path):
    from ctflow_gym import TrajectoryRefiner
    from ctflow_gym.refine.evaluation import held_out_windows

    tiny = dict(window=8, ae_steps=20, flow_steps=20, predictor_steps=10, inverse_dynamics_steps=20, seed=1)
    refiner = TrajectoryRefiner(**tiny).fit(random_dataset, progress_bar=False)
    windows = held_out_windows(refiner, random_dataset, 15, seed=0)
    assert len(windows) == 15 and set(windows.episode_ids) <= set(refiner.held_out_episodes.tolist())
    assert windows.sim_states is not None
    nothing_held = TrajectoryRefiner(held_out_fraction=0.0, **tiny).fit(random_dataset, progress_bar=False)
    with pytest.raises(ValueError, match="no held-out episode"):
        held_out_windows(nothing_held, random_dataset, 15, seed=0)


def test_agent_train_resume_and_evaluate(random_dataset_path, tmp_path, capsys):
    out = tmp_path / "agent"
    common = [
        "--dataset",
        str(random_dataset_path),
        "--batch-size",
        "32",
        "--eval-episodes",
        "1",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(["agent", "train", "--agent", "gtp", "--steps", "10", "--checkpoint-freq", "5", *common]) == 0
    meta = json.loads((out / "model" / "checkpoint.json").read_text())
    assert meta["num_timesteps"] == 10 and meta["kind"] == "agent:GTPAgent" and meta["config"]["batch_size"] == 32
    assert main(["agent", "train", "--steps", "15", "--resume", "--cuda-graph", "off", *common]) == 0
    assert json.loads((out / "model" / "checkpoint.json").read_text())["num_timesteps"] == 15
    evaluate = ["agent", "evaluate", str(out / "model"), "--episodes", "1", "--out", str(tmp_path / "eval")]
    assert main([*evaluate, "--sampling-steps", "2", "--action-candidates", "4"]) == 0
    assert "GTPAgent, 1 episodes, K=2, N=4" in capsys.readouterr().out
    assert main(evaluate) == 0
    assert "K=5, N=50" in capsys.readouterr().out  # the saved K and N
    assert main([*evaluate, "--action-candidates", "0"]) == 2
    assert "--action-candidates must be >= 1" in capsys.readouterr().err
    assert main([*evaluate, "--action-candidates", "4", "--candidate-pessimism", "1000"]) == 0
    assert "N=4, beta=1000" in capsys.readouterr().out  # the five default critics' spread ranks the candidates
    assert main([*evaluate, "--candidate-pessimism", "-1"]) == 2
    assert "--candidate-pessimism must be a finite number >= 0; got -1.0" in capsys.readouterr().err
    assert main([*evaluate[:4], "2", "--envs", "2", *evaluate[5:]]) == 0  # 2 episodes in 2 envs at once
    assert len(json.loads((tmp_path / "eval" / "evaluation.json").read_text())["returns"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "train", "--agent", "nope", *common])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in err and "gtp" in err


def test_agent_train_and_evaluate_bc(random_dataset_path, tmp_path, capsys):
    """``--agent bc`` trains behaviour cloning; ``--top-fraction`` makes it filtered BC (BC only)."""
    out = tmp_path / "bc"
    common = ["--dataset", str(random_dataset_path), "--steps", "10", "--batch-size", "32", "--eval-episodes", "1"]
    common += ["--device", "cpu", "--no-progress"]
    assert main(["agent", "train", "--agent", "bc", "--top-fraction", "0.1", *common, "--out", str(out)]) == 0
    assert "BCAgent (10 steps) saved to" in capsys.readouterr().out
    meta = json.loads((out / "model" / "checkpoint.json").read_text())
    assert meta["kind"] == "agent:BCAgent" and meta["config"]["top_fraction"] == 0.1 and meta["num_timesteps"] == 10
    evaluate = ["agent", "evaluate", str(out / "model"), "--episodes", "1", "--out", str(tmp_path / "eval")]
    assert main(evaluate) == 0
    assert "BCAgent, 1 episodes: " in capsys.readouterr().out
    mistakes = [
        (["--agent", "bc", "--top-fraction", "1.5"], "--top-fraction must be in (0, 1]"),
        (["--agent", "gtp", "--top-fraction", "0.1"], "--top-fraction: agent 'gtp' has no top_fraction setting"),
        (["--agent", "bc", "--eta", "1"], "--eta: agent 'bc' has no eta setting"),
    ]
    for flags, expected in mistakes:
        assert main(["agent", "train", *flags, *common, "--out", str(tmp_path / "x")]) == 2
        assert expected in capsys.readouterr().err
    assert main([*evaluate, "--sampling-steps", "2"]) == 2
    assert "--sampling-steps: a BCAgent has no sampling_steps setting" in capsys.readouterr().err


def test_agent_train_keeps_the_checkpoint_best_on_validation_episodes(random_dataset_path, tmp_path, capsys):
    """``--select-every``: OUT/best is the kept step's agent, OUT/model the last step's (what --resume continues)."""
    out = tmp_path / "bc"
    common = ["--dataset", str(random_dataset_path), "--steps", "20", "--batch-size", "32", "--eval-episodes", "1"]
    common += ["--device", "cpu", "--no-progress", "--agent", "bc", "--out", str(out)]
    assert main(["agent", "train", *common, "--select-every", "5", "--select-episodes", "1"]) == 0
    printed = capsys.readouterr().out
    kept = int(printed.split("BCAgent kept step ")[1].split(" ")[0])
    assert kept in (5, 10, 15, 20) and "the last step's checkpoint (20 steps)" in printed
    assert json.loads((out / "best" / "checkpoint.json").read_text())["num_timesteps"] == kept
    assert json.loads((out / "model" / "checkpoint.json").read_text())["num_timesteps"] == 20
    assert main(["agent", "train", *common, "--select-every", "-5"]) == 2
    assert "--select-every and --select-seed must be >= 0" in capsys.readouterr().err


def test_user_mistakes_are_one_line_errors(tmp_path, capsys, monkeypatch, random_dataset_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["agent", "train", "--dataset", str(random_dataset_path), "--steps", "1", "--out", str(a_file)], "--out"),
        (["demo", "--device", "cuda:7", "--out", str(tmp_path / "d")], "--device"),
        (["agent", "train", "--dataset", "nobody/nothing-v0", "--out", str(tmp_path / "n")], "no Minari dataset"),
        (["demo", "--gtp-steps", "0", "--out", str(tmp_path / "z")], "--gtp-steps must be >= 1"),
        (["agent", "train", "--critic-ensemble", "0", "--out", str(tmp_path / "c")], "--critic-ensemble must be >= 1"),
    ]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cases.append((["wrap", "somewhere", "--wandb", "online", "--out", str(tmp_path / "w")], "no checkpoint folder"))
    cases.append(
        (
            [
                "agent",
                "train",
                "--dataset",
                str(random_dataset_path),
                "--steps",
                "1",
                "--wandb",
                "online",
                "--out",
                str(tmp_path / "o"),
            ],
            "wandb login",
        )
    )
    fit = ["refiner", "fit", "--dataset", str(random_dataset_path)]
    cases.append(([*fit, "--combine", "mean", "--out", str(tmp_path / "c")], "pass --ensemble-seeds too"))
    cases.append(([*fit, "--ensemble-seeds", "1", "1", "--out", str(tmp_path / "s")], "at least 2 distinct seeds"))
    gate = ["--ensemble-seeds", "1", "2", "--agreement-gate", "2"]
    cases.append(([*fit, *gate, "--out", str(tmp_path / "g")], "--agreement-gate must be in [0, 1]"))
    no_model = ["agent", "evaluate", str(tmp_path / "no-model"), "--out", str(tmp_path / "e")]
    cases.append((no_model, "no checkpoint folder"))
    cases.append(([*no_model[:3], "--envs", "0", *no_model[3:]], "--envs must be >= 1"))
    cases.append((["refiner", "evaluate", str(tmp_path / "r"), "--workers", "0"], "--workers must be >= 1"))
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("ctflow: error:") and expected in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err
