#!/usr/bin/env bash
# The GPU check: the CUDA tests and the operator section's CUDA rows (16384 x 4096 and
# x 8192, float32 and bfloat16: forward bandwidth against a copy, forward and
# forward + backward against rms_norm and normalize, eager and compiled).
#
# Runs on a machine with a CUDA device whose python3 has torch and Triton (no install:
# the checkout is put on PYTHONPATH; the solvers are not needed).  Writes its logs and
# the bench's JSON and Markdown into the folder given (default: gpu_check_out):
#
#     bash benchmarks/gpu_check.sh "$OUT"
#
# Exit status: non-zero when the tests or the bench failed (both always run).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check_out}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
PY
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
tests_rc=${PIPESTATUS[0]}
python3 -m benchmarks --quick --sections operator --devices cuda --rounds 3 \
    --json "$out/gpu.json" --markdown "$out/gpu.md" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}
echo "tests: exit $tests_rc; bench: exit $bench_rc" | tee -a "$out/device.txt"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
