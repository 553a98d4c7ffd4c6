"""Every benchmark under ``benchmarks/`` runs on a tiny budget, writes the JSON its Results page reads, and renders.

Each script's ``main`` runs in this process with tiny settings on the session's tiny Hopper
dataset (and a tiny refiner fitted on it) into a temporary folder; the test checks the keys
of the JSON it wrote (what ``docs/hooks/results.py`` renders the Results pages from), its
``command`` and ``machine``, and that the ``.md`` beside it is the rendering. The d3rlpy
peers run in their own venv (``benchmarks/peer_d3rlpy.py``): the GTP side is tested with a
stored peer run, and the peer script itself only where that venv exists.
Finished investigations are not kept as scripts (``benchmarks/archive/README.md`` lists them).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents import load_agent
from ctflow_gym.data import combine_datasets, default_dataset_path, load_dataset, thin_dataset

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in ("harness", "peer_d3rlpy"))
PEER_PYTHON = ROOT / ".bench-venvs" / "d3rlpy" / "bin" / "python"


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch):
    """``benchmarks/`` on the import path (its scripts import each other by name); torch threads restored after."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def bench(name: str):
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def tiny_refiner(random_dataset_path, tmp_path_factory) -> str:
    """A refiner of window 8 fitted in seconds on the tiny dataset, saved."""
    from ctflow_gym import TrajectoryRefiner

    small = dict(ae_steps=30, flow_steps=30, predictor_steps=20, value_steps=20, inverse_dynamics_steps=30)
    refiner = TrajectoryRefiner(window=8, ae_hidden=32, flow_hidden=32, **small).fit(
        random_dataset_path, progress_bar=False
    )
    return str(refiner.save(tmp_path_factory.mktemp("refiner") / "refiner"))


def written(path: Path, *keys: str) -> dict:
    """The JSON at ``path`` (with ``keys``, ``command`` and ``machine``), after checking its ``.md`` renders it."""
    data = json.loads(path.read_text())
    assert set(keys) | {"command", "machine"} <= set(data), sorted(data)
    assert data["command"].startswith(f"python benchmarks/{Path(data['command'].split()[1]).name}")
    markdown = path.with_suffix(".md").read_text()
    assert markdown.startswith("# ") and "|---|" in markdown and f"`{path}`" in markdown, markdown[:800]
    return data


def test_every_benchmark_is_smoke_tested_here_and_none_touches_private_attributes():
    tested = set(re.findall(r'bench\("(\w+)"\)', Path(__file__).read_text()))
    assert set(SCRIPTS) <= tested, set(SCRIPTS) - tested
    for script in BENCHMARKS.glob("*.py"):
        private = re.findall(r"^.*\._[a-z].*$", script.read_text(), re.MULTILINE)
        assert not private, (script.name, private)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_lists_the_settings_and_runs_nothing(name, capsys):
    with pytest.raises(SystemExit) as exit:
        bench(name).main(["--help"])
    assert exit.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_runs_are_cached_and_redone_only_for_other_settings(tmp_path):
    runs = bench("harness").Runs(tmp_path / "runs")
    calls = []
    compute = lambda: calls.append(1) or {"score": 1.0}  # noqa: E731
    first = runs.run("seed0", {"steps": 10}, compute)
    assert runs.run("seed0", {"steps": 10}, compute) == first and len(calls) == 1
    assert {"steps", "machine", "wall_seconds", "score"} <= set(first)
    runs.run("seed0", {"steps": 20}, compute)
    assert len(calls) == 2 and runs.get("seed0", {"steps": 10}) is None
    assert runs.get("seed0", {"steps": 20, "eval": 5}, defaults={"eval": 5}) is not None  # recorded before "eval"
    again = runs.run("seed0", {"steps": 20}, compute, stale=lambda run: True)  # its files elsewhere were lost
    assert len(calls) == 3 and {"machine", "wall_seconds"} <= set(again)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["seed0.json"]  # no temporary file left


def test_gtp_speed(random_dataset_path, tmp_path):
    args = [
        "--dataset",
        str(random_dataset_path),
        "--rounds",
        "1",
        "--block",
        "1",
        "--no-compile",
        "--learn-steps",
        "5",
    ]
    path = bench("gtp_speed").main(args + ["--critic-ensemble", "2", "--out", str(tmp_path)])
    data = written(path, "meta", "results", "learn_steps_per_second", "peers_steps_per_second")
    assert path.name == "gtp_speed_ensemble2.json"
    assert set(data["results"]) == {"GTP eager", "GTP-BC eager", "TD3+BC eager"}
    assert set(data["learn_steps_per_second"]) == {"GTP eager"}
    assert data["meta"]["matmul_gflop_per_step"]["GTP"] > data["meta"]["matmul_gflop_per_step"]["TD3+BC"]


def test_gtp_vs_peers_beside_a_stored_peer_run_and_resumed(random_dataset_path, tmp_path, monkeypatch):
    peers = bench("gtp_vs_peers")
    name, steps = "smoke", 100
    stored = json.loads((BENCHMARKS / "results" / "gtp_vs_peers_200k_runs" / "iql-seed0.json").read_text())
    stored.update(steps=steps, eval_every=50, curve=[dict(p, step=50 * (i + 1)) for i, p in enumerate(stored["curve"])])
    (tmp_path / f"{name}_runs").mkdir()
    (tmp_path / f"{name}_runs" / "iql-seed0.json").write_text(json.dumps(stored))
    args = ["--dataset", str(random_dataset_path), "--steps", str(steps), "--eval-every", "50", "--seeds", "0"]
    args += ["--methods", "gtp", "gtp-bc", "--episodes", "1", "--envs", "1", "--action-candidates", "4"]
    args += ["--name", name, "--work", str(tmp_path / "work"), "--out", str(tmp_path)]
    data = written(peers.main(args + ["--critic-ensemble", "2"]), "meta", "summary", "runs")
    assert set(data["summary"]) == {"gtp", "gtp-bc", "iql"}
    assert set(data["summary"]["gtp"]["scores"]) == {"score", "score_K=2"}
    assert [p["step"] for p in data["runs"][0]["curve"]] == [50, 100]
    seconds = [p["training_seconds"] for p in data["runs"][0]["curve"]]  # GTP's training clock, for time-to-score
    assert 0 < seconds[0] < seconds[1]
    assert data["meta"]["critic_ensemble"] == 2 and data["meta"]["curves_png"] == f"{name}.png"
    assert "d3rlpy IQL" in (tmp_path / f"{name}.md").read_text() and (tmp_path / f"{name}.png").is_file()
    gtp_final = data["summary"]["gtp"]["scores"]["score"]["median"]  # every method timed to GTP's final score
    assert all(entry["to_gtp_score"]["target"] == gtp_final for entry in data["summary"].values())
    assert data["summary"]["gtp"]["to_gtp_score"]["per_seed"][0]["step"] in (50, 100)  # its best >= its last-5 mean
    assert "GTP's median final score" in (tmp_path / f"{name}.md").read_text()
    monkeypatch.setattr(peers, "run_gtp", lambda *a: pytest.fail("a finished run was trained again"))
    assert peers.main(args + ["--critic-ensemble", "2"]) == tmp_path / f"{name}.json"  # all cached: nothing trains
    with pytest.raises(pytest.fail.Exception, match="trained again"):  # another gradient clip is another run
        peers.main(args + ["--critic-ensemble", "2", "--grad-norm", "1.0"])
    with pytest.raises(SystemExit, match="other critic counts"):
        peers.main(args + ["--critic-ensemble", "1"])
    acting = bench("gtp_acting")  # the run's checkpoint acted with N and K: N = 4, K = 5 repeats its last evaluation
    acting_args = ["--dataset", str(random_dataset_path), "--runs", str(tmp_path / "work" / name), "--seeds", "0"]
    acting_args += ["--candidates", "1", "4", "--sampling-steps", "5", "--episodes", "1", "--envs", "1"]
    acting_args += ["--pessimism", "0", "1000"]  # beta only where there is a choice: not for N = 1
    scores = written(acting.main(acting_args + ["--out", str(tmp_path)]), "meta", "summary", "runs")["summary"]
    last = next(run for run in data["runs"] if run["method"] == "gtp")["curve"][-1]["score"]
    assert set(scores) == {"N=1 K=5", "N=4 K=5", "N=4 K=5 beta=1000"} and scores["N=4 K=5"]["per_seed"] == [last]
    assert "beta > 0: candidates ranked" in (tmp_path / "gtp_acting_smoke.md").read_text()
    shutil.rmtree(tmp_path / "work" / name / "gtp" / "seed0" / "model")  # a cleared work folder: the stored run
    assert written(acting.main(acting_args + ["--out", str(tmp_path)]), "summary")["summary"] == scores
    with pytest.raises(SystemExit, match="--runs .* no GTP checkpoint for seed 0"):
        acting.main(["--runs", str(tmp_path / "work"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--candidates must hold integers >= 1"):
        acting.main(acting_args + ["--candidates", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--pessimism must hold numbers >= 0"):
        acting.main(acting_args + ["--pessimism", "-1", "--out", str(tmp_path)])


def test_time_to_score_reads_training_minutes_off_curves():
    peers = bench("gtp_vs_peers")
    scores = {10: 20.0, 20: 50.0, 30: 40.0}
    curve = [{"step": step, "score": score, "training_seconds": 6.0 * step} for step, score in scores.items()]
    assert peers.time_to_reach(curve, 45.0) == {"step": 20, "training_seconds": 120.0}
    assert peers.time_to_reach(curve, 60.0) == {"step": None, "training_seconds": None}
    assert peers.time_to_score(curve, final=45.0)["step"] == 20  # 90% of 45 = 40.5: first held at step 20
    assert peers.time_to_score(curve, final=60.0)["step"] == 30  # never held 54: counted at the last evaluation
    assert peers.time_to_score(curve, final=-1.0)["step"] is None
    reached = [{"step": 10, "training_seconds": 60.0}, {"step": 30, "training_seconds": 240.0}]
    never = {"step": None, "training_seconds": None}
    assert peers.median_minutes(reached + [{"step": 20, "training_seconds": 120.0}]) == 2.0
    assert peers.median_minutes(reached + [never]) == 4.0  # "never" is later than any seed that got there
    assert peers.median_minutes(reached) == 4.0  # even counts: the upper middle, so "never" can be the median
    assert peers.median_minutes([reached[0], never, never]) is None


def test_gtp_vs_peers_trains_fql_and_deflow_with_training_time_per_evaluation(random_dataset_path, tmp_path):
    peers = bench("gtp_vs_peers")
    args = ["--dataset", str(random_dataset_path), "--steps", "40", "--eval-every", "20", "--seeds", "0"]
    args += ["--methods", "fql", "deflow", "--episodes", "1", "--envs", "1", "--batch-size", "32"]
    args += ["--name", "flow", "--work", str(tmp_path / "work")]
    data = written(peers.main(args + ["--out", str(tmp_path)]), "meta", "summary", "runs")
    assert set(data["summary"]) == {"fql", "deflow"}
    for run in data["runs"]:
        seconds = [point["training_seconds"] for point in run["curve"]]
        assert [point["step"] for point in run["curve"]] == [20, 40] and 0 < seconds[0] < seconds[1]
    deflow = next(run for run in data["runs"] if run["method"] == "deflow")
    assert deflow["trust_region"] > 0 and deflow["flow_networks"] == "gtp"
    for entry in data["summary"].values():  # the step (and training seconds) to 90% of each seed's final score
        assert all(reached["step"] in (20, 40, None) for reached in entry["to_90_percent"])
    assert all(set(run["final_by_noise"]) == {"z=0", "sampled z"} for run in data["runs"])
    assert "DeFlow" in (tmp_path / "flow.md").read_text()


def test_agent_speed(random_dataset_path, tmp_path):
    args = ["--dataset", str(random_dataset_path), "--rounds", "1", "--block", "1", "--latency-rounds", "1"]
    data = written(bench("agent_speed").main(args + ["--out", str(tmp_path)]), "meta", "results", "latency")
    assert set(data["results"]) == {"GTP", "TD3+BC"} | {
        f"{agent} ({size})" for agent in ("FQL", "DeFlow") for size in ("GTP's sizes", "paper sizes")
    }
    work = {name: result["gflop_per_step"] for name, result in data["results"].items()}
    assert work["DeFlow (paper sizes)"] > work["FQL (paper sizes)"] > work["FQL (GTP's sizes)"] > work["TD3+BC"]
    assert data["latency"]["GTP (K=5, N=50)"]["speedup_vs_gtp_default"] == 1.0


def test_offline_to_online_continues_one_agent_both_ways_and_resumes(random_dataset_path, tmp_path, monkeypatch):
    online = bench("offline_to_online")
    args = ["--dataset", str(random_dataset_path), "--offline-steps", "20", "--online-steps", "20"]
    args += ["--eval-every", "10", "--episodes", "1", "--envs", "1", "--work", str(tmp_path / "work")]
    data = written(online.main(args + ["--out", str(tmp_path)]), "meta", "summary", "runs")
    assert set(data["summary"]) == {"online", "offline"}
    for run in data["runs"]:
        assert [point["step"] for point in run["curve"]] == [30, 40] and run["trust_region"] > 0
    handovers = {run["handover_score"] for run in data["runs"]}
    assert len(handovers) == 1  # both arms start from the same agent, evaluated the same way
    handover = tmp_path / "work" / "offline_to_online_deflow" / "seed0" / "handover"
    assert load_agent(handover, device="cpu").num_timesteps == 20  # no arm wrote over the start
    monkeypatch.setattr(online, "run_arm", lambda *a: pytest.fail("a finished arm was run again"))
    online.main(args + ["--out", str(tmp_path)])


@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="d3rlpy's venv (.bench-venvs/d3rlpy) is absent: made on first use")
def test_peer_d3rlpy_runs_in_its_venv(random_dataset_path, tmp_path):
    from ctflow_gym.data import load_dataset

    peers = bench("gtp_vs_peers")
    data = peers.export_transitions(load_dataset(random_dataset_path), tmp_path / "transitions.npz")
    run = peers.run_peer(PEER_PYTHON, data, "iql", 0, "Hopper-v5", 60, episodes=1, eval_every=30)
    assert [p["step"] for p in run["curve"]] == [30, 60] and run["steps_per_second"] > 0
    seconds = [p["training_seconds"] for p in run["curve"]]
    assert 0 < seconds[0] < seconds[1] <= 60 / run["steps_per_second"]


def test_refiner_tables(random_dataset_path, tmp_path):
    args = [
        "--dataset",
        str(random_dataset_path),
        "--window",
        "8",
        "--eval-windows",
        "10",
        "--ks",
        "3",
        "--fit-steps",
        "10",
    ]
    args += ["--strengths", "1.0", "--advantage-strengths", "1.0", "--cost-batch", "4", "--pair-cost-windows", "500"]
    data = written(bench("refiner_tables").main(args + ["--out", str(tmp_path)]), "table1", "table2", "table3", "cost")
    assert len(data["table1"]) == 6 and data["eval_windows"] == 10
    assert "realized_gain" in data["table1"]["ours (alpha = 1)"]


def test_refiner_levers(random_dataset_path, tmp_path):
    args = ["--dataset", str(random_dataset_path), "--seeds", "0", "--strengths", "1.0", "--eval-windows", "10"]
    data = written(bench("refiner_levers").main(args + ["--fit-steps", "10", "--out", str(tmp_path)]), "meta", "runs")
    assert len(data["runs"][0]["rows"]) == 5 and data["meta"]["quick"] is True
    assert (tmp_path / "refiner_levers_runs" / "seed0.json").is_file()


def test_refined_policy_table(tiny_refiner, tmp_path):
    args = ["--refiner", tiny_refiner, "--value", "critic", "--episodes", "1", "--max-episode-steps", "30"]
    args += ["--candidates", "2", "--continuations", "0", "8", "--random-gate", "0.5", "--out", str(tmp_path)]
    args += ["--only", "refiner, unverified", "gaussian, 2 verified +8 steps"]
    data = written(bench("refined_policy_table").main(args), "meta", "results")
    assert list(data["results"]) == ["alone", "refiner, unverified", "gaussian, 2 verified +8 steps"]
    assert data["results"]["refiner, unverified"]["summary"]["episodes_better"] in (0, 1)


def test_refiner_selection(tiny_refiner, tmp_path):
    args = ["--refiners", tiny_refiner, tiny_refiner, "--episodes", "2", "--max-episode-steps", "30"]
    data = written(bench("refiner_selection").main(args + ["--work", str(tmp_path), "--out", str(tmp_path)]), "meta")
    assert len(data["validations"]) == 2 and len(data["base_returns"]) == 2
    assert (data["saved_to"] is None) == (data["kept"] == [])


def test_closed_loop_policy(tiny_refiner, tmp_path):
    args = ["--refiner", tiny_refiner, "--episodes", "1", "--strengths", "1.0", "--wrapper-strength", "1.0"]
    data = written(
        bench("closed_loop_policy").main(args + ["--max-episode-steps", "30", "--out", str(tmp_path)]), "rows"
    )
    assert len(data["rows"]) == 6 and data["rows"]["base policy"]["lengths"] == [30]


def test_scale(random_dataset_path, tmp_path):
    dataset = str(random_dataset_path)
    args = ["--dataset", dataset, "--gain-dataset", dataset, "--work", str(tmp_path / "work"), "--fit-steps", "10"]
    args += ["--sections", "fit", "pairs", "gain", "--window", "8", "--subset-windows", "300", "--recall-queries", "20"]
    args += ["--gain-windows", "10", "--no-processes", "--threads", "1", "--out", str(tmp_path)]
    data = written(bench("scale").main(args), "meta", "fit", "pairs", "gain")
    assert data["pairs"]["subset"]["recall_at_k"] > 0.9 and data["fit"]["peak_rss_mb"] > 0


def test_scale_workers_sections(random_dataset_path, tmp_path, tiny_refiner):
    """Replays and dataset building in worker processes (the same numbers with 1 and 2 workers)."""
    (tmp_path / "work").mkdir()
    shutil.copytree(tiny_refiner, tmp_path / "work" / "refiner_big")
    args = ["--dataset", str(random_dataset_path), "--work", str(tmp_path / "work"), "--sections", "replay", "build"]
    args += ["--window", "8", "--replay-windows", "40", "--tracked-windows", "10", "--build-steps", "100"]
    data = written(
        bench("scale").main(args + ["--no-processes", "--threads", "1", "--out", str(tmp_path)]), "replay", "build"
    )
    replay, build = data["replay"], data["build"]
    assert replay["open_loop_workers1"]["returns_sum"] == pytest.approx(replay["open_loop_workers2"]["returns_sum"])
    assert build["workers1"]["first_actions_sum"] == build["workers2"]["first_actions_sum"]


def test_dataset_table_without_built_recipes(tmp_path):
    """The dataset table with a built recipe is tests/test_recipes.py's; here the policies' part and the rendering."""
    path = bench("dataset_table").main(["--root", str(tmp_path / "empty"), "--episodes", "1", "--out", str(tmp_path)])
    data = written(path, "datasets", "policies")
    assert data["datasets"] == [] and {p["policy"] for p in data["policies"]} >= {"hopper-medium", "hopper-expert"}


def test_improve_extract(tmp_path):
    """On the shipped data (its episodes hold FTB's 100-step label segments), every stage on a tiny budget."""
    argv = ["--generator-steps", "20", "--score-steps", "20", "--top-n", "40", "--bc-steps", "20", "--bc-batch", "32"]
    argv += ["--seeds", "0", "--episodes", "1", "--out", str(tmp_path), "--work", str(tmp_path / "work"), "--no-ctflow"]
    data = written(bench("improve_extract").main(argv), "fit", "improve", "rows")
    assert [r["learner"] for r in data["rows"]][:3] == [
        "BC, raw data", "filtered BC (top 10%), raw data", "BC, FTB generated (paper)"
    ]  # fmt: skip
    assert data["rows"][0]["transitions"] > data["rows"][1]["transitions"] > 0
    assert data["improve"]["rounds"] and data["fit"]["fit_info"]["labelled_pairs"] == 15
    rows = {r["learner"]: r for r in data["rows"]}
    filtered = rows["filtered BC (top 10%), raw data"]["transitions"]  # the best episodes, as thin_dataset keeps them
    for added, joined in (
        ("BC, FTB realised (verified)", "filtered BC's data + FTB realised (verified)"),
        (
            "BC, FTB generated, same windows as realised",
            "filtered BC's data + FTB generated, same windows (unverified)",
        ),
    ):  # on this budget no realised window may beat its source: then both are empty rows
        added = rows[added]["transitions"]
        assert rows[joined]["transitions"] == (filtered + added if added else 0)
    root = tmp_path / "work" / "datasets" / "ctflow" / "hopper"  # the join, with a dataset always there
    generated = load_dataset(root / "ftb-generated-v0")  # unverified: no simulator states, as the same-windows one
    joined = combine_datasets([root / "best-v0", root / "ftb-generated-v0"], "ctflow/hopper/joined-v0", root=tmp_path)
    assert load_dataset(joined).total_steps == filtered + generated.total_steps


def test_improve_extract_with_ctflow_rows_and_selected_bc(tmp_path):
    """CTFlow's verified windows joined to filtered BC's data, their unverified plans at equal size; KeepBest BC.

    On the shipped data's best episodes holding 5% of its steps (FTB's 100-step segments fit in them), so that
    every window of it is refined and realised in seconds.
    """
    small = thin_dataset(default_dataset_path(), None, tmp_path / "data", "ctflow/hopper/small-v0", top_fraction=0.05,
                         progress_bar=False)  # fmt: skip
    argv = ["--dataset", str(small), "--generator-steps", "20", "--score-steps", "20", "--top-n", "40"]
    argv += ["--bc-steps", "20", "--bc-batch", "32"]
    argv += ["--seeds", "0", "--episodes", "1", "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    argv += ["--ctflow-steps", "20", "--select-every", "10", "--select-episodes", "1", "--name", "selected"]
    data = written(bench("improve_extract").main(argv), "fit", "improve", "rows")
    rows = {r["learner"]: r for r in data["rows"]}
    verified = rows["filtered BC's data + CTFlow realised (verified)"]
    control = rows["filtered BC's data + CTFlow refined, same windows (unverified)"]
    filtered = rows["filtered BC (top 10%), raw data"]["transitions"]
    accepted = data["improve"]["ctflow"]["accepted"]
    assert accepted > 0 and verified["transitions"] == filtered + accepted * 16
    assert control["transitions"] == filtered + accepted * 15  # a plan of H states holds H - 1 transitions
    assert "checkpoint best on 1 validation episodes" in (tmp_path / "selected.md").read_text()


def test_gpu_lease_probe_on_cpu(random_dataset_path):
    """The lease's speed probe (``benchmarks/gpu_lease/probe.py``) runs on a CPU too and prints its JSON line."""
    script = BENCHMARKS / "gpu_lease" / "probe.py"
    command = [sys.executable, str(script), "fql", "305", str(random_dataset_path), "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["method"] == "fql" and result["rate"] > 0 and result["score"] is not None


def test_policy_improvement(random_dataset_path, tmp_path):
    """A policy (the shipped medium actor) beside BC on rollouts and on their verified improvement, tiny budgets."""
    argv = ["--dataset", str(random_dataset_path), "--window", "8", "--refiner-steps", "30", "--continuation", "5"]
    argv += ["--strengths", "1", "2", "--commit-steps", "3", "--bc-steps", "20", "--seeds", "0", "--episodes", "1"]
    argv += ["--out", str(tmp_path), "--work", str(tmp_path / "work"), "--name", "named"]
    path = bench("policy_improvement").main(argv)
    data = written(path, "policy", "fit", "improve", "rows")
    assert path.name == "named.json" and (tmp_path / "named_runs" / "fit.json").is_file()
    assert data["policy"]["mean_return"] > 0 and data["meta"]["strengths"] == [1.0, 2.0]
    learners = [r["learner"] for r in data["rows"]]
    assert learners[:2] == ["BC, rollouts", "filtered BC (top 10%), rollouts"]
    assert all(r["accepted"] > 0 for r in data["improve"].values()), data["improve"]
    assert len(learners) == 8 and data["rows"][0]["transitions"] > data["rows"][1]["transitions"]
    assert list(data["improve"])[2:4] == ["strengths 1, 2, window + 5 policy steps",
                                          "strengths 1, 2, first 3 steps + 5 policy steps"]  # fmt: skip
    assert list(data["improve"].values())[-1]["executions"]["tracked"] == 0  # open loop only
    assert set(data["saturated_actions"]) == {"rollouts", *data["improve"]}
    assert all(0 <= v <= 1 for v in data["saturated_actions"].values())


def test_policy_improvement_of_a_datasets_best_episodes(random_dataset_path, tmp_path):
    """Logged data without a policy: its best episodes improved, judged by BC on them, extracted."""
    argv = ["--dataset", str(random_dataset_path), "--top-fraction", "0.5", "--policy", "bc", "--window", "8"]
    argv += ["--refiner-steps", "30", "--continuation", "5", "--strengths", "1", "2", "--commit-steps", "3"]
    argv += ["--bc-steps", "20", "--seeds", "0", "--episodes", "1", "--learners", "raw", "improved"]
    argv += ["--out", str(tmp_path), "--work", str(tmp_path / "work")]
    path = bench("policy_improvement").main(argv)
    data = written(path, "policy", "fit", "improve", "rows")
    assert path.name.endswith("_best50_bc.json") and data["meta"]["whole_dataset"] == "ctflow/hopper/random-v0"
    best = load_dataset(tmp_path / "work" / path.stem / "datasets" / "ctflow" / "hopper" / "best-v0")
    assert best.total_steps <= load_dataset(random_dataset_path).total_steps // 2
    learners = [r["learner"] for r in data["rows"]]
    assert learners[0] == "BC, best 50% episodes" and len(learners) == 7  # no separate filtered row
    assert data["rows"][0]["transitions"] == best.total_steps
    assert "the policy: BC on the data improved" in path.with_suffix(".md").read_text()
    assert "best 50% episodes" in data["saturated_actions"]  # what BC imitates there, named as it is


def test_distillation(random_dataset_path, tmp_path):
    """The policy, its verified refined version and BC distilled from each expert round by round, tiny budgets."""
    argv = ["--dataset", str(random_dataset_path), "--window", "8", "--refiner-steps", "30", "--continuation", "5"]
    argv += ["--candidates", "2", "--teacher-episodes", "1", "--horizons", "0", "--rounds", "1"]
    argv += ["--round-episodes", "1", "--name", "named", "--bc-seeds", "7"]
    argv += ["--bc-steps", "20", "--seeds", "0", "--episodes", "1", "--out", str(tmp_path), "--work", str(tmp_path)]
    path = bench("distillation").main(argv)
    assert path.name == "named.json" and (tmp_path / "named_runs" / "fit.json").is_file()
    data = written(path, "policy", "policy_teacher_episodes", "fit", "teacher", "teacher_horizons", "distilled")
    assert data["meta"]["curves_png"] == "named.png" and (tmp_path / "named.png").stat().st_size > 0
    assert set(data["distilled"]) == {"refined", "policy", "unverified"}
    for kind, (run,) in data["distilled"].items():
        assert run["rounds"] == 1  # the setting, beside the result
        zero, one = run["per_round"]
        assert (zero["rolled_out_by"], one["rolled_out_by"]) == ("teacher", "learner")
        assert one["learner"]["transitions"] == zero["steps"] + one["steps"]
    assert data["distilled"]["policy"][0]["per_round"][0]["refined_windows"] == 0  # strength 0: the policy's windows
    refined, unverified = (data["distilled"][kind][0]["per_round"][-1]["learner"] for kind in ("refined", "unverified"))
    if refined["transitions"] > unverified["transitions"]:  # the verified data thinned to the unverified one's size
        for key in ("matched", "matched_steps"):  # as recorded windows, and as single steps
            (matched,) = data[key]
            assert unverified["transitions"] <= matched["transitions"] < refined["transitions"]
    else:
        assert data["matched"] == data["matched_steps"] == []
    text = path.with_suffix(".md").read_text()
    assert "distilled from the verified refined policy, round 1" in text and "plain DAgger" in text
    assert "the teacher judging windows over 0 policy steps after them" in text and "](named.png)" in text
    assert "the refined policy unverified (strength 1, no replay)" in text
    kinds = {"refined", "policy", "unverified"} | ({"matched", "matched_steps"} if data["matched"] else set())
    assert set(data["reseeded"]) == kinds  # BC seed 7 again on every final dataset, the equal-size ones too
    for kind, (run,) in data["reseeded"].items():
        final = data[kind][0] if kind.startswith("matched") else data["distilled"][kind][0]["per_round"][-1]["learner"]
        assert (run["seed"], run["bc_seed"], run["transitions"]) == (0, 7, final["transitions"])
    assert "with BC seeds [7] beside its distillation's own" in text and "| 2 |" in text  # 2 runs: seeds 0 and 7


def test_receding_horizon(random_dataset_path, tmp_path):
    """The grid of executed steps x strength per fit on validation episodes, then selected and fixed on test ones."""
    argv = ["--dataset", str(random_dataset_path), "--top-fraction", "0.5", "--bc-steps", "20", "--window", "4"]
    argv += ["--refiner-steps", "20", "--refiner-seeds", "0", "1", "--replans", "2", "4", "--strengths", "1"]
    argv += ["--fixed", "2", "1", "--select-episodes", "1", "--episodes", "1", "--out", str(tmp_path)]
    path = bench("receding_horizon").main(argv + ["--work", str(tmp_path)])
    data = written(path, "policy", "fits", "grid", "test")
    assert [fit["seed"] for fit in data["fits"]] == [0, 1] and len(data["grid"]) == 4
    assert {(run["refiner_seed"], run["replan_every"]) for run in data["grid"]} == {(0, 2), (0, 4), (1, 2), (1, 4)}
    for seed in (0, 1):
        grid = [run for run in data["grid"] if run["refiner_seed"] == seed]
        selected, fixed = (run for run in data["test"] if run["refiner_seed"] == seed)
        assert (selected["which"], fixed["which"]) == ("selected", "fixed")
        best = max(grid, key=lambda run: run["mean_return"])
        assert selected["replan_every"] == best["replan_every"] and fixed["replan_every"] == 2
        assert selected["reset_seed"] == 5000 and best["reset_seed"] == 1000
        assert fixed["simulator_steps"] > 0 and fixed["plans"] >= 1
    text = path.with_suffix(".md").read_text()
    assert "| m = 2 | 1.00 |" in text and "fit 1, fixed" in text
    with pytest.raises(SystemExit, match="--fixed takes m"):
        bench("receding_horizon").main(argv + ["--fixed", "2.5", "1"])
    with pytest.raises(SystemExit, match="must be in"):
        bench("receding_horizon").main(argv + ["--replans", "5"])


def test_distillation_of_logged_data_with_a_refiner_fitted_elsewhere(random_dataset, random_dataset_path, tmp_path):
    """``--policy bc``: BC on the data's best episodes is the policy; ``--refiner``: an FTB refiner its teacher uses."""
    from ctflow_gym import FTBRefiner

    tiny = dict(window=8, stride=2, segment=10, blocks=4, score_steps=20, generator_steps=20, sample_steps=2, top_n=12)
    FTBRefiner(**tiny, score_hidden=16, generator_hidden=16, generator_blocks=1).fit(
        random_dataset, progress_bar=False
    ).save(tmp_path / "ftb")
    argv = ["--dataset", str(random_dataset_path), "--policy", "bc", "--top-fraction", "0.5"]
    argv += ["--refiner", str(tmp_path / "ftb"), "--continuation", "5", "--candidates", "2", "--teacher-episodes", "1"]
    argv += ["--horizons", "0", "--rounds", "0", "--round-episodes", "1", "--teachers", "refined", "unverified"]
    argv += ["--no-equal-size", "--split-seeds", "0", "--bc-seeds", "7", "--reseed", "unverified"]
    argv += ["--bc-steps", "20", "--seeds", "0", "--episodes", "1", "--out", str(tmp_path), "--work", str(tmp_path)]
    path = bench("distillation").main(argv)
    data = written(path, "policy", "fit", "teacher", "distilled")
    assert set(data["reseeded"]) == {"unverified"}  # --reseed: BC seed 7 again on the unverified teacher's data only
    assert data["fit"] == {"refiner": str((tmp_path / "ftb").resolve()), "kind": "FTBRefiner", "window": 8}
    assert not (tmp_path / f"{path.stem}_runs" / "fit.json").exists()  # nothing fitted here
    best = load_dataset(tmp_path / path.stem / "datasets" / "ctflow" / "hopper" / "best-v0")
    assert best.total_steps <= random_dataset.total_steps // 2  # the policy's data: the best half of the steps
    assert (tmp_path / path.stem / "policy_bc" / "checkpoint.json").is_file()
    assert set(data["distilled"]) == {"refined", "unverified"} and set(data["teacher_horizons"]) == {"0"}
    assert data["matched"] == data["matched_steps"] == []  # --no-equal-size: no thinned rows
    learner = data["distilled"]["refined"][0]["per_round"][-1]["learner"]
    parts = data["split"]  # --split-seeds 0: the verified teacher's windows by who chose them, each part cloned
    windows = data["distilled"]["refined"][0]["per_round"][-1]["windows"]
    assert sum(part["windows"] for (part,) in parts.values()) == windows and set(parts) <= {
        "policy_windows",
        "refined_windows",
    }
    assert sum(part.get("transitions", 0) for (part,) in parts.values()) == learner["transitions"]
    refined = data["distilled"]["refined"][0]["per_round"][-1]["refined_windows"]
    assert parts["refined_windows"][0]["windows"] == refined  # the windows its actions set apart are the refined ones
    text = path.with_suffix(".md").read_text()
    assert "refiner FTBRefiner (window 8) from" in text
    assert "the policy: BC (seed 0) on its best episodes holding 50% of the steps" in text
    with pytest.raises(SystemExit, match="--top-fraction selects the data of --policy bc"):
        bench("distillation").main(["--dataset", str(random_dataset_path), "--top-fraction", "0.5"])
    selected = argv + ["--select-every", "10", "--select-episodes", "1", "--eval-seed", "5000", "--name", "selected"]
    data = written(bench("distillation").main(selected), "policy", "policy_selected", "distilled")
    (own,) = data["policy_selected"]  # the policy's BC with seed 0, selected like the learners
    assert own["selected_step"] in (10, 20) and [row["step"] for row in own["validation"]] == [10, 20]
    assert data["distilled"]["unverified"][0]["per_round"][-1]["learner"]["selected_step"] in (10, 20)
    assert "reset seeds 5000.." in (tmp_path / "selected.md").read_text()
    assert "checkpoint best on 1 validation episodes (reset seeds 3000..)" in (tmp_path / "selected.md").read_text()


def test_improve_extract_from_whole_top_episodes(tmp_path):
    """``--ftb-episodes``: FTB's top K episodes tiled by windows, each kept in its final version; four rows."""
    small = thin_dataset(default_dataset_path(), None, tmp_path / "data", "ctflow/hopper/small-v0", top_fraction=0.05,
                         progress_bar=False)  # fmt: skip
    argv = ["--dataset", str(small), "--generator-steps", "20", "--score-steps", "20", "--top-n", "40"]
    argv += ["--bc-steps", "20", "--bc-batch", "32", "--no-ctflow", "--ftb-episodes", "2", "--rows", "top 2"]
    argv += ["--seeds", "0", "--episodes", "1", "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    data = written(bench("improve_extract").main(argv + ["--name", "episodes"]), "fit", "improve", "rows")
    rows = {r["learner"]: r for r in data["rows"]}
    assert len(rows) == 4 and all("top 2" in label for label in rows)  # --rows: only the rows naming "top 2"
    report = data["improve"]["episodes"]
    top = load_dataset(small)
    lengths = {e.id: len(e.actions) for e in top.iterate_episodes(report["episodes"])}
    assert len(lengths) == 2 and rows["BC, FTB's top 2 episodes as recorded"]["transitions"] == sum(lengths.values())
    assert report["windows"] == sum(n // 32 for n in lengths.values())  # consecutive windows, starts included
    assert rows["BC, FTB generated from the top 2 episodes (paper)"]["transitions"] == report["windows"] * 31
    accepted = report["realised"]["accepted"]
    same = rows["BC, top 2 episodes with those windows' plans (unverified)"]["transitions"]
    assert same == sum(lengths.values()) - accepted  # each replaced window: 32 recorded steps out, a 31-step plan in
    assert rows["BC, top 2 episodes with realised FTB windows (verified)"]["transitions"] > 0
    # --ftb-continuation: the same improvement (cached fit), its windows judged with BC's next steps after them
    data = written(bench("improve_extract").main(argv + ["--ftb-continuation", "0", "8", "--name", "judged"]), "rows")
    labels = [r["learner"] for r in data["rows"]]
    assert "BC, top 2 episodes with realised FTB windows (verified, judged with 8 steps of BC after)" in labels
    assert "BC, top 2 episodes with realised FTB windows (verified)" in labels  # --ftb-continuation 0 8: both
    assert data["improve"]["episodes_c8"]["realised"]["continuation"] == 8
    assert data["improve"]["episodes"]["realised"] == report["realised"]  # the plain stage's run, from the cache
    assert any((tmp_path / "work").rglob("policy_top2"))  # the continuation policy, kept for reruns
    # --ftb-tolerance: the same improvement with our exact validity check; a tolerance no sample meets keeps none
    data = written(bench("improve_extract").main(argv + ["--ftb-tolerance", "0", "1.5e-9", "--name", "valid"]), "rows")
    bounded = data["improve"]["episodes_tol1.5e-09"]
    assert bounded["dynamics_tolerance"] == 1.5e-9 and bounded["generated_fraction"] == 0.0
    assert bounded["rounds"][0]["invalid_dynamics"] == report["windows"] and bounded["realised"]["windows"] == 0
    rows = {r["learner"]: r for r in data["rows"]}
    assert rows["BC, FTB generated from the top 2 episodes (paper, dynamics error <= 1.5e-09)"]["transitions"] > 0
    assert data["improve"]["episodes"]["realised"] == report["realised"]  # tolerance 0: the plain stage, cached
