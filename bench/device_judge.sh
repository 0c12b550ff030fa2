#!/usr/bin/env bash
# Issue 4's GPU figures in one device call: judge throughput of 1-8B Llama-family models in
# bf16 (random weights; throughput does not depend on their values) against the GPU's measured
# bf16 matmul peak. Needs only PyTorch and transformers on the GPU machine, no Django, no network.
#   here:   .venv/bin/python bench/judge_throughput.py --save-tokenizer .devcarry/tokenizer
#   device: run(command="bash bench/device_judge.sh", carry=[".devcarry"])
# Each model's full output goes to $OUT/<arch>.txt; the last line of each is BENCH.md's JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/judge_bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# PYTHON, DEVICE and the sizes can be overridden, e.g. to try the script on a CPU first:
#   PYTHON=.venv/bin/python DEVICE=cpu ARCHS=smollm2-360m PAIRS=2 TEXT_PAIRS=1 RATING_PAIRS=1 bash bench/device_judge.sh
PYTHON=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$OUT/gpu.txt"
for arch in ${ARCHS:-llama-1b smollm2-1.7b llama-8b}; do
  echo "== $arch"
  "$PYTHON" bench/judge_throughput.py --arch "$arch" --tokenizer .devcarry/tokenizer --device "${DEVICE:-cuda}" \
    --dtype bfloat16 --pairs "${PAIRS:-256}" --text-pairs "${TEXT_PAIRS:-8}" --rating-pairs "${RATING_PAIRS:-64}" \
    --batch-tokens "${BATCH_TOKENS:-65536}" 2>&1 | tee "$OUT/$arch.txt"
done
