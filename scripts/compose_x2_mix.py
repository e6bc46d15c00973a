"""Build a ``jdsr_fast_x2_mix`` weights file from a trained x2 and a trained x4 ``jdsr_fast`` file.

Why a script: the composite has no training run of its own (:mod:`facesr.nets.fast_mix`), so this is
its "run": it writes ``OUT/weights.safetensors`` and ``OUT/card.md`` in the layout that
``scripts/ship_model.py`` installs, with both parts' sha256, training totals and the blend thresholds
in the metadata, so the shipped file says exactly what it is made of.

    python scripts/compose_x2_mix.py --x2 src/facesr/weights/jdsr-fast-x2.safetensors \\
        --x4 src/facesr/weights/jdsr-fast-x4.safetensors -o workspace/runs/jdsr_fast_x2_mix_s8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from facesr.checksums import sha256_file
from facesr.io import atomic_write_text
from facesr.nets.fast_mix import build_jdsr_fast_x2_mix
from facesr.zoo import save_weights


def read_part(path: Path, scale: int) -> tuple[dict, dict, dict]:
    """(state, args without scale, metadata) of a ``jdsr_fast`` file of the given scale."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        names = list(fh.keys())
        state = {k: fh.get_tensor(k) for k in names}
    if meta.get("facesr.arch") != "jdsr_fast" or meta.get("facesr.scale") != str(scale):
        raise SystemExit(f"{path}: not a jdsr_fast x{scale} file (arch {meta.get('facesr.arch')!r})")
    args = {k: v for k, v in json.loads(meta.get("facesr.args", "{}")).items() if k != "scale"}
    return state, args, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x2", type=Path, required=True, help="jdsr_fast x2 weights (64 px faces)")
    ap.add_argument("--x4", type=Path, required=True, help="jdsr_fast x4 weights (removes masks at 32 px)")
    ap.add_argument("--low", type=float, default=0.015, help="denoiser change (0-1) where the blend starts")
    ap.add_argument("--high", type=float, default=0.06, help="denoiser change where it is all x4")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output folder (a run-like folder)")
    args = ap.parse_args()

    s2, a2, m2 = read_part(args.x2, 2)
    s4, a4, m4 = read_part(args.x4, 4)
    arch_args = {"x2": a2, "x4": a4, "low": args.low, "high": args.high}
    net = build_jdsr_fast_x2_mix(**arch_args)
    state = {f"x2.{k}": v for k, v in s2.items()} | {f"x4.{k}": v for k, v in s4.items()}
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    parts = {
        "x2": {"file": args.x2.name, "sha256": sha256_file(args.x2), "totals": m2.get("facesr.totals", "{}")},
        "x4": {"file": args.x4.name, "sha256": sha256_file(args.x4), "totals": m4.get("facesr.totals", "{}")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_weights(
        net,
        args.out / "weights.safetensors",
        arch="jdsr_fast_x2_mix",
        args=arch_args,
        scale=2,
        output_key="sr",
        extra={"facesr.parts": json.dumps(parts, sort_keys=True), "facesr.recipe": "compose"},
    )
    n_params = sum(p.numel() for p in net.parameters())
    rows = "\n".join(
        f"| {k} | `{v['file']}` | `{v['sha256'][:16]}...` | {v['totals']} |" for k, v in parts.items()
    )
    card = f"""# jdsr_fast_x2_mix -> zoo model `jdsr-fast-x2`

* Architecture `jdsr_fast_x2_mix` (src/facesr/nets/fast_mix.py): 64 px face -> 128. The x2 part
  super-resolves the whole face from its own 64 px; where the x4 part's denoiser (on the face halved to
  32 px) removes a mask, the x4 part's output replaces it. {n_params:,} parameters; fp16 weights.
* Not trained as a whole: built by `python scripts/compose_x2_mix.py --x2 {args.x2.as_posix()} --x4
  {args.x4.as_posix()} --low {args.low} --high {args.high} -o {args.out.as_posix()}`. The blend
  thresholds (mean absolute change of the x4 denoiser per 32 px pixel) were chosen on training faces
  (docs/jdsr-fast.md, "Session 8"): inside masks the change is above 0.06 for 95 % of pixels, on
  unmasked faces (clean or degraded) below 0.003 for 99 %.

## Parts

| part | file | sha256 | training totals of the part |
|---|---|---|---|
{rows}

Each part's own card (`jdsr-fast-x2.md` of session 3, `jdsr-fast-x4.md`) lists its training run, data and
licences; the x4 part's SR module started from RLFN_Prune general-SR weights (MIT; see
src/facesr/weights/LICENSES.md).
"""
    atomic_write_text(args.out / "card.md", card)
    print(f"wrote {args.out / 'weights.safetensors'} ({n_params:,} parameters)")


if __name__ == "__main__":
    main()
