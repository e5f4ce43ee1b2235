#!/usr/bin/env bash
# Sets up .venv/ with the verified OpenMMLab stack and uninet_mm (editable), then self-checks.
# Idempotent: every phase first checks whether its part already works and skips if so.
#   bash tools/setup_env.sh            # cold: ~25 min (mmcv build); warm: < 1 min
# Environment: UNINET_VENV (default .venv), PYTHON (default python3).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${UNINET_VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PIP="$PY -m pip --disable-pip-version-check"
T_ALL=$(date +%s)
PHASE=init
FIX="rerun: bash tools/setup_env.sh"

phase() {
  PHASE=$1; FIX=$3; T_PHASE=$(date +%s)
  printf '\n==> [%s] %s\n' "$PHASE" "$2"
}
phase_done() { printf '    [%s] %s (%ds)\n' "$PHASE" "$1" "$(( $(date +%s) - T_PHASE ))"; }
on_error() {
  local rc=$?
  printf '\n!! setup failed in phase [%s] (exit %d).\n!! fix: %s\n' "$PHASE" "$rc" "$FIX" >&2
  printf '!! nothing half-installed is kept: pip installs each package atomically; rerun after the fix.\n' >&2
  exit "$rc"
}
trap on_error ERR

# pip with the machine's "WARNING: Location 'file:///opt/...' is ignored" lines (index folders
# that lack a package: noise) dropped from its stderr; everything else and pip's exit status stay.
pipf() {
  { $PIP "$@" 2>&1 1>&3 3>&- \
      | { grep --line-buffered -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory\.$" || true; } >&2 3>&-
  } 3>&1
}

# CA bundle the machine's pip config names (needed when --isolated drops the config).
ca_bundle() {
  local c
  c=$(python3 -m pip config get global.cert 2>/dev/null || true)
  [ -n "$c" ] && [ -f "$c" ] || c=/etc/ssl/certs/ca-certificates.crt
  echo "$c"
}

# ---------------------------------------------------------------------------------------------
phase venv "virtual environment in ${VENV#$ROOT/}" \
  "python3 -m venv must work (Debian: apt-get install python3-venv); then rerun"
if [ -x "$PY" ] && "$PY" -c 'import pip' >/dev/null 2>&1; then
  phase_done "present"
else
  rm -rf "$VENV"   # a half-made venv is worse than none
  "${PYTHON:-python3}" -m venv "$VENV"
  phase_done "created"
fi

# ---------------------------------------------------------------------------------------------
phase torch "torch 2.13.0 + torchvision 0.28.0 from the public registry (CUDA build, runs on CPU; ~80 s, 4.8 GB)" \
  "needs the PyPI registry and ~6 GB disk; the local torch-*+cpu wheel must NOT be used (torchvision ops cannot load against it)"
torch_ok() {
  "$PY" - <<'PY' >/dev/null 2>&1
import torch, torchvision
# the registry build reports 2.13.0+cu130; the machine's local wheel 2.13.0+cpu cannot serve torchvision
assert torch.__version__.split('+')[0] == '2.13.0' and not torch.__version__.endswith('+cpu'), torch.__version__
assert torchvision.__version__.startswith('0.28.0'), torchvision.__version__
torchvision.ops.nms(torch.rand(4, 4) * 10, torch.rand(4), 0.5)
PY
}
if torch_ok; then
  phase_done "present"
else
  # a CPU-only torch (the machine's local wheel) would satisfy 'torch==2.13.0': remove it first
  $PIP uninstall -y -q torch torchvision >/dev/null 2>&1 || true
  pipf install --isolated --cert "$(ca_bundle)" --default-timeout 180 -r "$ROOT/requirements/torch.txt"
  torch_ok
  phase_done "installed"
fi

# ---------------------------------------------------------------------------------------------
phase deps "build tools and runtime dependencies (mmengine, numpy<2, opencv, ...)" \
  "check the pins in requirements/build.txt and requirements/runtime.txt"
pipf install -q -r "$ROOT/requirements/build.txt"
pipf install -q mmengine==0.10.7 'numpy>=1.24,<2' 'opencv-python>=4.7,<4.11' addict yapf packaging Pillow pyyaml
phase_done "ok"

# ---------------------------------------------------------------------------------------------
phase mmcv "mmcv 2.1.0 with CPU ops" \
  "the build needs gcc/g++, Python headers and setuptools<81 (requirements/build.txt); see the compiler error above"
mmcv_ok() {
  "$PY" - <<'PY' >/dev/null 2>&1
import mmcv, torch
assert mmcv.__version__ == '2.1.0', mmcv.__version__
from mmcv.ops import nms, RoIAlign
nms(torch.rand(4, 4) * 10, torch.rand(4), 0.5)
PY
}
if mmcv_ok; then
  phase_done "present"
else
  $PIP uninstall -y -q mmcv mmcv-lite >/dev/null 2>&1 || true
  if [ -z "$(ls "$(python3 -m pip cache dir 2>/dev/null || echo /nonexistent)"/wheels 2>/dev/null)" ]; then
    echo "    building mmcv 2.1.0 from source with ops: THIS TAKES ~20 MINUTES on 2 cores (pip caches the wheel; later installs take seconds)"
  else
    echo "    installing mmcv 2.1.0 (from pip's wheel cache if built before, else a ~20 minute build)"
  fi
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} pipf install --no-build-isolation -r "$ROOT/requirements/mmcv.txt"
  mmcv_ok
  phase_done "installed"
fi

# ---------------------------------------------------------------------------------------------
phase openmmlab "mmdet 3.3.0, mmsegmentation 1.2.2, mmpretrain 1.2.0 and the rest of runtime.txt" \
  "check requirements/runtime.txt against the pins in README.md"
pipf install -q -r "$ROOT/requirements/runtime.txt"
phase_done "ok"

# ---------------------------------------------------------------------------------------------
phase package "uninet_mm (editable) with the test and search (Ray) extras" \
  "see the pip error above; setup.py reads requirements/*.txt"
pipf install -q --no-build-isolation -e "$ROOT[tests,search]"
phase_done "ok"

# ---------------------------------------------------------------------------------------------
phase selfcheck "versions and working ops" \
  "the part named in the traceback is broken: rerun setup; if it persists, remove .venv and rerun"
"$PY" -m uninet_mm.selfcheck
phase_done "ok"

printf '\nsetup finished in %ds; activate with: source %s/bin/activate\n' "$(( $(date +%s) - T_ALL ))" "${VENV#$ROOT/}"
