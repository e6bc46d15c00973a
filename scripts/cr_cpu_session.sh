#!/usr/bin/env bash
# The issue-19 CR session on the 2-core CPU (docs/cr.md section 6): stage A (G_S = the pretrained RLFN,
# fine-tuned on degraded, 50 % masked artificial LR), then the stage-B runs and the cycle baseline on two
# queues (one per core, one thread each, nice 5), then the scoring on genuine-lr-val / genuine-lr /
# utk-art-x4. Needs a built genuine set (`facesr genuine build`) and a prepared UTKFace.
#   bash scripts/cr_cpu_session.sh a        # stage A (foreground; ~25 min on a free core)
#   bash scripts/cr_cpu_session.sh b        # the five stage-B / cycle runs (foreground, two queues)
#   bash scripts/cr_cpu_session.sh b2       # rounds 3-4: pixel content, brightness-only G_C (foreground)
#   FACESR_CR_C_FROM=cr_rlfn_b_s7l_cr5 bash scripts/cr_cpu_session.sh c   # optional stage C (not run in session 7)
#   bash scripts/cr_cpu_session.sh eval     # score every run (foreground)
# FACESR_CR_TAG names the runs (default s7), FACESR_CR_A_STEPS / FACESR_CR_B_STEPS set the lengths.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${FACESR_CR_TAG:-s7}"
a_steps="${FACESR_CR_A_STEPS:-10000}"
b_steps="${FACESR_CR_B_STEPS:-3000}"
R=workspace/runs
A="$R/cr_rlfn_a_$tag"
# round 1: content on Gaussian-blurred versions (sigma 1) as in the session-2 cr-x4 (docs/cr.md section 7): G_C is tied to
# the genuine face's low frequencies only and free to change its high-frequency characteristics
common=(run.progress=false run.steps="$b_steps" run.max_minutes=120 cr.init="$A" loss.content_blur_sigma=1.0
  cr.nets.gc_luma=false)
# the main CR recipe: degradation consistency (loss.cr) + the HR adversarial part of the CR term
cr_main=(loss.cr=50 loss.cr_hr_adv=0.1 cr.nets.use_d_hr=true)
case "${1:-}" in
  a)
    nice -n 5 facesr train configs/cr_rlfn_a.yaml run.name="cr_rlfn_a_$tag" run.steps="$a_steps" \
      run.max_minutes=60 run.progress=false
    ;;
  b)
    # queue 1: main CR run, then the no-content ablation (the slow ones: D_HR at 64x64); queue 2: CR with the
    # consistency part only, no CR term, then the cycle baseline. Stage-B runs get equal steps; the cycle
    # baseline gets FACESR_CR_CYCLE_MINUTES of wall time, set to the main run's (28 min in session 7).
    (
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_$tag" "${common[@]}" "${cr_main[@]}"
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}_no_content" "${common[@]}" \
        "${cr_main[@]}" loss.content=0
    ) > "workspace/cr_b_${tag}_q1.out" 2>&1 &
    (
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}_consist" "${common[@]}" loss.cr=50
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}_no_cr" "${common[@]}" loss.cr=0
      nice -n 5 facesr train configs/cr_rlfn_cycle.yaml run.name="cr_rlfn_cycle_$tag" cr.init="$A" \
        run.max_minutes="${FACESR_CR_CYCLE_MINUTES:-28}" run.progress=false
    ) > "workspace/cr_b_${tag}_q2.out" 2>&1 &
    wait
    ;;
  b2)
    # rounds 3 and 4 (after round 1 was scored and looked at on real photos: G_C painted dark, coloured
    # eye spots; content on blurred faces leaves it free to): content on pixels (sigma 0), CR term 5, with
    # the no-CR-term and no-content ablations; then the brightness-only G_C (cr.nets.gc_luma, the config's
    # default since session 7) with and without the CR term. cr_rlfn_b_<tag>l_cr5 is the shipped cr-x4.
    pix=(run.progress=false run.steps="$b_steps" run.max_minutes=120 cr.init="$A" loss.content_blur_sigma=0)
    (
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}p_cr5" "${pix[@]}" \
        cr.nets.gc_luma=false loss.cr=5
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}l_cr5" "${pix[@]}" loss.cr=5
    ) > "workspace/cr_b2_${tag}_q1.out" 2>&1 &
    (
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}p_no_cr" "${pix[@]}" \
        cr.nets.gc_luma=false loss.cr=0
      nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}l_no_cr" "${pix[@]}" loss.cr=0
    ) > "workspace/cr_b2_${tag}_q2.out" 2>&1 &
    nice -n 5 facesr train configs/cr_rlfn_b.yaml run.name="cr_rlfn_b_${tag}p_no_content" "${pix[@]}" \
      cr.nets.gc_luma=false loss.cr=5 loss.content=0 > "workspace/cr_b2_${tag}_q3.out" 2>&1
    wait
    ;;
  c)
    # optional stage C on the run chosen on genuine-lr-val (FACESR_CR_C_FROM, a stage-B run name): G_C fixed,
    # G_S fine-tuned at lr 1e-5 on G_C(x_a) (cr.c_input=consistified), on stage A's degraded, 50 % masked data,
    # to win back what G_C costs on artificial LR
    from="${FACESR_CR_C_FROM:?set FACESR_CR_C_FROM to a stage-B run name}"
    nice -n 5 facesr train configs/cr_stage_c.yaml run.name="${from/_b_/_c_}" cr.init="$R/$from" \
      cr.nets.gc_width=32 cr.nets.gc_blocks=4 cr.nets.gs_arch=rlfn cr.nets.d_width=32 cr.c_input=consistified \
      cr.degrade=true cr.mask_artificial=0.5 data.batch_size=16 run.steps="${FACESR_CR_C_STEPS:-3000}" \
      run.log_every=50 run.ckpt_every=250 run.image_every=500 run.device=cpu run.threads=1 run.progress=false \
      ema.decay=0.995
    ;;
  eval)
    # named as `facesr report` expects (sr-only and cycle are the two references of the CR table)
    facesr genuine eval --out results --method bicubic-x4=bicubic --method "sr-only=$A/weights.safetensors"
    facesr genuine eval --out results --method "cr=$R/cr_rlfn_b_$tag/weights.safetensors" \
      --method "cr-consistency-only=$R/cr_rlfn_b_${tag}_consist/weights.safetensors" \
      --method "cr-no-cr-term=$R/cr_rlfn_b_${tag}_no_cr/weights.safetensors" \
      --method "cr-no-content=$R/cr_rlfn_b_${tag}_no_content/weights.safetensors" \
      --method "cycle=$R/cr_rlfn_cycle_$tag/weights.safetensors" --method cr-x4-shipped=cr-x4
    facesr genuine eval --out results --method "cr-pix=$R/cr_rlfn_b_${tag}p_cr5/weights.safetensors" \
      --method "cr-pix-no-cr-term=$R/cr_rlfn_b_${tag}p_no_cr/weights.safetensors" \
      --method "cr-pix-no-content=$R/cr_rlfn_b_${tag}p_no_content/weights.safetensors"
    facesr genuine eval --out results --method "cr-luma=$R/cr_rlfn_b_${tag}l_cr5/weights.safetensors" \
      --method "cr-luma-no-cr-term=$R/cr_rlfn_b_${tag}l_no_cr/weights.safetensors"
    ;;
  *)
    echo "usage: $0 a|b|b2|c|eval" >&2
    exit 2
    ;;
esac
