#!/usr/bin/env bash
# Download (here, with internet) the wheels the GTP benchmarks need on an offline GPU machine
# that already has Python 3.12 with torch and numpy (e.g. a CUDA image), into .whl/ (ours)
# and .whl/d3/ (d3rlpy 2.8.1 and its gymnasium 1.0.0, kept apart: d3rlpy pins it).
# Carry .whl to that machine and `source scripts/offline_setup.sh` there.
# mujoco-studio and PyOpenGL (viewer and rendering only) are left out to keep the carry small;
# gym 0.26.2 (which d3rlpy imports) has no wheel on PyPI, so it is built here from its sdist.
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform any)
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
          "${platforms[@]}" -d "$@"; }
mkdir -p .whl/d3
for package in gymnasium==1.4.0 farama-notifications mujoco==4.0.0 mujoco-core==4.0.0 glfw minari==0.5.4 \
               stable-baselines3 typer; do
  get .whl "$package"
done
for package in d3rlpy==2.8.1 gymnasium==1.0.0 structlog dataclasses-json "marshmallow<4" gym_notices; do
  get .whl/d3 "$package"
done
python3 -m pip download -q --no-deps --no-binary=:all: -d /tmp/gym-sdist gym==0.26.2
python3 -m pip wheel -q --no-deps -w .whl/d3 /tmp/gym-sdist/gym-0.26.2.tar.gz
du -sh .whl
