#!/usr/bin/env bash
# GPU check, in under 8 minutes on one CUDA GPU: the device-aware tests on CUDA, the bench on
# CUDA (bf16 and fp16 autocast, the compiled step with CUDA graphs), and a 5-minute training of
# the mmnist preset, stopped by SIGTERM (mimcast saves and stops), then evaluated. Writes one
# markdown report.
#
#   pip install -e '.[formats,test]' && bash scripts/gpu_check.sh [REPORT.md] [WORK_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-gpu_check_report.md}
WORK=${2:-$(mktemp -d)}
section() { printf '\n## %s\n\n```\n' "$1" >>"$REPORT"; }
endsection() { printf '```\n' >>"$REPORT"; }
run() { # run LIMIT_SECONDS CMD...: the command's last lines and its exit code into the report
  local limit=$1; shift
  local started=$SECONDS
  timeout -s TERM "$limit" "$@" >"$WORK/out.txt" 2>&1
  local rc=$?
  tail -n 40 "$WORK/out.txt" | tr '\r' '\n' | grep -v '%|' >>"$REPORT"
  echo "exit code $rc after $((SECONDS - started)) s: $*" >>"$REPORT"
  return $rc
}

{
  echo "# GPU check"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null)"
  echo "- $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
  echo "- $(python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())')"
} >"$REPORT"

section "tests on cuda (models, OpenSTL parity in float64, a tiny run)"
run 150 python -m pytest -q -p no:warnings --device cuda tests/models tests/runs/test_device.py
endsection

section "bench on cuda: 4 x 64, filter 5, batch 8, 10 -> 10"
run 90 mimcast bench --device cuda --hidden 64 --steps 10 --set model.layer_norm=false
endsection

section "16-mixed (fp16 + GradScaler) and the compiled step (CUDA graphs), 30 steps each"
run 40 mimcast train --device cuda --precision 16-mixed --steps 30 --run-dir "$WORK/fp16" --no-eval
run 90 mimcast train --device cuda --precision bf16-mixed --steps 30 --run-dir "$WORK/compiled" \
  --no-eval --set train.compile=true
endsection

section "mmnist preset on cuda, 5 minutes (SIGTERM: checkpoint and stop), then evaluated"
run 300 mimcast train --device cuda --preset mmnist --run-dir "$WORK/mmnist" --no-eval \
  --set train.val_every=500 train.checkpoint_every=500 train.val_sequences=256
tail -n 3 "$WORK/mmnist/log.csv" >>"$REPORT" 2>/dev/null
run 60 mimcast evaluate --run-dir "$WORK/mmnist" --checkpoint last --device cuda \
  --data mmnist
endsection

echo "wrote $REPORT"
