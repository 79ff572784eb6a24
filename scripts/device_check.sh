#!/usr/bin/env bash
# The one prepared GPU session (an H100/H200 lent through the device tool; docs/benchmarks.md "GPU").
# Runs from the repo root with the machine's own python3 (torch, transformers, triton, peft, pyarrow,
# typer, rich, pillow; no faiss, no network), the package from the source tree. Every step has its
# own time cap, so one hang cannot eat the lease; logs go to $OUT/all.log, results to $OUT/*.json.
# SIZE=quick gives a smoke run (minutes on a CPU box: the CUDA-only rows are skipped there).
set -u
OUT=${OUT:-gpu_out}
SIZE=${SIZE:-default}
STEPS=${STEPS:-kernel_tests gpu_tests vision_tests loss train embed_gpu search}  # a subset when the lease is short
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
LOG="$OUT/all.log"

step() {
  local name=$1 cap=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) echo "=== $name skipped (STEPS)" | tee -a "$LOG"; return ;; esac
  echo "=== $name (cap ${cap}s) $(date -u +%T)" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$cap" "$@" >/tmp/umarvel-step.log 2>&1
  local rc=$?
  cat /tmp/umarvel-step.log >>"$LOG"
  echo "=== $name rc=$rc $((SECONDS - t0))s" | tee -a "$LOG"
  grep -E "^(loss|embed|train|search|embed-gpu):|passed|failed|FAILED|Error" /tmp/umarvel-step.log | tail -n 12
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
$PY -c "import triton; print('triton', triton.__version__)" 2>&1 | tee -a "$LOG"

step kernel_tests 150 env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE \
  tests/kernels tests/losses
# the tests marked `gpu` (deselected by `make test`): CUDA-only checks and the sm_90 ahead-of-time compile
step gpu_tests 240 env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE -m gpu tests
step vision_tests 90 env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE \
  tests/models/test_vision_attention.py tests/models/test_patch_embed.py
step loss 180 "$PY" -m umarvel_cli bench loss --size "$SIZE" --json "$OUT/loss.json"
step train 180 "$PY" -m umarvel_cli bench train --size "$SIZE" --json "$OUT/train.json"
# naive loop vs our padded path vs the packed path (Embedder.encode(pack=True), rows of
# PACK_TOKENS real tokens), Qwen2-VL-2B-sized in bf16; MFU per path from the real lengths (bench/flops.py)
step embed_gpu 180 "$PY" -c "
import json, sys
from umarvel_cli.bench.embed import run_gpu
r = run_gpu(sys.argv[1])
print('embed-gpu:', r.summary)
for row in r.rows:
    mfu = 'n/a' if row['MFU'] is None else f\"{row['MFU']:.1%}\"
    print(f\"embed-gpu: {row['method']}: {row['items/s']:,.1f} items/s, {row['GFLOP/s'] / 1e3:,.1f} TFLOP/s, MFU {mfu}\")
json.dump([{'name': r.name, 'summary': r.summary, 'rows': r.rows, 'extra': r.extra}], open(sys.argv[2], 'w'), indent=2, default=str)
" "$SIZE" "$OUT/embed.json"
step search 70 env UMARVEL_BENCH_REPEATS=1 "$PY" -m umarvel_cli bench search --size "$SIZE" --json "$OUT/search.json"
echo "=== done $(date -u +%T)"
