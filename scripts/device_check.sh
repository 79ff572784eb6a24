#!/usr/bin/env bash
# The one prepared GPU session (an H100/H200 lent through the device tool; docs/benchmarks.md "GPU").
# Runs from the repo root with the machine's own python3 (torch, transformers, triton, peft, pyarrow,
# typer, rich, pillow; no faiss, no network), the package from the source tree. Every step has its
# own time cap, and the caps of the chosen STEPS must fit BUDGET (460 s, so that the whole call
# stays within 8 minutes), so one hang cannot eat the lease; logs go to $OUT/all.log, results to $OUT/*.json and
# their tables to $OUT/benchmarks.md (`umarvel bench tables`).
# SIZE=quick gives a smoke run (minutes on a CPU box: the CUDA-only rows are skipped there).
set -u
OUT=${OUT:-gpu_out}
SIZE=${SIZE:-default}
STEPS=${STEPS:-kernel_tests gpu_tests vision_tests loss train embed_gpu search rerank}  # a subset when the lease is short
BUDGET=${BUDGET:-460}  # of the call's 480 s: the version checks and the tables take the rest
# seconds per step; earlier runs took: kernel_tests 77-100 s, vision_tests 16-18 s, all of run 2 342 s
declare -A CAP=([kernel_tests]=95 [gpu_tests]=75 [vision_tests]=20 [loss]=55 [train]=65 [embed_gpu]=55
  [search]=45 [rerank]=50)
total=0
for s in $STEPS; do
  if [[ -z ${CAP[$s]:-} ]]; then echo "unknown step $s (steps: ${!CAP[*]})"; exit 2; fi
  total=$((total + CAP[$s]))
done
if ((total > BUDGET)); then
  echo "the caps of STEPS add up to ${total}s, over BUDGET=${BUDGET}s: pick fewer STEPS"
  exit 2
fi
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
LOG="$OUT/all.log"
echo "=== steps: $STEPS (caps ${total}s of ${BUDGET}s)" | tee -a "$LOG"

step() {
  local name=$1 cap=${CAP[$1]}
  shift
  case " $STEPS " in *" $name "*) ;; *) echo "=== $name skipped (STEPS)" | tee -a "$LOG"; return ;; esac
  echo "=== $name (cap ${cap}s) $(date -u +%T)" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$cap" "$@" >/tmp/umarvel-step.log 2>&1
  local rc=$?
  cat /tmp/umarvel-step.log >>"$LOG"
  echo "=== $name rc=$rc $((SECONDS - t0))s" | tee -a "$LOG"
  grep -E "^(loss|embed|train|search|embed-gpu|rerank):|passed|failed|FAILED|Error" /tmp/umarvel-step.log | tail -n 12
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
$PY -c "import triton; print('triton', triton.__version__)" 2>&1 | tee -a "$LOG"

step kernel_tests env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE \
  tests/kernels tests/losses
# the tests marked `gpu` (deselected by `make test`): CUDA-only checks and the sm_90 ahead-of-time compile
step gpu_tests env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE -m gpu tests
step vision_tests env UMARVEL_TEST_ON_GPU=1 "$PY" -m pytest -p no:cacheprovider -q -rfE \
  tests/models/test_vision_attention.py tests/models/test_patch_embed.py
step loss "$PY" -m umarvel_cli bench loss --size "$SIZE" --json "$OUT/loss.json"
step train "$PY" -m umarvel_cli bench train --size "$SIZE" --json "$OUT/train.json"
# naive loop vs our padded path vs the packed path (Embedder.encode(pack=True), rows of
# PACK_TOKENS real tokens), Qwen2-VL-2B-sized in bf16; MFU per path from the real lengths (bench/flops.py)
step embed_gpu "$PY" -c "
import json, sys
from umarvel_cli.bench.embed import TABLE, run_gpu
from umarvel_cli.bench.table import record
r = run_gpu(sys.argv[1])
print('embed-gpu:', r.summary)
for row in r.rows:
    mfu = 'n/a' if row['MFU'] is None else f\"{row['MFU']:.1%}\"
    print(f\"embed-gpu: {row['method']}: {row['items/s']:,.1f} items/s, {row['GFLOP/s'] / 1e3:,.1f} TFLOP/s, MFU {mfu}\")
json.dump([record(r, sys.argv[1], TABLE)], open(sys.argv[2], 'w'), indent=2, default=str)
" "$SIZE" "$OUT/embed.json"
step search env UMARVEL_BENCH_REPEATS=1 "$PY" -m umarvel_cli bench search --size "$SIZE" --json "$OUT/search.json"
# rerank score: ours (batched, two LM-head rows) vs a full-vocabulary forward and the released
# generate() per pair, on a random Qwen2-VL-2B-sized reranker in bf16 (CUDA rows only)
step rerank "$PY" -c "
import json, sys
from umarvel_cli.bench.rerank import TABLE, run_gpu
from umarvel_cli.bench.table import record
r = run_gpu(sys.argv[1])
print('rerank:', r.summary)
json.dump([record(r, sys.argv[1], TABLE)], open(sys.argv[2], 'w'), indent=2, default=str)
" "$SIZE" "$OUT/rerank.json"
"$PY" -m umarvel_cli bench tables "$OUT" --title "device check ($SIZE)" >>"$LOG" 2>&1 && echo "=== tables: $OUT/benchmarks.md"
echo "=== done $(date -u +%T)"
