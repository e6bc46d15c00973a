"""Images/s of the full JDSR training step per speed lever, side by side in one run.

Each lever is a config override (``facesr.speed.training``); every row uses the same config,
batch and faces, and ratios are against the first row (``fp32``: the plain eager step). On CUDA the
rows add GPU busy time vs step time, syncs per step, data-pipeline time and peak memory per image.
Then optionally a batch sweep of one lever (``--sweep-lever``, ``--sweep-batches``).

    # CPU, small (what tests/test_speed_train.py runs, seconds):
    python benchmarks/bench_train.py --batch 2 --steps 2 --warmup 1 --tiny
    # GPU (scripts/gpu_speed.sh runs this):
    python benchmarks/bench_train.py --config configs/jdsr_paper_x4.yaml --batch 128 --steps 20 \\
        --levers fp32,bf16,bf16+fused+sync_log --json-out $OUT/train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

#: a very narrow generator and critic (tests: every code path, seconds on a CPU)
TINY = [
    "model.overrides={est_width: 4, est_blocks: 1, est_reduction: 2, unet_widths: [4, 8, 8], "
    "unet_blocks: [1, 1, 1, 1, 1], trunk: 8, prior_width: 8, coarse_blocks: 1, encoder_blocks: 1, "
    "prior_blocks: 1, hourglass_depth: 2, decoder_blocks: 1, reduction: 2}",
    "model.critic={width: 4}",
]


def main(argv: list[str] | None = None) -> dict:
    from facesr.speed.training import (
        CPU_TRAIN_LEVERS,
        CUDA_TRAIN_LEVERS,
        bench_train,
        rebase,
        render_train,
        tiled_prepared,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/jdsr_lite_x4.yaml")
    ap.add_argument("--levers", default=None, help="comma-separated; default: the device's lever list")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--prepared", default=None, help="prepared set folder (default: workspace/prepared/utkface)"
    )
    ap.add_argument("--faces", type=int, default=2048, help="faces held on the data device (tiled)")
    ap.add_argument("--data", default=None, help="face-data root holding masktheface/")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="very narrow nets (a smoke test of every path)")
    ap.add_argument("--override", action="append", default=[], help="extra config override key=value")
    ap.add_argument("--sweep-lever", default=None, help="also time this lever at --sweep-batches")
    ap.add_argument("--sweep-batches", default="64,128,256,512")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    levers = args.levers.split(",") if args.levers else list(CUDA_TRAIN_LEVERS if cuda else CPU_TRAIN_LEVERS)
    if args.prepared is None:
        from facesr.paths import prepared_dir

        args.prepared = str(prepared_dir("utkface"))
    prepared = tiled_prepared(args.prepared, max(args.faces, args.batch))
    extra = (TINY if args.tiny else []) + list(args.override)
    rows = bench_train(
        args.config,
        levers,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        prepared=prepared,
        data_root=args.data,
        extra_overrides=extra,
    )
    sweep = []
    if args.sweep_lever:
        for b in [int(x) for x in args.sweep_batches.split(",") if x.strip()]:
            prep = tiled_prepared(args.prepared, max(args.faces, b))
            sweep += bench_train(
                args.config,
                [args.sweep_lever],
                batch=b,
                steps=args.steps,
                warmup=args.warmup,
                prepared=prep,
                data_root=args.data,
                extra_overrides=extra,
            )
    rebase(sweep)
    doc = {
        "command": "python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": args.config,
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores visible)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "rows": [r.to_json() for r in rows],
        "sweep": [r.to_json() for r in sweep],
    }
    print("\n".join(render_train(rows)))
    if sweep:
        print("\nbatch sweep:\n" + "\n".join(render_train(sweep)))
    if args.json_out:
        from facesr.io import atomic_write_text

        atomic_write_text(Path(args.json_out), json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    main()
