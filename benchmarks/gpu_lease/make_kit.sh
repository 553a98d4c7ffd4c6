#!/bin/bash
# Make .devkit/site.tgz: the Python packages a lent GPU machine lacks (its image has torch, numpy, h5py,
# tqdm, safetensors, jinja2, imageio, typer, but no gymnasium, MuJoCo, Minari, SB3 or gymnasium-robotics),
# as CPython 3.12 x86-64 wheels unpacked into site/ and packed, so that the working tree (about 38 MB)
# plus the kit stays under the lease's 64 MiB. FAISS (19 MB) is left out: nothing the agents run needs it.
# gymnasium-robotics loses its Adroit, Franka-kitchen and mesh assets (26 MB; PointMaze needs none).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx "/.devkit/" .git/info/exclude || echo "/.devkit/" >> .git/info/exclude
rm -rf .devkit/wheels .devkit/site && mkdir -p .devkit/wheels .devkit/site
platforms=()
for p in manylinux_2_17 manylinux2014 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 manylinux_2_34; do
  platforms+=(--platform "${p}_x86_64")
done
for package in gymnasium==1.4.0 mujoco==4.0.1 mujoco-core==4.0.1 minari==0.5.4 farama-notifications==0.0.6 \
    glfw==2.11.0 stable_baselines3==2.9.2 gymnasium-robotics==1.4.2 pettingzoo==1.27.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .devkit/wheels "$package"
done
for wheel in .devkit/wheels/*.whl; do unzip -q -o "$wheel" -d .devkit/site; done
rm -rf .devkit/site/gymnasium_robotics/envs/assets/{adroit_hand,kitchen_franka,stls}
tar czf .devkit/site.tgz -C .devkit site && rm -rf .devkit/wheels .devkit/site
du -h .devkit/site.tgz
