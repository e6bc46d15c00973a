#!/usr/bin/env bash
# One of the three commands of a GPU session (the device tool's `run`, with carry [".gpu"]):
#     bash scripts/gpu_session.sh start    [options]   # data, benchmarks, calibration, start the runs
#     bash scripts/gpu_session.sh continue [options]   # keep them training; logs + weight snapshots back
#     bash scripts/gpu_session.sh finish   [options]   # stop at the deadline, evaluate, bring results back
# Needs .gpu/ from `facesr gpu pack --wheels`. Options: `facesr gpu session -h`.
# Installs the carried pydantic wheels (.gpu/wheels.tar.xz: their files, unzipped) into /tmp/site when
# the image lacks pydantic, then runs `facesr gpu session`
# with the repo's src/ on PYTHONPATH (the package is not installed there) and .gpu as the data root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 FACESR_DATA="$PWD/.gpu" PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import pydantic" 2>/dev/null; then
  "$PY" -c 'import tarfile; tarfile.open(".gpu/wheels.tar.xz").extractall("/tmp/site", filter="data")'
fi
if [ "${1:-}" = "start" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
exec "$PY" -m facesr.cli gpu session "$@"
