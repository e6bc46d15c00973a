#!/usr/bin/env bash
# The paper's comparison (joint vs SR-only vs two-stage, papers.md 1.7) re-run for jdsr-fast x4 at one
# small, equal budget: every network is trained FACESR_CMP_STEPS steps x 16 faces from the same general-SR
# start, the same data (mask_prob 0.5, real-world degradations), pixel + noise terms only (the cheapest
# objective, so that four runs fit a session), then scored on all 1,000 utk-mask-x4 faces, masked and
# unmasked (results/*.json -> RESULTS.md). Two-stage = a denoiser trained alone (masked LR -> clean LR)
# chained by `facesr combine-two-stage` with an SR module trained alone on clean LR -> HR; each part gets
# the same steps as the joint model. This is *not* the shipped jdsr-fast-x4's budget (RESULTS.md names it).
#   FACESR_CMP_STEPS=400 bash scripts/fast_comparison.sh      # ~1.5 h on one shared core; resumable
set -euo pipefail
cd "$(dirname "$0")/.."
N="${FACESR_CMP_STEPS:-400}"
RUNS="${FACESR_WORKSPACE:-workspace}/runs"
common=(run.progress=false run.steps="$N" run.max_minutes=120 run.val_every=100 run.image_every=100000
  loss.sr_perceptual=0 loss.sr_identity=0 recipe.adversarial=false ema.decay=0.995 ema.start=0
  recipe.warmup_steps=0)
# the networks without a denoiser have no denoiser.* parameters to scale
no_dn=("optim.lr_scale={}")

train() {  # NAME OVERRIDES...: train unless finished; resume if cut
  local name="$1"
  shift
  if [ -f "$RUNS/$name/weights.safetensors" ] || [ -f "$RUNS/$name/denoiser.safetensors" ]; then
    echo "$name: already trained"
  elif [ -f "$RUNS/$name/ckpt/last.pt" ]; then
    facesr train --resume "$RUNS/$name" run.progress=false
  else
    facesr train configs/jdsr_fast_x4.yaml "${common[@]}" run.name="$name" "$@"
  fi
}

train cmp_fast_x4_joint
train cmp_fast_x4_sronly recipe.name=sr_only "${no_dn[@]}"
train cmp_fast_x4_dn recipe.name=two_stage_denoiser model.init_from=null
train cmp_fast_x4_sr recipe.name=two_stage_sr "${no_dn[@]}"
facesr combine-two-stage "$RUNS/cmp_fast_x4_dn/denoiser.safetensors" \
  "$RUNS/cmp_fast_x4_sr/weights.safetensors" -o "$RUNS/cmp_fast_x4_two_stage.safetensors"

note="paper's comparison for jdsr-fast at an equal budget: ${N} steps x 16 faces each from general-SR weights, pixel + noise terms (scripts/fast_comparison.sh)"
ev() {  # NAME LABEL FILE [INPUT]
  facesr eval --out results --benchmark utk-mask-x4 --batch-size 50 --input "${4:-masked}" --model "$3" \
    --name "$1" --label "$2" --kind baseline --notes "$note"
}
for input in masked clean; do
  ev cmp-fast-x4-joint "joint (jdsr-fast, ${N}-step comparison)" "$RUNS/cmp_fast_x4_joint/weights.safetensors" "$input"
  ev cmp-fast-x4-sr-only "SR-only (jdsr-fast, ${N}-step comparison)" "$RUNS/cmp_fast_x4_sronly/weights.safetensors" "$input"
  ev cmp-fast-x4-two-stage "two-stage (jdsr-fast, ${N}-step comparison)" "$RUNS/cmp_fast_x4_two_stage.safetensors" "$input"
done
facesr report
