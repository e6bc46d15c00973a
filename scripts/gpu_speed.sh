#!/usr/bin/env bash
# The one GPU speed command (< 10 minutes) for a lent GPU (the device tool's `run`, carry [".gpu"]):
#     bash scripts/gpu_speed.sh
# Needs .gpu/ from `facesr gpu pack --wheels` (JPEGs + alignment matrices + mask templates +
# pydantic wheels; the same pack as scripts/gpu_train.sh). Rebuilds the prepared set from the JPEGs
# (once per machine), starts building the utk-mask-x4 benchmark in the background (CPU) while the
# training-step levers run on the GPU, then runs the inference levers on the benchmark faces, a batch
# sweep and a 10,000-face memory check. Writes $OUT/gpu_speed.json and $OUT/gpu_speed.md (after each
# section, so a run cut short keeps what it measured) and $OUT/gpu_speed.log. See docs/speed.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu_speed}"
WS="${FACESR_WORKSPACE:-workspace}"
TOTAL="${GPU_SPEED_BUDGET_S:-540}"  # seconds for the whole command; the device tool stops it at 600
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 FACESR_DATA="$PWD/.gpu" PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -c 'import tarfile; tarfile.open(".gpu/wheels.tar.xz").extractall("/tmp/site", filter="data")'
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ ! -f "$WS/prepared/utkface/faces128.npy" ]; then
  python3 -m facesr.cli gpu unpack --packed .gpu --out "$WS/prepared/utkface" 2>&1 | tail -3
fi
if [ ! -f "$WS/benchmarks/utk-mask-x4/meta.json" ]; then
  python3 -c "from pathlib import Path; from facesr.data.benchmarks import build_benchmark; \
build_benchmark('utk-mask-x4', Path('$WS/prepared'), Path('$WS/benchmarks'), Path('.gpu'), progress=False)" \
    > "$OUT/benchmark_build.log" 2>&1 &
fi
BUDGET=$(( TOTAL - SECONDS ))  # what the data preparation above left
python3 -m facesr.cli gpu speed --out "$OUT" --budget-s "$BUDGET" --benchmarks-root "$WS/benchmarks" \
  --prepared "$WS/prepared/utkface" 2>&1 | tee "$OUT/gpu_speed.log"
ls -la "$OUT"
