#!/usr/bin/env bash
# Install moee-bench with every extra the main job and the tests use (the MoEE training stack, FAN, HSEmotion)
# and the test tools into ./.venv (idempotent), pinned to the exact tested set in constraints.txt.
# Python >= 3.11 (tested: 3.11 and 3.12); PYTHON=python3.12 ./install.sh picks the interpreter.
# A lean install into an existing environment is `pip install moee-bench` (or `pip install .`); see the README.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[all,dev]"
echo "moee-bench installed in $(pwd)/.venv"
