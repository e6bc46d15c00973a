#!/usr/bin/env bash
# The JDSR baselines at the CPU budget of the bundled jdsr-lite-x4 / -x8 (docs/training.md, "CPU baselines"):
# SR-only and two-stage, each trained with configs/*_lite_x{4,8}_cpu.yaml (same data, batch, optimiser,
# lr schedule, EMA and reduced objective as configs/jdsr_lite_x{4,8}_cpu.yaml, stopped at the same step),
# then scored on the frozen utk-mask-x4 / -x8 benchmark next to jdsr-lite (results/*.json -> RESULTS.md).
# Wall time on an idle 2-core CPU: ~1 h for the two trainings run side by side (~1.5 h when the cores
# are shared), then ~5 min of evaluation.
#   bash scripts/cpu_baselines.sh [4|8]      # train what is missing, resume what was cut, then evaluate
set -euo pipefail
cd "$(dirname "$0")/.."
S="${1:-4}"
case "$S" in 4 | 8) ;; *) echo "cpu_baselines.sh: scale must be 4 or 8, got $S" >&2; exit 2 ;; esac
RUNS="${FACESR_WORKSPACE:-workspace}/runs"

train() {  # train CONFIG unless its run finished; resume it if it was cut short
  local cfg="$1" name
  name="$(basename "$cfg" .yaml)"
  if [ -f "$RUNS/$name/weights.safetensors" ] || [ -f "$RUNS/$name/denoiser.safetensors" ]; then
    echo "$name: already trained"
  elif [ -f "$RUNS/$name/ckpt/last.pt" ]; then
    facesr train --resume "$RUNS/$name" run.progress=false
  else
    facesr train "$cfg" run.progress=false
  fi
}

# one thread each, side by side on the two cores
train configs/sr_only_lite_x${S}_cpu.yaml &
sr_only=$!
( train configs/two_stage_denoiser_lite_x${S}_cpu.yaml && train configs/two_stage_sr_lite_x${S}_cpu.yaml ) &
two_stage=$!
wait "$sr_only"
wait "$two_stage"

facesr combine-two-stage "$RUNS/two_stage_denoiser_lite_x${S}_cpu/denoiser.safetensors" \
  "$RUNS/two_stage_sr_lite_x${S}_cpu/weights.safetensors" -o "$RUNS/two_stage_lite_x${S}_cpu.safetensors"

steps=$([ "$S" = 4 ] && echo 1,120 || echo 1,156)
note="CPU budget-matched baseline of jdsr-lite-x${S}: ${steps} steps x 8 faces, reduced objective (scripts/cpu_baselines.sh ${S})"
facesr eval --out results --benchmark utk-mask-x${S} --model "$RUNS/sr_only_lite_x${S}_cpu/weights.safetensors" \
  --name sr-only-lite-x${S}-cpu --label "SR-only (lite, CPU budget)" --kind baseline --notes "$note"
facesr eval --out results --benchmark utk-mask-x${S} --model "$RUNS/two_stage_lite_x${S}_cpu.safetensors" \
  --name two-stage-lite-x${S}-cpu --label "two-stage (lite, CPU budget)" --kind baseline --notes "$note"
# face-specific SR on unmasked LR: the two-stage SR module was trained on clean LR -> HR
facesr eval --out results --benchmark utk-mask-x${S} --input clean --model "$RUNS/two_stage_sr_lite_x${S}_cpu/weights.safetensors" \
  --name two-stage-sr-module-lite-x${S}-cpu --label "two-stage SR module alone (lite, CPU budget)" --kind baseline \
  --notes "$note"
facesr report
