"""Export the EMA generator of a training checkpoint as a facesr weights file, with its training totals.

Why: a CPU run takes hours and is looked at on real photos long before it ends (``benchmarks/
real_photo_grid.py`` takes the file), and a run whose objective is changed mid-way continues from such a
file with ``model.init_from`` (a fresh optimiser, the new objective) instead of ``--resume``. The totals
(steps, faces, CPU-hours) are what the loop's own export would write at that step, so a model card keeps
adding up every run behind it.

    python scripts/export_checkpoint.py workspace/runs/jdsr_fast_x4_s5b -o workspace/x4_step700.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from facesr.config import safe_load_yaml
from facesr.train.config import config_from_dict
from facesr.train.loop import load_checkpoint, run_totals
from facesr.train.warmstart import checkpoint_prior_totals
from facesr.zoo import build_arch, save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--ckpt", default="last.pt", help="checkpoint file under RUN_DIR/ckpt (last.pt, prev.pt)")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"export_checkpoint: {args.out} exists; not replacing a file this run did not write")
    state = load_checkpoint(args.run_dir / "ckpt" / args.ckpt)
    cfg = config_from_dict(safe_load_yaml(state["config_yaml"]), source=str(args.run_dir))
    m = cfg.model
    # as facesr.train.recipes.jdsr.Recipe.arch_args builds the joint generator (the JDSR family: output "sr")
    arch_args = {"size": m.size, "scale": cfg.data.scale, **m.overrides}
    net = build_arch(m.arch, arch_args)
    net.load_state_dict(state["ema"])
    torch.set_num_threads(cfg.run.threads or torch.get_num_threads())
    totals = run_totals(
        checkpoint_prior_totals(state, cfg),
        step=state["step"],
        images=state["images_seen"],
        wall_s=state["elapsed_s"],
        device=torch.device("cpu"),
    )
    save_weights(
        net,
        args.out,
        arch=m.arch,
        args=arch_args,
        scale=cfg.data.scale,
        output_key="sr",
        extra={
            "facesr.totals": json.dumps(totals, sort_keys=True),
            "facesr.checkpoint_step": str(state["step"]),
        },
    )
    print(f"step {state['step']}: {args.out} (totals {totals})")


if __name__ == "__main__":
    main()
