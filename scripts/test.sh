#!/usr/bin/env bash
# Set up a virtual environment (torch 2.13.0 CPU + facesr with its test extras) and run the
# linters and the test suite. Safe to run again: the environment is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FACESR_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
ruff check src tests benchmarks scripts
ruff format --check src tests benchmarks scripts
python -m pytest -n 2 --timeout 900 --durations 15 "$@"
