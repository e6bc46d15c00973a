"""Images/s of the FULL JDSR training step per lever, built from the loop's own pieces.

One measured step is exactly what :func:`facesr.train.loop.train` does per step minus file I/O:
``batcher.next_batch()`` (GPU-side masking and down-sampling when the data lives there) ->
``recipe.step`` (generator forward, every loss term of the config including the dlib
face-recognition ResNet (face-api.js port) terms, one WGAN-GP critic update with its double
backward, the adversarial term, the Updaters' clip + finite check + Adam) -> EMA update -> Meter.
The step index is past the recipe's warm-up, so the critic is always on.

Levers (joined with ``+``), each a config override, so what is measured is what ``facesr train``
runs with the same override:

=================  =====================================  =========================================
lever              override                               what it changes
=================  =====================================  =========================================
``fp32``           run.precision=fp32, optim.impl=foreach  the plain eager baseline (CPU default)
``bf16``           run.precision=bf16                     autocast (CUDA; CPU with native bf16)
``channels_last``  run.channels_last=true                 NHWC generator and critic
``fused``          optim.impl=fused                       one fused Adam kernel per network
``sync_log``       run.sync=log                           no ``.item()`` per step (fused Adam skip)
``compile``        run.compile=true                       torch.compile the generator
``data_cpu``       data.device=cpu                        the counter-lever: masks made on the CPU
=================  =====================================  =========================================

On CUDA each row also gets the GPU busy time (sum of kernel times in a ``torch.profiler`` window)
over the wall time of the same steps, the host<->device synchronisations per step seen by the
profiler, the data pipeline's share (``next_batch`` timed alone), and the peak memory per image.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.errors import FacesrError

LEVER_OVERRIDES: dict[str, list[str]] = {
    "fp32": ["run.precision=fp32", "optim.impl=foreach"],
    "bf16": ["run.precision=bf16"],
    "channels_last": ["run.channels_last=true"],
    "fused": ["optim.impl=fused"],
    "sync_log": ["run.sync=log", "optim.impl=fused"],
    "compile": ["run.compile=true"],
    "data_cpu": ["data.device=cpu"],
}
CPU_TRAIN_LEVERS = ("fp32", "channels_last", "fused", "sync_log", "fused+sync_log+channels_last")
CUDA_TRAIN_LEVERS = (
    "fp32",
    "bf16",
    "bf16+data_cpu",
    "bf16+channels_last",
    "bf16+fused",
    "bf16+fused+sync_log",
    "bf16+compile",
    "bf16+channels_last+fused+sync_log",
    "bf16+channels_last+fused+sync_log+compile",
)
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def lever_overrides(lever: str) -> list[str]:
    """Config overrides for ``"bf16+fused"``; the baseline ``fp32`` is applied first."""
    out = list(LEVER_OVERRIDES["fp32"])
    for part in [p for p in lever.split("+") if p and p != "fp32"]:
        if part not in LEVER_OVERRIDES:
            raise FacesrError(
                f"unknown training lever {part!r}; use {', '.join(LEVER_OVERRIDES)} joined by '+'"
            )
        out += LEVER_OVERRIDES[part]
    return out


@dataclass
class TrainLeverResult:
    lever: str
    batch: int
    device: str
    images_per_s: float = 0.0
    step_ms: float = 0.0
    first_steps_s: float = 0.0  # the warm-up steps (compile, autotuning, allocator growth)
    speedup: float | None = None
    data_ms: float | None = None  # next_batch() alone
    gpu_busy_frac: float | None = None  # kernel time / wall time over profiled steps
    syncs_per_step: float | None = None
    peak_mb_per_image: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tiled_prepared(source: str | Path, n: int) -> Any:
    """A PreparedSet of ``n`` training faces (the source's train faces repeated to ``n``).

    Why: on a GPU machine only a small pack of real faces travels (docs/speed.md); speed depends
    on the batch, not on how many distinct faces the set holds, so the pack is tiled.
    """
    from facesr.data.prepared import PreparedSet

    src = PreparedSet.load(source)
    rows = src.indices("train")
    if len(rows) == 0:
        raise FacesrError(f"{source}: no training faces")
    pick = np.resize(rows, n)
    return PreparedSet(
        root=Path(source),
        faces128=np.ascontiguousarray(src.faces128[pick]),
        faces64=np.ascontiguousarray(src.faces64[pick]),
        landmarks128=np.ascontiguousarray(src.landmarks128[pick]),
        split=np.zeros(n, np.uint8),
        report=src.report,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_train_lever(
    config: str | Path,
    lever: str,
    *,
    batch: int,
    steps: int,
    warmup: int,
    prepared: Any,
    data_root: str | Path | None,
    extra_overrides: list[str] | None = None,
    profile: bool = True,
) -> TrainLeverResult:
    """Build the run's pieces with ``lever``'s overrides and time ``steps`` full training steps."""
    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.train.config import load_train_config
    from facesr.train.loop import EMA, Context, Meter, Updater, make_optimizer, resolve_precision
    from facesr.train.recipes import build_recipe

    overrides = [*lever_overrides(lever), f"data.batch_size={batch}", *(extra_overrides or [])]
    cfg = load_train_config(config, overrides)
    if cfg.run.compile:
        torch._dynamo.reset()  # each lever compiles a new generator: stay under dynamo's recompile limit
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.run.device != "cpu" else "cpu")
    res = TrainLeverResult(lever=lever, batch=batch, device=device.type)
    precision = resolve_precision(cfg.run.precision, device)
    torch.manual_seed(cfg.run.seed)
    ctx = Context(device=device, precision=precision, generator=torch.Generator().manual_seed(1))
    data_device = device if cfg.data.device == "auto" else torch.device(cfg.data.device)
    batcher = MaskedFaceBatcher(prepared, "train", cfg.data.scale, data_device, batch, 0, data=data_root)

    def fetch() -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batcher.next_batch().items()}

    ctx.fetch = fetch
    recipe = build_recipe(cfg, ctx)
    updaters = {}
    for name, params in recipe.trainable().items():
        lr, betas = (cfg.optim.d_lr, cfg.optim.d_betas) if name == "D" else (cfg.optim.lr, cfg.optim.betas)
        impl = "fused" if cfg.run.sync == "log" else cfg.optim.impl
        opt = make_optimizer(params, lr, betas, cfg.optim.weight_decay, impl, device)
        updaters[name] = Updater(name, params, opt, cfg.optim.grad_clip, None)
        updaters[name].deferred = cfg.run.sync == "log"
    ema = EMA(recipe.generator, cfg.ema.decay, 0)
    recipe.bind()
    meter = Meter()
    first = max(cfg.adv_start, 1)  # past the warm-up: the critic and every loss term are on

    def one(i: int) -> None:
        batch_ = fetch()
        logs = recipe.step(batch_, first + i, updaters)
        ema.update(recipe.generator, first + i)
        for name, up in updaters.items():
            logs[f"grad_norm/{name}"] = up.last_norm
        meter.add(logs, batch)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        one(i)
    _sync(device)
    res.first_steps_s = time.perf_counter() - t0
    meter.flush()
    t0 = time.perf_counter()
    for i in range(steps):
        one(warmup + i)
    meter.flush()  # the log-time sync the loop does every run.log_every steps
    _sync(device)
    wall = time.perf_counter() - t0
    res.step_ms = wall / steps * 1e3
    res.images_per_s = batch * steps / wall
    if device.type == "cuda":
        res.peak_mb_per_image = torch.cuda.max_memory_allocated(device) / 2**20 / batch
    # the data pipeline alone (what the GPU waits for if it is the bottleneck)
    times = []
    for _ in range(max(3, min(steps, 10))):
        _sync(device)
        t = time.perf_counter()
        fetch()
        _sync(device)
        times.append(time.perf_counter() - t)
    res.data_ms = statistics.median(times) * 1e3
    if profile and device.type == "cuda":
        res.gpu_busy_frac, res.syncs_per_step = _gpu_busy(one, warmup + steps, min(steps, 10), device)
    return res  # the networks are freed with this frame (bench_train collects between levers)


def _gpu_busy(one: Any, start: int, n: int, device: torch.device) -> tuple[float, float]:
    """Kernel time / wall time, and synchronisations per step, over ``n`` profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    _sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for i in range(n):
            one(start + i)
        _sync(device)
        wall = time.perf_counter() - t0
    # the profiler table's "Self CUDA time total": kernels and copies on the GPU (streams may overlap)
    averages = prof.key_averages()
    busy_us = sum(e.self_device_time_total for e in averages)
    syncs = sum(e.count for e in averages if e.key in SYNC_EVENTS)
    return min(1.0, busy_us / 1e6 / wall), syncs / n


def bench_train(
    config: str | Path,
    levers: list[str],
    *,
    batch: int,
    steps: int,
    warmup: int,
    prepared: Any,
    data_root: str | Path | None = None,
    extra_overrides: list[str] | None = None,
) -> list[TrainLeverResult]:
    """Every lever in turn (same config, batch, faces); ratios against the first row."""
    rows: list[TrainLeverResult] = []
    for lever in levers:
        try:
            row = measure_train_lever(
                config,
                lever,
                batch=batch,
                steps=steps,
                warmup=warmup,
                prepared=prepared,
                data_root=data_root,
                extra_overrides=extra_overrides,
            )
        except Exception as exc:  # a lever that cannot run here is a row that says why
            msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            row = TrainLeverResult(lever=lever, batch=batch, device="?", error=f"{type(exc).__name__}: {msg}")
        gc.collect()
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rows.append(row)
    base = rows[0] if rows and rows[0].error is None else None
    for r in rows:
        if base is not None and r.error is None:
            r.speedup = r.images_per_s / base.images_per_s
    return rows


def rebase(rows: list[TrainLeverResult]) -> list[TrainLeverResult]:
    """Speed-ups against the first row of ``rows`` (a batch sweep collected from several runs)."""
    base = next((r for r in rows if r.error is None), None)
    for r in rows:
        r.speedup = r.images_per_s / base.images_per_s if base is not None and r.error is None else None
    return rows


def render_train(rows: list[TrainLeverResult]) -> list[str]:
    """Markdown table lines."""

    def f(v: float | None, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    lines = [
        "| lever | batch | images/s | x first row | step ms | data ms (next_batch alone) | "
        "GPU busy / step time | syncs/step | warm-up s | peak MB/image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.lever} | {r.batch} | not measured: {r.error} | | | | | | | |")
            continue
        lines.append(
            f"| {r.lever} | {r.batch} | {r.images_per_s:,.1f} | {f(r.speedup, '.2f')} | {r.step_ms:.1f} | "
            f"{f(r.data_ms, '.1f')} | {f(r.gpu_busy_frac, '.0%')} | {f(r.syncs_per_step, '.1f')} | "
            f"{r.first_steps_s:.1f} | {f(r.peak_mb_per_image, '.1f')} |"
        )
    return lines


#: A very narrow generator and critic (tests: every code path, seconds on a CPU).
TINY = [
    "model.overrides={est_width: 4, est_blocks: 1, est_reduction: 2, unet_widths: [4, 8, 8], "
    "unet_blocks: [1, 1, 1, 1, 1], trunk: 8, prior_width: 8, coarse_blocks: 1, encoder_blocks: 1, "
    "prior_blocks: 1, hourglass_depth: 2, decoder_blocks: 1, reduction: 2}",
    "model.critic={width: 4}",
]


def train_bench(
    config: str | Path,
    levers: list[str] | None = None,
    *,
    batch: int = 16,
    steps: int = 10,
    warmup: int = 3,
    prepared: str | Path | None = None,
    faces: int = 2048,
    data_root: str | Path | None = None,
    tiny: bool = False,
    overrides: list[str] | None = None,
    sweep_lever: str | None = None,
    sweep_batches: list[int] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """The training-lever table as a JSON-able document: every lever, then an optional batch sweep.

    ``levers`` defaults to the device's list; ``prepared`` to ``workspace/prepared/utkface``, tiled
    to ``faces``; ``tiny`` swaps in :data:`TINY` nets (code paths, not model cost). Used by
    ``facesr bench --train-config``, ``benchmarks/bench_train.py`` and ``facesr gpu speed``.
    """
    import os
    import platform

    cuda = torch.cuda.is_available()
    levers = list(levers or (CUDA_TRAIN_LEVERS if cuda else CPU_TRAIN_LEVERS))
    if prepared is None:
        from facesr.paths import prepared_dir

        prepared = prepared_dir("utkface")
    extra = (TINY if tiny else []) + list(overrides or [])
    common = {"steps": steps, "warmup": warmup, "data_root": data_root, "extra_overrides": extra}
    rows = bench_train(
        config, levers, batch=batch, prepared=tiled_prepared(prepared, max(faces, batch)), **common
    )
    sweep: list[TrainLeverResult] = []
    for b in (sweep_batches or []) if sweep_lever else []:
        prep = tiled_prepared(prepared, max(faces, b))
        sweep += bench_train(config, [str(sweep_lever)], batch=b, prepared=prep, **common)
    rebase(sweep)
    return {
        "command": command,
        "config": str(config),
        "tiny": tiny,
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores visible)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "rows": [r.to_json() for r in rows],
        "sweep": [r.to_json() for r in sweep],
    }
