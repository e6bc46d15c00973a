#!/usr/bin/env bash
# Set up a virtual environment (torch 2.13.0 CPU + facesr with its test extras) and run the
# linters and the test suite. Safe to run again: the environment is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
. scripts/venv.sh "[test]"
ruff check src tests benchmarks scripts
ruff format --check src tests benchmarks scripts
python -m pytest -n 2 --timeout 900 --durations 15 "$@"
