#!/usr/bin/env bash
# The one command for a lent GPU machine (PyTorch there, no TensorFlow): trains teachers and
# distilled students with KERAS_BACKEND=torch inside a wall-clock budget (training/experiments/gpu_train.py).
#
# Needs, in the repository root (both ignored by git, both carried to the machine):
#   .gpu/fer2013_jpeg.npz   python -m training.experiments.gpu_pack ../shared/data/fer2013 .gpu/fer2013_jpeg.npz
#   .whl/                   keras and the two packages it needs that the machine lacks, for its Python 3.12:
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# The device tool carries at most 64 MiB: the pack (49 MiB) plus the tracked files. If the tracked
# models/ make it too large, untrack the big model file for the call (git rm --cached it, with
# its path in .git/info/exclude) and `git reset` it afterwards.
# Usage: OUT=folder BUDGET=seconds training/experiments/gpu_train.sh [extra training.experiments.gpu_train options]
# On a CPU, for a test: PYTHON=.venv-torch/bin/python BUDGET=150 training/experiments/gpu_train.sh --tiny --teachers 2
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-runs/gpu}
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=torch OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
mkdir -p "$OUT"
"$PYTHON" -m training.experiments.gpu_train --pack .gpu/fer2013_jpeg.npz --out "$OUT" --budget "${BUDGET:-520}" "$@"
