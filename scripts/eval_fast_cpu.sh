#!/usr/bin/env bash
# Score the jdsr-fast CPU runs of scripts/train_fast_cpu.sh (docs/training.md, "jdsr-fast on a CPU").
#   bash scripts/eval_fast_cpu.sh ablations   # each x4 ablation run, first 300 faces, masked + unmasked input
#   bash scripts/eval_fast_cpu.sh main        # the x4 / x8 main runs on the whole frozen benchmarks
# Ablation results go to workspace/results/ablations/ (read by scripts/fast_report.py); main results to
# workspace/results/ (copy them into results/ with --out results when shipping).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=workspace/runs
case "${1:-}" in
  ablations)
    out=workspace/results/ablations
    mkdir -p "$out"
    for run in abl_fast_x4_pixel abl_fast_x4_scratch abl_fast_x4_ppi abl_fast_x4_adv abl_fast_x4_mask1 abl_lite_x4_pixel abl_fast_x4_sronly; do
      while [ ! -f "$RUNS/$run/weights.safetensors" ]; do sleep 30; done
      for input in masked clean; do
        [ -f "$out/$run.$input.done" ] && continue
        facesr eval --model "$RUNS/$run/weights.safetensors" --name "$run" --benchmark utk-mask-x4 \
          --input "$input" --limit 300 --out "$out" --batch-size 50
        touch "$out/$run.$input.done"
      done
    done
    ;;
  main)
    # FACESR_RUN_TAG=_c scores workspace/runs/jdsr_fast_x4_c etc. (a later session's continuation)
    for s in 4 8; do
      for input in masked clean; do
        facesr eval --model "$RUNS/jdsr_fast_x$s${FACESR_RUN_TAG:-}/weights.safetensors" --name "jdsr-fast-x$s" \
          --benchmark "utk-mask-x$s" --input "$input" --out "${OUT:-workspace/results}" --batch-size 50
      done
    done
    ;;
  *)
    echo "usage: $0 ablations|main" >&2
    exit 2
    ;;
esac
