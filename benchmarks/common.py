"""What every benchmark records beside its numbers: machine, versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import torch


def machine_info() -> dict:
    """Commit, Python/torch versions, CPU, cores, torch threads and the GPU (if any)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # Result files being rewritten do not make the code dirty.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"], capture_output=True, text=True).stdout.strip()
    return {
        "commit": (commit or "unknown") + ("+dirty" if dirty else ""),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
