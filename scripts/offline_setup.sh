# Source this on the offline machine, in the repository root, after carrying .whl
# (scripts/offline_wheels.sh): installs our dependencies into /tmp/site and d3rlpy's into
# /tmp/d3 (no network, no dependency resolution), puts the repository on PYTHONPATH, and
# writes /tmp/peerpy, the interpreter to give benchmarks as --peer-python.
if [ ! -d /tmp/site/gymnasium ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/d3 .whl/d3/*.whl || return 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MINARI_DATASETS_PATH=/tmp/minari
printf '#!/bin/sh\nPYTHONPATH=/tmp/d3:/tmp/site exec python3 "$@"\n' > /tmp/peerpy && chmod +x /tmp/peerpy
