#!/usr/bin/env bash
# Set up a virtual environment (torch 2.13.0 CPU + facesr) and restore the bundled sample photos
# with the bundled weights. Results land in out/samples/ (restored photos, per-face crops,
# side-by-side comparisons and a JSON report).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FACESR_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e .
facesr restore src/facesr/samples -o out/samples --save-faces --compare "$@"
