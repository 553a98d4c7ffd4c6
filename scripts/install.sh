#!/usr/bin/env bash
# Make (or update) the project's virtual environment in .venv and install ctflow_gym
# into it with its test extras. torch==2.13.0 goes first: on the project's machines
# that exact version is a CPU build on local disk (seconds), while any other torch
# would download several GB of CUDA wheels. Elsewhere it is an ordinary PyPI install.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
