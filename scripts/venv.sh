#!/usr/bin/env bash
# Sourced by go.sh and test.sh: create (once) and activate the virtual environment, then install torch
# 2.13.0 (CPU build) and facesr with the extras given as $1 (e.g. "[test]"). Safe to run again.
VENV="${FACESR_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".${1:-}"
