#!/usr/bin/env bash
# Fetch into .whl/ the wheels tools/gpu_check.sh installs on a GPU machine
# that has torch but reaches no package index (Python 3.12, x86-64).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  mmengine==0.10.7 mmpretrain==1.2.0 mmcv-lite==2.1.0 addict yapf \
  termcolor opencv-python-headless modelindex ordered-set rich
