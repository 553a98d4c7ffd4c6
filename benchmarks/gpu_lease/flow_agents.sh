#!/bin/bash
# One lease: build HalfCheetah medium from its recipe, probe concurrent speed on Hopper, then
# GTP / FQL / DeFlow on HalfCheetah medium in waves of one seed each, at a budget sized to the lease.
T0=$(date +%s); DEADLINE=${DEADLINE:-565}; PY=${PY:-python3}; DEV=${DEV:-cuda}; PROBE=${PROBE:-1500}
el() { echo $(( $(date +%s) - T0 )); }
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled
if [ -z "$NO_TAR" ]; then tar xzf .devkit/site.tgz -C /tmp || exit 1; export PYTHONPATH=$PWD:/tmp/site; fi
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-/tmp/minari}
W=${W:-/tmp/w}; OUT=${OUT:-/tmp/out}; mkdir -p $W/logs $W/out $OUT
nvidia-smi -L 2>/dev/null; nproc
$PY -c "import sys; sys.path.insert(0,'benchmarks'); import gtp_vs_peers, gymnasium_robotics, ctflow_gym.envs, torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" || exit 1
DS=ctflow/halfcheetah/medium-v1
( $PY -c "import sys; from ctflow_gym.cli import main; sys.exit(main(['dataset','build','$DS','--no-verify','--no-progress']))" 2>&1 | grep -v -i warn | tail -3
  $PY -c "from ctflow_gym.data import load_dataset; from ctflow_gym.data.recipes import dataset_checksum, get_recipe; d=load_dataset('$DS'); c=dataset_checksum(d); r=get_recipe('$DS').sha256; print('checksum', c, 'recipe', r, 'MATCH' if c==r else 'DIFFERS')"
  echo "built at $(el) s" ) > $W/logs/build.log 2>&1 &
BUILD=$!
PROBES=()
for m in gtp fql deflow; do $PY benchmarks/gpu_lease/probe.py $m $PROBE ctflow/hopper/medium-replay-v1 $DEV > $W/logs/probe-$m.log 2>&1 & PROBES+=($!); done
wait ${PROBES[@]}; echo "probes done at $(el) s"; for m in gtp fql deflow; do tail -n 1 $W/logs/probe-$m.log; done
wait $BUILD; cat $W/logs/build.log
read S WAVES < <($PY - $W/logs $(( DEADLINE - $(el) )) <<'PYEOF'
import json, sys
from pathlib import Path
rates = []
for m in ("gtp", "fql", "deflow"):
    try:
        rates.append(json.loads(Path(sys.argv[1], f"probe-{m}.log").read_text().strip().splitlines()[-1])["rate"])
    except Exception:
        pass
rate, left = (min(rates) if rates else 20.0), int(sys.argv[2]) - 20
for waves in (3, 2, 1):
    steps = min(30000, int((left / waves - 75) * rate) // 6000 * 6000)
    if steps >= 12000 or waves == 1:
        break
print(max(steps, 600 if rate < 20 else 6000), waves)
PYEOF
)
echo "budget: S=$S steps, $WAVES waves (at $(el) s)"
NAME=flow_agents_halfcheetah_medium_$(( S / 1000 ))k
for (( k = 0; k < WAVES; k++ )); do
  left=$(( DEADLINE - $(el) )); [ $left -lt 60 ] && break
  pids=()
  for m in gtp fql deflow; do
    timeout $(( left - 5 )) $PY benchmarks/gtp_vs_peers.py --device $DEV --dataset $DS --methods $m --seeds $k \
      --steps $S --eval-every $(( S / 6 )) --name $NAME --out $W/out/$m-$k --work $W/work > $W/logs/$m-$k.log 2>&1 &
    pids+=($!)
  done
  wait ${pids[@]}; echo "wave $k done at $(el) s"; ls $W/out/*-$k/*_runs/ 2>/dev/null | grep seed
done
cd $W && find out work logs -name '*-seed*.json' -o -name 'training_seconds.json' -o -name 'k2.json' -o -name '*.log' | tar czf $OUT/results.tgz -T - ; ls -la $OUT
