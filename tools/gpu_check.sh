#!/usr/bin/env bash
# The device check of the AFD core, one script for a lent GPU machine
# (docs/benchmarks.md, "GPU"): the CUDA tests, then the speed benchmark on
# the GPU for the three pairs, eager and compiled, and CUDA graphs on
# R56 -> R20. Budget: under 8 minutes on one H100.
#
#   bash tools/gpu_check.sh            # results under $OUT or work_dirs/
#
# PYTHON: an interpreter with torch (CUDA) and this project's stack; when
# the folder .whl/ holds wheels (mmengine, mmpretrain, mmcv-lite and their
# pure-Python needs, fetched with tools/gpu_wheels.sh) they are installed
# into /tmp/site first, for machines that reach no package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=${OUT:-work_dirs/gpu_check}
mkdir -p "$out"
if compgen -G '.whl/*.whl' > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name())' | tee "$out/device.txt"
# the CUDA tests (skipped on a machine without a GPU)
timeout 180 "$PY" -m pytest -q -p no:cacheprovider -k cuda \
  tests/models/losses/test_afd_loss.py tests/models/test_distiller.py \
  2>&1 | tee "$out/tests.txt"
bench() {
  timeout 150 "$PY" tools/benchmark_speed.py --device cuda --iters 30 "$@"
}
for pair in r56_r20 wrn40-2_wrn16-2 r34_r18_imagenet; do
  bench --pair "$pair" --methods afd,afd_compiled,kd,at 2>&1 \
    | tee "$out/speed_$pair.txt"
done
bench --pair r56_r20 --methods afd_compiled \
  --compile-options '{"mode": "reduce-overhead"}' 2>&1 \
  | tee "$out/speed_r56_r20_cudagraphs.txt"
