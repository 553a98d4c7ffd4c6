"""Training speed of one agent on CUDA while others run beside it (the lease's budget is sized from it).

    python benchmarks/gpu_lease/probe.py gtp|fql|deflow STEPS DATASET [DEVICE]

Trains ``STEPS`` gradient steps (GTP with the benchmark's eta 5, FQL / DeFlow at GTP's network
sizes, as ``gtp_vs_peers.py`` trains them), times the steps after the first 300 (CUDA graph capture
and warm-up excluded), evaluates 10 episodes, and prints one JSON line.
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gtp_vs_peers import FLOW_NETWORKS  # noqa: E402

from agents import DeFlowAgent, FQLAgent, GTPAgent  # noqa: E402
from ctflow_gym.data import load_dataset  # noqa: E402

WARM_UP = 300


def main() -> None:
    """Parse the arguments, train, time, evaluate, print."""
    method, steps, dataset_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    device = sys.argv[4] if len(sys.argv) > 4 else "cuda"
    torch.set_num_threads(1)
    dataset = load_dataset(dataset_id)
    started = time.perf_counter()
    if method == "gtp":
        agent = GTPAgent(dataset.env_spec.id, dataset, seed=0, device=device, eta=5.0, batch_size=256)
    else:
        agent_class = FQLAgent if method == "fql" else DeFlowAgent
        agent = agent_class(dataset.env_spec.id, dataset, seed=0, device=device, batch_size=256, **FLOW_NETWORKS["gtp"])
    init_seconds = time.perf_counter() - started
    marks = {}

    def mark(_locals, _globals) -> bool:
        if agent.num_timesteps in (WARM_UP, steps - 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            marks[agent.num_timesteps] = time.perf_counter()
        return True

    agent.learn(steps, callback=mark)
    rate = (steps - 1 - WARM_UP) / (marks[steps - 1] - marks[WARM_UP])
    started = time.perf_counter()
    score = agent.evaluate(10, n_envs=10)["normalized_score"]
    result = {"method": method, "rate": rate, "init_s": init_seconds, "eval_s": time.perf_counter() - started}
    print(json.dumps({**result, "score": score}), flush=True)


if __name__ == "__main__":
    main()
