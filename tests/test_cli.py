import json

from ctflow_gym.cli import main


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
