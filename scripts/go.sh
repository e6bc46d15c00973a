#!/usr/bin/env bash
# Set up a virtual environment (torch 2.13.0 CPU + facesr + onnxruntime) and restore the bundled sample photos
# with the bundled weights. Results land in out/samples/ (restored photos, per-face crops,
# side-by-side comparisons and a JSON report).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
. scripts/venv.sh "[onnx]"   # onnxruntime: the fast CPU engine of facesr restore (docs/speed.md)
facesr restore src/facesr/samples -o out/samples --save-faces --compare "$@"
