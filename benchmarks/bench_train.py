"""Images/s of the full JDSR training step per speed lever, side by side in one run.

A command-line front end of :func:`facesr.speed.training.train_bench` (the measurement lives there,
with the rest of the speed code). Each lever is a config override; every row uses the same config,
batch and faces, and ratios are against the first row (``fp32``: the plain eager step). On CUDA the
rows add GPU busy time vs step time, syncs per step, data-pipeline time and peak memory per image.
Then optionally a batch sweep of one lever (``--sweep-lever``, ``--sweep-batches``).

    # CPU, small (what tests/test_speed_train.py runs, seconds):
    python benchmarks/bench_train.py --batch 2 --steps 2 --warmup 1 --tiny
    # GPU:
    python benchmarks/bench_train.py --config configs/jdsr_paper_x4.yaml --batch 128 --steps 20 \\
        --levers fp32,bf16,bf16+fused+sync_log --json-out $OUT/train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the flags, run :func:`facesr.speed.training.train_bench`, print the table(s)."""
    from facesr.speed.training import TrainLeverResult, render_train, train_bench

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
    doc = train_bench(
        args.config,
        args.levers.split(",") if args.levers else None,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        prepared=args.prepared,
        faces=args.faces,
        data_root=args.data,
        tiny=args.tiny,
        overrides=args.override,
        sweep_lever=args.sweep_lever,
        sweep_batches=[int(x) for x in args.sweep_batches.split(",") if x.strip()],
        command="python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    print("\n".join(render_train([TrainLeverResult(**r) for r in doc["rows"]])))
    if doc["sweep"]:
        print("\nbatch sweep:\n" + "\n".join(render_train([TrainLeverResult(**r) for r in doc["sweep"]])))
    if args.json_out:
        from facesr.io import atomic_write_text

        atomic_write_text(Path(args.json_out), json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    main()
