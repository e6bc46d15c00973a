"""Turn on the face-level gate of a trained ``jdsr_fast`` run's weights (an inference option, no training).

    python scripts/gate_model.py workspace/runs/jdsr_fast_x4_s8 -o workspace/runs/jdsr_fast_x4_s8_gated

writes OUT/weights.safetensors (the same tensors; the args gain ``gate_low`` / ``gate_high``, so the SR
module sees the face's own pixels wherever the denoiser changes the lower face too little to be a mask;
``facesr.nets.fast.JDSRFast``) and copies the run's card (with a section saying so), log and loss curve,
so that ``scripts/ship_model.py OUT`` installs it like any run. Why a separate step: the gate's thresholds
were chosen on real photos after training (docs/jdsr-fast.md, "Session 9"), and the run's own export stays
the ungated network that training produced.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facesr.io import atomic_path, atomic_write_text
from facesr.nets.fast import GATE_HIGH, GATE_LOW, build_jdsr_fast


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a training run folder with weights.safetensors and card.md")
    ap.add_argument("-o", "--out", type=Path, required=True, help="new folder (must not exist)")
    ap.add_argument("--gate-low", type=float, default=GATE_LOW, help="face score with the denoiser off")
    ap.add_argument("--gate-high", type=float, default=GATE_HIGH, help="face score with all of it")
    args = ap.parse_args(argv)
    src = args.run_dir / "weights.safetensors"
    if not src.is_file() or not (args.run_dir / "card.md").is_file():
        raise SystemExit(f"gate_model: {args.run_dir} lacks weights.safetensors or card.md")
    if args.out.exists():
        raise SystemExit(f"gate_model: {args.out} exists; not replacing a folder this run did not write")
    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    if meta.get("facesr.arch") != "jdsr_fast":
        raise SystemExit(f"gate_model: {src} is {meta.get('facesr.arch')!r}, not a jdsr_fast file")
    arch_args = json.loads(meta.get("facesr.args", "{}")) | {
        "gate_low": args.gate_low,
        "gate_high": args.gate_high,
    }
    build_jdsr_fast(**arch_args)  # the args must still build (a bad pair of thresholds fails here)
    meta["facesr.args"] = json.dumps(arch_args, sort_keys=True)
    args.out.mkdir(parents=True)
    with atomic_path(args.out / "weights.safetensors") as tmp:
        save_file(load_file(str(src)), str(tmp), metadata=meta)
    for name in ("log.jsonl", "loss_curve.png", "config.yaml"):
        if (args.run_dir / name).is_file():
            shutil.copy2(args.run_dir / name, args.out / name)
    card = (args.run_dir / "card.md").read_text(encoding="utf-8")
    card += (
        f"\n## Face-level gate (set after training)\n\n"
        f"`python scripts/gate_model.py {args.run_dir.as_posix()} -o {args.out.as_posix()} --gate-low "
        f"{args.gate_low} --gate-high {args.gate_high}`: the same weights; the SR module gets "
        f"`lr + g * (denoised - lr)`, g rising from 0 at a lower-face score of {args.gate_low:g} to 1 at "
        f"{args.gate_high:g} (8-bit levels squared; the mask detector's score). docs/jdsr-fast.md, "
        f'"Session 9".\n'
    )
    atomic_write_text(args.out / "card.md", card)
    print(f"wrote {args.out / 'weights.safetensors'} (gate {args.gate_low:g}-{args.gate_high:g})")
    return args.out


if __name__ == "__main__":
    main()
