"""Build a composite weights file (:mod:`facesr.nets.fast_mix`) from trained ``jdsr_fast`` files.

Why a script: a composite has no training run of its own, so this is its "run": it writes
``OUT/weights.safetensors`` and ``OUT/card.md`` in the layout that ``scripts/ship_model.py`` installs,
with both parts' sha256, training totals and the blend thresholds in the metadata, so the file says
exactly what it is made of.

    # jdsr-fast-x2 (shipped): a 64 px face from its own pixels, its mask removed at 32 px by the x4 model
    python scripts/compose_mix.py x2 --base <jdsr_fast x2 file> --masker src/facesr/weights/jdsr-fast-x4.safetensors \
        -o workspace/runs/jdsr_fast_x2_mix
    # the x4 experiment (not shipped; docs/jdsr-fast.md "Session 8"): an SR module trained on clean LR
    # alone, with the joint x4 model where its denoiser removes a mask
    python scripts/compose_mix.py x4 --base workspace/runs/<two_stage_sr run>/weights.safetensors \
        --masker src/facesr/weights/jdsr-fast-x4.safetensors -o workspace/runs/jdsr_fast_x4_mix
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from facesr.checksums import sha256_file
from facesr.io import atomic_write_text
from facesr.nets.fast_mix import GATE_HIGH, GATE_LOW, build_jdsr_fast_x2_mix, build_jdsr_fast_x4_mix
from facesr.zoo import save_weights

#: kind -> (arch, builder, base part's arch and scale, names of the two parts in the state dict)
KINDS = {
    "x2": ("jdsr_fast_x2_mix", build_jdsr_fast_x2_mix, ("jdsr_fast", 2), ("x2", "x4")),
    "x4": ("jdsr_fast_x4_mix", build_jdsr_fast_x4_mix, ("jdsr_fast_sr_only", 4), ("clean", "joint")),
}
WHAT = {
    "x2": "The base part (x2) super-resolves the whole 64 px face from its own pixels; where the masker's "
    "denoiser (x4, on the face halved to 32 px) removes a mask, the masker's output replaces it.",
    "x4": "The base part (an SR module trained on clean LR alone) super-resolves the whole 32 px face; where "
    "the masker's denoiser (the joint x4 model) removes a mask, the joint model's output replaces it.",
}


def read_part(path: Path, arch: str, scale: int) -> tuple[dict, dict, dict]:
    """(state, args without scale, metadata) of an ``arch`` file of the given scale."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        names = list(fh.keys())
        state = {k: fh.get_tensor(k) for k in names}
    if meta.get("facesr.arch") != arch or meta.get("facesr.scale") != str(scale):
        raise SystemExit(f"{path}: not a {arch} x{scale} file (arch {meta.get('facesr.arch')!r})")
    args = {k: v for k, v in json.loads(meta.get("facesr.args", "{}")).items() if k != "scale"}
    return state, args, meta


GATE_NOTE = """
* The x2 composite's face-level gate (the mask detector's lower-face score, 8-bit levels squared) lets
  the x4 part in only on faces that score above the gate's low end, all of it from the high end: three
  unmasked real faces the x4 denoiser repainted scored 474-683, most real masks above 1,000
  (docs/jdsr-fast.md, "Session 9")."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(KINDS), help="x2: jdsr_fast_x2_mix; x4: jdsr_fast_x4_mix")
    ap.add_argument("--base", type=Path, required=True, help="the part used wherever no mask is seen")
    ap.add_argument(
        "--masker", type=Path, required=True, help="jdsr_fast x4 weights (removes masks at 32 px)"
    )
    ap.add_argument("--low", type=float, default=0.015, help="denoiser change (0-1) where the blend starts")
    ap.add_argument("--high", type=float, default=0.06, help="denoiser change where it is all the masker")
    ap.add_argument("--gate-low", type=float, default=GATE_LOW, help="x2 only: face score with no blend")
    ap.add_argument("--gate-high", type=float, default=GATE_HIGH, help="x2 only: face score with all of it")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output folder (a run-like folder)")
    args = ap.parse_args()

    arch, build, (base_arch, base_scale), (base_key, mask_key) = KINDS[args.kind]
    sb, ab, mb = read_part(args.base, base_arch, base_scale)
    sm, am, mm = read_part(args.masker, "jdsr_fast", 4)
    # the composite gates on the masker's raw denoiser change: a gated masker file's own gate is dropped
    am = {k: v for k, v in am.items() if k not in ("gate_low", "gate_high")}
    arch_args = {base_key: ab, mask_key: am, "low": args.low, "high": args.high}
    gate = ""
    if args.kind == "x2":
        arch_args |= {"gate_low": args.gate_low, "gate_high": args.gate_high}
        gate = f" --gate-low {args.gate_low} --gate-high {args.gate_high}"
    net = build(**arch_args)
    state = {f"{base_key}.{k}": v for k, v in sb.items()} | {f"{mask_key}.{k}": v for k, v in sm.items()}
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    parts = {
        key: {"file": path.name, "sha256": sha256_file(path), "totals": meta.get("facesr.totals", "{}")}
        for key, path, meta in ((base_key, args.base, mb), (mask_key, args.masker, mm))
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_weights(
        net,
        args.out / "weights.safetensors",
        arch=arch,
        args=arch_args,
        scale=base_scale,
        output_key="sr",
        extra={"facesr.parts": json.dumps(parts, sort_keys=True), "facesr.recipe": "compose"},
    )
    n_params = sum(p.numel() for p in net.parameters())
    rows = "\n".join(
        f"| {k} | `{v['file']}` | `{v['sha256'][:16]}...` | {v['totals']} |" for k, v in parts.items()
    )
    card = f"""# {arch} (composite of two trained files)

* Architecture `{arch}` (src/facesr/nets/fast_mix.py). {WHAT[args.kind]} {n_params:,} parameters; fp16.
* Not trained as a whole: built by `python scripts/compose_mix.py {args.kind} --base {args.base.as_posix()}
  --masker {args.masker.as_posix()} --low {args.low} --high {args.high}{gate} -o {args.out.as_posix()}`. The
  blend thresholds (mean absolute change of the x4 denoiser per 32 px pixel) were chosen on training
  faces (docs/jdsr-fast.md, "Session 8"): inside masks the change is above 0.06 for 95 % of pixels, on
  unmasked faces (clean or degraded) below 0.003 for 99 %.{GATE_NOTE if gate else ""}

## Parts

| part | file | sha256 | training totals of the part |
|---|---|---|---|
{rows}

Each part's own card lists its training run, data and licences; both parts' SR modules started from
RLFN_Prune general-SR weights (MIT; src/facesr/weights/LICENSES.md).
"""
    atomic_write_text(args.out / "card.md", card)
    print(f"wrote {args.out / 'weights.safetensors'} ({n_params:,} parameters)")


if __name__ == "__main__":
    main()
