"""What a speed measurement runs: a model built from a name or an ``arch:key=value`` spec, its FLOPs,
and the median-time helper every speed table uses.

A leaf of :mod:`facesr.speed` (the bench, the lever report and the GPU script all import it), so that
none of them imports another to borrow a helper.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from facesr.errors import FacesrError

DEFAULT_SPECS = ("bicubic", "jdsr:size=lite", "jdsr:size=paper")
LITE_SPEC = "jdsr:size=lite"


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``jdsr:size=lite:width=32`` -> (``jdsr``, {size: lite, width: 32}); values parsed as YAML scalars."""
    import yaml

    arch, *parts = spec.split(":")
    args: dict[str, Any] = {}
    for p in parts:
        if "=" not in p:
            raise FacesrError(f"bench model spec {spec!r}: expected key=value after ':', got {p!r}")
        k, v = p.split("=", 1)
        args[k] = yaml.safe_load(v)
    return arch, args


def build(spec: str, scale: int) -> torch.nn.Module:
    """A Restorer for a zoo name, a weights path or an ``arch:key=value`` spec (untrained)."""
    from facesr.zoo import Restorer, build_arch, load_model

    if spec == "bicubic" or spec.startswith("bicubic-"):
        return load_model("bicubic", scale=scale)
    if ":" in spec and not Path(spec).exists():
        arch, args = parse_spec(spec)
        net = build_arch(arch, {**args, "scale": scale})
        return Restorer(net.eval().requires_grad_(False), name=spec, scale=scale, output_key="sr")
    return load_model(spec, scale=scale)


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass (flop_counter convention: multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def median_time(fn: Any, repeats: int, sync: Any = None, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
