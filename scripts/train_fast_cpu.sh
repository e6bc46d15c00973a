#!/usr/bin/env bash
# The CPU training session behind the shipped jdsr-fast models (docs/training.md, "jdsr-fast on a CPU").
# Three processes share the 2 cores: the x4 and x8 main runs, and a queue of equal-step x4 ablations
# followed by the x2 run. Each writes workspace/runs/<name>/ (log.jsonl with val/psnr and cpu_s).
#   bash scripts/train_fast_cpu.sh main     # x4 + x8 main runs (background)
#   bash scripts/train_fast_cpu.sh queue    # ablations, then x2 (foreground; run it under nohup)
#   bash scripts/train_fast_cpu.sh continue # x4 + x8 warm-started from the shipped weights (background)
# To continue from the shipped weights instead of the general-SR start, add
#   model.init_from=src/facesr/weights/jdsr-fast-x4.safetensors (and the x8 file for x8).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN="${FACESR_MINUTES:-100}"
ABL_STEPS="${FACESR_ABLATION_STEPS:-300}"
case "${1:-}" in
  main)
    nohup facesr train configs/jdsr_fast_x4.yaml run.max_minutes="$MIN" run.progress=false \
      > workspace/jdsr_fast_x4.out 2>&1 &
    nohup facesr train configs/jdsr_fast_x8.yaml run.max_minutes="$MIN" run.progress=false \
      > workspace/jdsr_fast_x8.out 2>&1 &
    ;;
  continue)
    # A later session's share of the accumulated budget: both runs start from the shipped weights, decay the
    # LR over FACESR_STEPS steps and stop at FACESR_MINUTES at the latest. Niced, so that interactive work
    # preempts them (needs /proc/sys/kernel/sched_autogroup_enabled = 0, docs/training.md).
    # Both keep their config's objective: session 4 tried x8 on pixel + noise + TV terms only (about 1.6x the
    # images per CPU-second) and its identity and FRD got worse while PSNR rose (docs/jdsr-fast.md).
    # No denoiser warm-up: the shipped CNN_D (session 5 layout) is trained already.
    # FACESR_PRECISION=bf16 on a CPU with native bf16 (AVX-512 BF16 / AMX): 1.6x the images/s of the
    # shipped objective and the same scores at equal steps (docs/jdsr-fast.md, session 8); elsewhere fp32.
    tag="${FACESR_TAG:-s6}"
    steps="${FACESR_STEPS:-4000}"
    prec="${FACESR_PRECISION:-auto}"
    nohup nice -n 10 facesr train configs/jdsr_fast_x4.yaml run.name="jdsr_fast_x4_$tag" run.steps="$steps" \
      run.max_minutes="$MIN" run.progress=false ema.decay=0.995 ema.start=0 recipe.warmup_steps=0 \
      run.precision="$prec" model.init_from=src/facesr/weights/jdsr-fast-x4.safetensors \
      > "workspace/jdsr_fast_x4_$tag.out" 2>&1 &
    nohup nice -n 10 facesr train configs/jdsr_fast_x8.yaml run.name="jdsr_fast_x8_$tag" run.steps="$steps" \
      run.max_minutes="$MIN" run.progress=false ema.decay=0.995 ema.start=0 recipe.warmup_steps=0 \
      run.precision="$prec" model.init_from=src/facesr/weights/jdsr-fast-x8.safetensors \
      > "workspace/jdsr_fast_x8_$tag.out" 2>&1 &
    ;;
  queue)
    common=(run.progress=false run.stop_step="$ABL_STEPS" run.val_every=50)
    # loss ablations (same data, same steps): pixel only; + perceptual + identity is the main run;
    # + adversarial; mask probability 1.0 (the paper's setting) instead of 0.5
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_pixel \
      loss.sr_perceptual=0 loss.sr_identity=0 recipe.adversarial=false
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_scratch \
      loss.sr_perceptual=0 loss.sr_identity=0 recipe.adversarial=false model.init_from=null
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_ppi
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_adv \
      recipe.adversarial=true recipe.adv_start_step=0
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_mask1 data.mask_prob=1.0
    facesr train configs/jdsr_lite_x4_cpu.yaml "${common[@]}" run.name=abl_lite_x4_pixel \
      data.mask_prob=0.5 data.val_faces=200
    # the paper's comparison for the fast model: the same SR module fed the masked LR directly
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name=abl_fast_x4_sronly recipe.name=sr_only
    facesr train configs/jdsr_fast_x2.yaml run.progress=false run.max_minutes="${FACESR_X2_MINUTES:-30}"
    ;;
  *)
    echo "usage: $0 main|continue|queue" >&2
    exit 2
    ;;
esac
