#!/usr/bin/env bash
# The checks that need a GPU, as one bounded script (a lent GPU comes with minutes, not
# hours): the speed benchmark with EfficientNet-Lite0 and with AlexNet's
# architecture, torch.compile against eager, cuDNN autotuning, and as much of the
# LunarLander paper preset as the time left allows. (The 40-rollout and STL-10 training
# checks were run on an H100 on 2026-11-26 and are in
# docs/performance.md.) Each step is bounded so that a failure or a slow step leaves the
# other steps' figures.
#
#   bash benchmarks/device_session.sh OUTDIR 2>&1 | tee OUTDIR/session.log   # on the GPU machine
#   SKIP_BENCH=1 bash benchmarks/device_session.sh OUTDIR     # a second call: the study slice alone
#   TINY=1 DEV=cpu bash benchmarks/device_session.sh /tmp/dry   # dry run on a CPU
set -u
OUT=${1:?usage: device_session.sh OUTDIR}
mkdir -p "$OUT"
TINY=${TINY:-0}
DEV=${DEV:-cuda}
BUDGET=${BUDGET:-560}   # seconds for the whole script
W=${WORK:-$(mktemp -d /tmp/percae-device.XXXX)}
mkdir -p "$W"
export PYTHONUNBUFFERED=1
T0=$SECONDS
left() { echo $((BUDGET - (SECONDS - T0))); }
log() { echo "=== [$((SECONDS - T0))s] $*"; }
if command -v percae >/dev/null; then PERCAE=(percae); else PERCAE=(python3 -m percae); fi

log setup
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/src:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
# The paper's AlexNet where its file is in torch's cache (the device machine has no internet), else the quick preset's.
NET=$(python3 -c "from percae.loss import alexnet_cache_path as p; print('alexnet' if p().is_file() else 'alexnet-random')")
log "perceptual network: $NET"

if [ "$TINY" = 1 ]; then
  ROLL=16; STEPS=40; IMG=1024; GS=2000; GE=3; ZS=32; PE=20
else
  ROLL=1400; STEPS=150; IMG=32768; GS=10000; GE=20; ZS=32; PE=150
fi

# The full collection, generated while the benchmarks run (8 of the 16 cores: the rest for
# the benchmarks' host side).
"${PERCAE[@]}" data lunarlander --out "$W/ll" --rollouts $ROLL --steps $STEPS --workers 8 >"$OUT/datagen.log" 2>&1 &
GEN=$!

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  log "speed benchmark"
  timeout 200 python3 benchmarks/bench_speed.py --device $DEV --images $IMG --epochs 3 --grid-samples $GS \
    --grid-epochs $GE --json "$OUT/bench.json" 2>&1
  log "perceptual overhead with AlexNet's architecture (random weights: the same cost as the paper's)"
  timeout 60 python3 benchmarks/bench_speed.py --device $DEV --images $((IMG / 2)) --epochs 3 --perceptual-net alexnet-random \
    --only ae-percae-pixel,ae-percae-perceptual,ae-baseline-perceptual --json "$OUT/bench_alexnet.json" 2>&1 | tail -6
  log "torch.compile against eager (TrainConfig(compile=True)), both losses"
  timeout 150 python3 benchmarks/bench_speed.py --device $DEV --images $IMG --epochs 3 --compile-only 2>&1
  log "cuDNN autotuning (torch.backends.cudnn.benchmark), the four autoencoder arms: compare with the first benchmark"
  timeout 120 python3 benchmarks/bench_speed.py --device $DEV --images $IMG --epochs 3 --cudnn-benchmark \
    --only ae-percae-pixel,ae-percae-perceptual,ae-baseline-pixel,ae-baseline-perceptual --json "$OUT/bench_cudnn.json" 2>&1 | tail -8
fi

log "waiting for the full collection"
wait $GEN; tail -1 "$OUT/datagen.log"

if [ "$(left)" -gt 180 ]; then
  log "LunarLander paper preset, AE against P.AE at z=$ZS, as many epochs as the time left allows"
  # Epochs from this machine's measured speed: about 105k images per autoencoder epoch, two
  # autoencoders plus their half-length decoder retraining; 120 s for predictors and the rest.
  EPOCHS=$(python3 - "$OUT/bench.json" "$(left)" "$ROLL" "$STEPS" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))["results"]
    r["ae-percae-pixel"], r["ae-percae-perceptual"]
except Exception:  # no benchmark figures: a conservative guess
    print(10)
    sys.exit()
left, frames = float(sys.argv[2]), int(sys.argv[3]) * int(sys.argv[4]) / 2
pix, per = r["ae-percae-pixel"]["images_per_s"], r["ae-percae-perceptual"]["images_per_s"]
per_epoch = frames / pix + frames / per + 2 * 0.5 * frames / pix
print(max(2, min(50, int((left - 145) / per_epoch))))
PY
  )
  log "study with --epochs $EPOCHS --retrain-epochs $(( (EPOCHS + 1) / 2 )) --predictor-epochs $PE"
  timeout $(( $(left) - 25 )) "${PERCAE[@]}" reproduce lunarlander --root "$W/ll" --out "$W/study" --z $ZS --models AE,P.AE \
    --epochs $EPOCHS --retrain-epochs $(( (EPOCHS + 1) / 2 )) --predictor-epochs $PE --perceptual-net $NET \
    --device $DEV --no-progress >"$OUT/study.log" 2>&1
  echo "study exit $?"; tail -45 "$OUT/study.log"
  cp "$W/study/tables.md" "$W/study/summary.json" "$OUT/" 2>/dev/null
  (cd "$W" && tar czf "$OUT/study_runs.tgz" --exclude='*.npy' --exclude='*.pt' study 2>/dev/null)
else
  log "no time left for the study slice: run again with SKIP_BENCH=1"
fi

log done
