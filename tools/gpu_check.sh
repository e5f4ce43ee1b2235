#!/usr/bin/env bash
# The checks that need a GPU, as one short script (<= 8 min on one GPU):
#   1. the CUDA tests (tests/test_cuda.py: backbone, deployed form and AMP on the GPU vs the CPU)
#   2. the backbone benchmark under AMP on the GPU: forward, deployed forward and the training
#      step (forward + backward, train mode) of UniNet-B1/B3, Swin-T, PVT-Tiny and ResNet-50,
#      written to docs/bench/gpu_amp*.json
#
#   bash tools/gpu_check.sh                 # on a machine with a GPU
#   DEVICE=cpu SHAPE="1 3 64 96" ITERS=1 MODELS=uninet_b1 OUT=/tmp/x bash tools/gpu_check.sh
#                                           # the same steps on the CPU (how CI checks the script)
# Environment: PYTHON (default .venv/bin/python, else python3), DEVICE (cuda), SHAPE
# ("1 3 800 1216"), ITERS (10), MODELS (the five above), OUT (docs/bench), BUDGET_S (480).
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-1 3 800 1216}
ITERS=${ITERS:-10}
MODELS=${MODELS:-uninet_b1 uninet_b3 swin_t pvt_tiny resnet50}
OUT=${OUT:-docs/bench}
BUDGET_S=${BUDGET_S:-480}
T0=$(date +%s)
mkdir -p "$OUT"

left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
step() {  # step NAME CMD...: runs CMD within what is left of the budget
  local name=$1 budget
  shift
  budget=$(left)
  if [ "$budget" -le 10 ]; then
    echo "!! gpu_check: no time left for $name (budget ${BUDGET_S}s)" >&2
    return 124
  fi
  printf '\n=== [gpu_check] %s (%ss left)\n' "$name" "$budget"
  timeout "$budget" "$@"
}

if [ "$DEVICE" != cpu ]; then
  "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "!! gpu_check: DEVICE=$DEVICE but torch sees no CUDA device; on a CPU machine run with DEVICE=cpu" >&2
    exit 2
  }
  "$PYTHON" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
  step cuda-tests "$PYTHON" -m pytest tests/test_cuda.py -q -p no:cacheprovider -p no:randomly
fi

# shellcheck disable=SC2086
BENCH=("$PYTHON" tools/benchmark_backbones.py --device "$DEVICE" --amp --shape $SHAPE
       --iters "$ITERS" --models $MODELS)
step forward-and-train-amp "${BENCH[@]}" --modes forward forward_backward --channels-last \
  --out "$OUT/gpu_amp.json"
step deployed-forward-amp "${BENCH[@]}" --modes forward --deploy --channels-last \
  --out "$OUT/gpu_amp_deploy.json"
printf '\n=== [gpu_check] done in %ss; results in %s/gpu_amp.json and %s/gpu_amp_deploy.json\n' \
  "$(( $(date +%s) - T0 ))" "$OUT" "$OUT"
