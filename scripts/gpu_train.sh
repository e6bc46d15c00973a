#!/usr/bin/env bash
# One training command for a lent GPU (the device tool's `run`), e.g. with carry [".gpu"]:
#     bash scripts/gpu_train.sh jdsr_lite_x4 8 [key.sub=value ...]
# Needs .gpu/ from `facesr gpu pack --wheels` (JPEGs + alignment matrices + mask templates +
# pydantic wheels). Rebuilds the prepared set from the JPEGs (once per machine), trains configs/NAME.yaml
# for at most MINUTES of wall time, resuming from workspace/runs/NAME on the machine (an earlier call in
# the same lease) or from .gpu/runs/NAME (a carried run folder), runs the quick held-out check, and
# copies weights, card, log, loss curve, metrics and the preview grid to $OUT. See docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME="${1:?usage: gpu_train.sh CONFIG_NAME [MINUTES] [overrides...]}"
MINUTES="${2:-8}"
shift $(( $# >= 2 ? 2 : 1 ))
OUT="${OUT:-out/gpu}"
WS="${FACESR_WORKSPACE:-workspace}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 FACESR_DATA="$PWD/.gpu" PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -c 'import tarfile; tarfile.open(".gpu/wheels.tar.xz").extractall("/tmp/site", filter="data")'
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ ! -f "$WS/prepared/utkface"/faces128.npy ]; then
  python3 -m facesr.cli gpu unpack --packed .gpu --out "$WS/prepared/utkface"
fi
RUN="$WS/runs/$NAME"
if [ ! -f "$RUN/ckpt/last.pt" ] && [ -f ".gpu/runs/$NAME/ckpt/last.pt" ]; then
  mkdir -p "$WS/runs" && cp -r ".gpu/runs/$NAME" "$RUN"
fi
if [ -f "$RUN/ckpt/last.pt" ]; then
  python3 -m facesr.cli train --resume "$RUN" "run.max_minutes=$MINUTES" "$@" 2>&1 | tee "$OUT/train.log"
else
  python3 -m facesr.cli train "configs/$NAME.yaml" "run.out_dir=$RUN" "run.max_minutes=$MINUTES" "$@" \
    2>&1 | tee "$OUT/train.log"
fi
python3 -m facesr.cli gpu check "$RUN" --n 200
for f in weights.safetensors denoiser.safetensors card.md log.jsonl loss_curve.png metrics.json; do
  [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
done
[ -f "$RUN/images/latest.png" ] && cp "$RUN/images/latest.png" "$OUT/preview.png"
ls -la "$OUT"
