"""Inference levers, one switch each, measured one by one against fp32 eager in the same run.

A *lever* is a named set of switches (``"bf16+channels_last+compile"``):

* ``channels_last``: weights and input in NHWC memory order (cuDNN / oneDNN prefer it for convs);
* ``bf16``: ``torch.autocast`` to bfloat16 (output cast back to fp32);
* ``compile``: ``torch.compile`` (inductor); its cost is reported as ``first_call_s``;
* ``cuda_graph``: the eager (or compiled) forward captured once into a CUDA graph for a fixed batch
  shape and replayed (CUDA only): no per-kernel launch cost from Python;
* ``ort`` / ``ort_int8``: ONNX Runtime on the CPU, fp32 or with int8 dynamic quantisation
  (:class:`facesr.restoration.engine.OrtRestorer`).

Every lever's output is compared with fp32 eager on the *same real benchmark faces* (mean and max
absolute difference in 1/255 units) and scored (PSNR against the HR faces, quantised to 8 bits as
``facesr eval`` does), so a lever that is fast but changes the picture shows it in the same row.
Why a runner object: a CUDA graph or an ORT session must be built once per batch shape and kept;
timing only the replays is what a serving loop does.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.errors import FacesrError
from facesr.pixels import round8, to_tensor
from facesr.speed.models import median_time

SWITCHES = ("channels_last", "bf16", "compile", "cuda_graph", "ort", "ort_int8")
CPU_LEVERS = ("fp32", "channels_last", "bf16", "compile", "ort", "ort_int8")
CUDA_LEVERS = (
    "fp32",
    "channels_last",
    "bf16",
    "compile",
    "cuda_graph",
    "bf16+channels_last",
    "bf16+channels_last+compile",
    "bf16+channels_last+cuda_graph",
    "bf16+channels_last+compile+cuda_graph",
)


@dataclass(frozen=True)
class Lever:
    """Which switches are on. ``fp32`` (none on) is the eager baseline every ratio refers to."""

    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    cuda_graph: bool = False
    ort: bool = False
    ort_int8: bool = False

    @property
    def name(self) -> str:
        on = [s for s in SWITCHES if getattr(self, s)]
        return "+".join(on) if on else "fp32"

    @property
    def is_baseline(self) -> bool:
        return self.name == "fp32"


def parse_lever(text: str) -> Lever:
    """``"bf16+channels_last"`` -> Lever; ``"fp32"`` / ``"eager"`` -> the baseline."""
    parts = [p.strip() for p in text.replace(",", "+").split("+") if p.strip()]
    on = {}
    for p in parts:
        if p in ("fp32", "eager"):
            continue
        if p not in SWITCHES:
            raise FacesrError(f"unknown speed lever {p!r}; use fp32 or {', '.join(SWITCHES)} joined by '+'")
        on[p] = True
    lever = Lever(**on)
    if (lever.ort or lever.ort_int8) and (lever.bf16 or lever.compile or lever.cuda_graph):
        raise FacesrError(f"lever {text!r}: ONNX Runtime levers cannot be combined with torch levers")
    return lever


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class Runner:
    """``runner(lr01) -> sr01`` (fp32, N x 3 x 128 x 128) with the lever's switches applied.

    ``first_call_s`` is the wall time of building and running the first batch (export, compile,
    graph capture): the price paid once per process and batch shape.
    """

    def __init__(self, restorer: torch.nn.Module, lever: Lever, device: torch.device, batch: int) -> None:
        self.lever, self.device, self.batch = lever, device, batch
        self.first_call_s = 0.0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_in: torch.Tensor | None = None
        self._static_out: torch.Tensor | None = None
        self._ort: Any = None
        if lever.cuda_graph and device.type != "cuda":
            raise FacesrError("the cuda_graph lever needs a CUDA device")
        if (lever.ort or lever.ort_int8) and device.type != "cpu":
            raise FacesrError("the ONNX Runtime levers run on the CPU only")
        lr_size = int(restorer.lr_size)  # the model's own input size (facesr.zoo.Restorer)
        self.lr_size = lr_size
        t0 = time.perf_counter()
        if lever.ort or lever.ort_int8:
            import tempfile

            from facesr.restoration.engine import OrtRestorer

            # a private cache folder, so 'first call' includes the export like a cold restore does
            self._ort_dir = tempfile.TemporaryDirectory(prefix="facesr-ort-")
            self._ort = OrtRestorer(
                restorer, Path(self._ort_dir.name), torch.get_num_threads(), int8=lever.ort_int8
            )
            self._ort(torch.rand(batch, 3, lr_size, lr_size))
            self.first_call_s = time.perf_counter() - t0
            return
        model = restorer.to(device).eval()
        if lever.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model: Callable[[torch.Tensor], torch.Tensor] = model
        if lever.compile:
            # a fresh cache per runner: every runner compiles a new model object, and past dynamo's
            # recompile limit it would silently fall back to eager and the row would lie
            torch._dynamo.reset()
            self.model = torch.compile(model, dynamic=False)
        x = torch.rand(batch, 3, lr_size, lr_size, device=device)
        if lever.cuda_graph:
            self._capture(x)
        else:
            self._eager(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.first_call_s = time.perf_counter() - t0

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        if self.lever.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), _autocast(self.device, self.lever.bf16):
            return self.model(x).float()

    def _capture(self, x: torch.Tensor) -> None:
        """Warm up on a side stream (as the CUDA-graph docs require), then capture one forward."""
        self._static_in = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager(self._static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_out = self._eager(self._static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._ort is not None:
            return self._ort(x)
        if self._graph is None:
            return self._eager(x.to(self.device))
        assert self._static_in is not None and self._static_out is not None
        outs = []
        for i in range(0, len(x), self.batch):  # a graph has one batch shape: pad the last chunk
            chunk = x[i : i + self.batch]
            n = len(chunk)
            self._static_in[:n].copy_(chunk)
            self._graph.replay()
            outs.append(self._static_out[:n].clone())
        return torch.cat(outs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runner(runner: Runner, x: torch.Tensor, repeats: int, warmup: int = 2) -> float:
    """Median seconds of one call on ``x`` after ``warmup`` untimed calls."""
    return median_time(lambda: runner(x), repeats, sync=lambda: _sync(runner.device), warmup=warmup)


# ----------------------------------------------------------------------------------------------
# Real faces for the quality columns
# ----------------------------------------------------------------------------------------------


@dataclass
class QualityFaces:
    """Masked LR model inputs and their HR targets (uint8, N x H x W x 3) from a frozen benchmark."""

    source: str
    lr: np.ndarray
    hr: np.ndarray


def load_quality_faces(scale: int, n: int, root: str | os.PathLike[str] | None = None) -> QualityFaces | None:
    """The first ``n`` faces of UTK-Mask x``scale``; None (quality columns left empty) when not built.

    ``root`` may also be a ``speed-pack`` folder holding ``utk-mask-x{scale}.npz`` (what
    ``scripts/gpu_speed.sh`` carries to a GPU machine, where the workspace does not travel).
    """
    from facesr.errors import DataError

    name = f"utk-mask-x{scale}"
    if root is not None and (Path(root) / f"{name}.npz").is_file():
        with np.load(Path(root) / f"{name}.npz") as z:
            return QualityFaces(
                f"{name} (first {min(n, len(z['lr']))}, speed pack)", z["lr"][:n], z["hr"][:n]
            )
    from facesr.data.benchmarks import load_benchmark

    try:
        b = load_benchmark(name, root)
    except DataError:
        return None
    return QualityFaces(f"{name} (first {min(n, len(b.lr))} faces)", b.lr[:n], b.hr[:n])


def psnr_u8(sr01: torch.Tensor, hr_u8: np.ndarray) -> float:
    """Mean PSNR (dB, RGB) of the 8-bit-quantised outputs against the HR faces (as ``facesr eval``)."""
    from facesr.eval.metrics import psnr_per_image

    sr = round8(sr01.detach()).cpu()
    return float(psnr_per_image(sr, to_tensor(hr_u8)).mean())


def run_all(runner: Runner, lr01: torch.Tensor) -> torch.Tensor:
    """Outputs for every face, in chunks of the runner's batch (on the CPU)."""
    outs = []
    for i in range(0, len(lr01), runner.batch):
        outs.append(runner(lr01[i : i + runner.batch].to(runner.device)).float().cpu())
    _sync(runner.device)
    return torch.cat(outs)


def memory_growth(runner: Runner, n_faces: int) -> dict[str, float]:
    """Memory after the first batch vs after ``n_faces`` faces: a leak shows as growth.

    CUDA: ``memory_allocated`` (what tensors hold); CPU: the resident set from /proc (ru_maxrss
    only ever grows, so it cannot show a leak that stopped).
    """
    x = torch.rand(runner.batch, 3, runner.lr_size, runner.lr_size, device=runner.device)
    steps = max(2, -(-n_faces // runner.batch))

    def current() -> float:
        if runner.device.type == "cuda":
            torch.cuda.synchronize(runner.device)
            return torch.cuda.memory_allocated(runner.device) / 2**20
        return _rss_mb()

    for _ in range(3):  # warm-up: allocator pools and caches reach their working size first
        runner(x)
    gc.collect()
    first = current()
    for _ in range(steps - 1):
        runner(x)
    gc.collect()
    last = current()
    return {
        "faces": float(steps * runner.batch),
        "first_mb": first,
        "last_mb": last,
        "growth_mb": last - first,
    }


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the high-water mark
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class LeverResult:
    """One row of the lever table (ratios are filled in against the fp32 eager row of the same run)."""

    model: str
    scale: int
    device: str
    lever: str
    batch: int
    faces_per_s: float
    ms_per_batch: float
    first_call_s: float
    speedup: float | None = None
    mean_abs_255: float | None = None  # vs fp32 eager, on the quality faces, in 1/255 units
    max_abs_255: float | None = None
    psnr: float | None = None
    psnr_delta: float | None = None
    peak_mb_per_face: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def measure_levers(
    restorer_factory: Callable[[], torch.nn.Module],
    *,
    model_name: str,
    scale: int,
    device: torch.device,
    levers: list[str],
    batch: int,
    repeats: int,
    faces: QualityFaces | None,
    interleave: bool | None = None,
) -> list[LeverResult]:
    """Every lever on the same input batch and the same quality faces; fp32 eager is the first row.

    A lever that fails (no compiler for ``torch.compile``, say) gets a row with ``error`` set
    rather than stopping the run: the table says what could not be measured and why.
    """
    parsed = [parse_lever(s) for s in levers]
    if not parsed or not parsed[0].is_baseline:
        parsed.insert(0, Lever())
    cands = [(lv.name, restorer_factory, lv) for lv in parsed]
    return measure_candidates(
        cands,
        model_name=model_name,
        scale=scale,
        device=device,
        batch=batch,
        repeats=repeats,
        faces=faces,
        interleave=interleave,
    )


def measure_candidates(
    cands: list[tuple[str, Callable[[], torch.nn.Module], Lever]],
    *,
    model_name: str,
    scale: int,
    device: torch.device,
    batch: int,
    repeats: int,
    faces: QualityFaces | None,
    interleave: bool | None = None,
) -> list[LeverResult]:
    """(label, model factory, lever) candidates timed on one input; ratios against the first.

    ``interleave`` (default: on the CPU) keeps every runner alive and times them in alternating
    rounds (A B C A B C ...), so a change in the machine's load hits every candidate alike and the
    ratios hold on a shared machine; on a GPU (exclusive) each is timed alone, which also isolates
    its peak memory.
    """
    interleave = device.type == "cpu" if interleave is None else interleave
    x: torch.Tensor | None = None  # one input for every candidate, sized by the first model built
    lr01 = to_tensor(faces.lr) if faces is not None else None
    rows: list[LeverResult] = []
    live: dict[int, Runner] = {}
    ref: torch.Tensor | None = None
    for i, (label, factory, lever) in enumerate(cands):
        torch.manual_seed(0)
        row = LeverResult(model_name, scale, device.type, label, batch, 0.0, 0.0, 0.0)
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            runner = Runner(factory(), lever, device, batch)
            row.first_call_s = runner.first_call_s
            if x is None:
                side = runner.lr_size
                x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
            if not interleave:
                t = time_runner(runner, x, repeats)
                row.ms_per_batch, row.faces_per_s = t * 1e3, batch / t
            if device.type == "cuda":
                row.peak_mb_per_face = (torch.cuda.max_memory_allocated(device) - before) / 2**20 / batch
            if lr01 is not None and faces is not None:
                out = run_all(runner, lr01)
                row.psnr = psnr_u8(out, faces.hr)
                if ref is None:
                    ref = out
                diff = (out - ref).abs() * 255.0
                row.mean_abs_255, row.max_abs_255 = float(diff.mean()), float(diff.max())
            if interleave:
                live[i] = runner
            del runner
        except Exception as exc:  # a lever that cannot run is reported, not fatal
            msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            row.error = f"{type(exc).__name__}: {msg}"
        rows.append(row)
        gc.collect()
    if live and x is not None:
        for r in live.values():
            time_runner(r, x, repeats=1, warmup=2)
        times: dict[int, list[float]] = {i: [] for i in live}
        for _ in range(repeats):
            for i, r in live.items():
                t0 = time.perf_counter()
                r(x)
                _sync(device)
                times[i].append(time.perf_counter() - t0)
        for i, ts in times.items():
            t = statistics.median(ts)
            rows[i].ms_per_batch, rows[i].faces_per_s = t * 1e3, batch / t
        live.clear()
    base = rows[0]
    for row in rows:
        if row.error is None and base.error is None and base.faces_per_s:
            row.speedup = row.faces_per_s / base.faces_per_s
            if row.psnr is not None and base.psnr is not None:
                row.psnr_delta = row.psnr - base.psnr
    return rows


def batch_sweep(
    restorer_factory: Callable[[], torch.nn.Module],
    *,
    lever: str,
    device: torch.device,
    batches: list[int],
    repeats: int,
) -> list[dict[str, Any]]:
    """Faces/s and peak memory per face of one lever at several batch sizes (largest batch pays most
    on a GPU until the SMs are full; on a CPU per-face cost barely moves)."""
    out = []
    for b in batches:
        row: dict[str, Any] = {"lever": lever, "batch": b}
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            runner = Runner(restorer_factory(), parse_lever(lever), device, b)
            side = runner.lr_size  # the model's own input size
            t = time_runner(runner, torch.rand(b, 3, side, side, device=device), repeats)
            row.update({"faces_per_s": b / t, "ms_per_batch": t * 1e3})
            if device.type == "cuda":
                row["peak_mb_per_face"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20 / b
            del runner
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).strip()[:160]}"
        out.append(row)
        gc.collect()
    return out


def render_levers(rows: list[LeverResult]) -> list[str]:
    """Markdown table lines for one model/scale/device group."""
    lines = [
        "| lever | batch | faces/s | x fp32 eager | first call s | mean abs vs fp32 (/255) | "
        "max abs (/255) | PSNR dB | PSNR change dB | peak MB/face |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    for r in rows:
        if r.error:
            lines.append(f"| {r.lever} | {r.batch} | not measured: {r.error} | | | | | | | |")
            continue
        lines.append(
            f"| {r.lever} | {r.batch} | {r.faces_per_s:,.1f} | {f(r.speedup, '.2f')} | {r.first_call_s:.2f} | "
            f"{f(r.mean_abs_255, '.3f')} | {f(r.max_abs_255, '.2f')} | {f(r.psnr, '.3f')} | "
            f"{f(r.psnr_delta, '+.3f')} | {f(r.peak_mb_per_face, '.2f')} |"
        )
    return lines
