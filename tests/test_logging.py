"""RunLogger: a real W&B offline run holds the logged metrics, images and config."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from wandb_records import logged_keys, read_offline_run

from ctflow_gym.logging import RunLogger


def test_offline_run_records_metrics_images_and_config(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.plot([0, 1], [1, 0])
    plt.savefig(tmp_path / "figure.png")
    plt.close()
    stream = io.StringIO()
    logger = RunLogger(
        "offline", run_name="test", config={"lr": 0.001}, wandb_dir=tmp_path, print_every=2, stream=stream
    )
    for step in range(4):
        logger.log({"train/loss": 1.0 / (step + 1), "train/q": 2.0}, step=step)
    logger.log({"refiner/ae_loss": 0.5}, step=0)  # another component's own step count
    logger.update_config({"note": "extra"})
    logger.log_image("refiner/path", tmp_path / "figure.png")
    run_dir = logger.run_dir
    logger.finish()

    run = read_offline_run(run_dir)
    assert {"train/loss", "train/q", "train/step", "refiner/ae_loss", "refiner/path/_type"} <= logged_keys(run)
    image = next(row for row in run["history"] if "refiner/path/_type" in row)
    assert image["refiner/path/_type"] == "image-file"
    assert (run_dir / "files" / image["refiner/path/path"]).is_file()
    losses = [row["train/loss"] for row in run["history"] if "train/loss" in row]
    np.testing.assert_allclose(losses, [1.0, 0.5, 1 / 3, 0.25])
    assert run["config"]["lr"] == 0.001 and run["config"]["note"] == "extra"
    assert stream.getvalue().count("train/loss") == 2  # printed every 2nd call


def test_online_without_credentials_says_how_to_log_in(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(ValueError, match="wandb login.*offline"):
        RunLogger("online")
    with pytest.raises(ValueError, match="wandb_mode must be one of"):
        RunLogger("sometimes")


def test_wandb_prints_no_llm_tip_about_our_agents_package(tmp_path):
    """W&B's Weave integration takes any module called ``agents`` for the OpenAI Agents SDK.

    It printed "Detected [agents] in use. Use W&B Weave for improved LLM call tracing..."
    at every ``wandb.init`` once ``agents`` (this project's package) was imported. A fresh
    process, since W&B prints the tip once per process.
    """
    script = (
        "import agents\n"
        "from ctflow_gym.logging import RunLogger\n"
        f"RunLogger('offline', run_name='tip', wandb_dir={str(tmp_path)!r}).finish()\n"
        "import os; assert 'WANDB_DISABLE_WEAVE' not in os.environ  # the user's environment is left as it was\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_DISABLE_WEAVE", "WANDB_SILENT")}
    env["WANDB_MODE"] = "offline"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Weave" not in output and "Detected [" not in output, output[-3000:]
    assert list(tmp_path.glob("wandb/offline-run-*"))  # the run itself was made
