#!/usr/bin/env python
"""Parameter counts, GFLOPs per image and CPU forward time per face of the JDSR generator sizes.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, transposed
convolutions and matmuls, 2 FLOPs per multiply-add; element-wise ops, pooling and interpolation are
not counted) for one image. CPU time is the median over ``--repeats`` forward passes at batch 1 with
``torch.set_num_threads(--threads)`` after warm-up, in eval mode under ``torch.inference_mode``.
Timings depend on the machine and its load; the script prints the CPU model and the 1-minute load
average next to them. Usage::

    python scripts/model_stats.py --repeats 20 --threads 2 [--out docs/jdsr_stats.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

#: Paper-size variants whose parameter counts help explain the 36.7M a third-party thesis quotes.
WHAT_IF: tuple[tuple[str, dict], ...] = (
    ("paper (as built: 1 hourglass, 1 RCAB per hourglass branch)", {}),
    ("2 stacked hourglasses (FSRNet)", {"hourglass_count": 2}),
    ("3 RCABs per hourglass branch", {"hourglass_blocks": 3}),
    ("2 hourglasses x 3 RCABs per branch", {"hourglass_count": 2, "hourglass_blocks": 3}),
    ("trunk width 128", {"trunk": 128}),
    ("2 hourglasses x 3 RCABs, trunk 128", {"hourglass_count": 2, "hourglass_blocks": 3, "trunk": 128}),
    ("CNN_D widths 128/256/512", {"unet_widths": (128, 256, 512)}),
)


def gflops(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Forward GFLOPs for one batch as counted by FlopCounterMode."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(x)
    return counter.get_total_flops() / 1e9 / x.shape[0]


def cpu_ms(net: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int = 3) -> float:
    """Median wall-clock milliseconds of one forward pass."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            net(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    from facesr.nets.discriminators import WGANCritic
    from facesr.nets.jdsr import JDSRGenerator, count_parameters

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["paper", "lite"])
    ap.add_argument("--no-time", action="store_true", help="skip the CPU timing (counts only)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [
        "| size | scale | generator params | of which denoiser | of which SR module | GFLOPs / image "
        f"| CPU ms / face (batch 1, {args.threads} threads, median of {args.repeats}) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in args.sizes:
        for scale in (4, 8):
            net = JDSRGenerator(size, scale).eval()
            x = torch.rand(1, 3, net.lr_size, net.lr_size)
            rows.append(
                f"| {size} | x{scale} | {count_parameters(net):,} | {count_parameters(net.denoiser):,} | "
                f"{count_parameters(net.sr_module):,} | {gflops(net, x):.2f} | "
                f"{'-' if args.no_time else f'{cpu_ms(net, x, args.repeats):.1f}'} |"
            )
            print(rows[-1], file=sys.stderr)
    rows += [
        "",
        "What-if parameter counts (paper size with one setting changed; see docs/jdsr.md):",
        "",
        "| variant | generator params |",
        "| --- | ---: |",
    ]
    for label, kw in WHAT_IF:
        rows.append(f"| {label} | {count_parameters(JDSRGenerator('paper', 4, **kw)):,} |")
    critic = WGANCritic()
    rows += [
        "",
        f"WGAN-GP critic (default width 64): {count_parameters(critic):,} parameters, "
        f"{gflops(critic.eval(), torch.rand(1, 3, 128, 128)):.2f} GFLOPs / image.",
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows += [
        "",
        f"Machine: {cpu_name()}, torch {torch.__version__}, 1-min load average {load:.1f} "
        f"during the run ({os.cpu_count()} logical CPUs).",
    ]
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out is not None:
        from facesr.io import atomic_write_text

        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
