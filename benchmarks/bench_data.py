#!/usr/bin/env python
"""Data-pipeline throughput: `facesr prepare` (faces/s on N worker processes) and masking+down-sampling.

Usage (from the repository root)::

    python benchmarks/bench_data.py [--data ../shared/data] [--n-prepare 256] [--workers 2] [--batch 64]

* prepare: detect (dlib HOG + 68 points) + align at 128 and 64 for the first ``--n-prepare``
  UTKFace files, in ``--workers`` processes, into a temporary folder (nothing under workspace/).
* masking + down-sampling: :class:`facesr.data.datasets.MaskedFaceBatcher` batches (MaskTheFace
  mask, x4 and x8 bicubic, heatmaps and parsing maps) from those prepared faces, on CPU
  (with ``--threads`` torch threads) and on CUDA when available; reports faces/s for the
  degradation alone (mask + x4 + x8) and for the whole batch (with the prior maps).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the prepare workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_prepare(data: Path, n: int, workers: int, out: Path) -> tuple[float, float]:
    """(faces/s wall clock, faces per CPU-second)."""
    from facesr.data.prepare import prepare

    cpu0 = _cpu_seconds()

    src = out / "src"
    src.mkdir()
    for p in sorted((data / "utkface").iterdir())[:n]:
        (src / p.name).symlink_to(p.resolve())
    rep = prepare(src, out / "prepared" / "utkface", workers=workers, n_test=8, progress=False)
    return rep["files_per_second"], n / (_cpu_seconds() - cpu0)


def bench_masking(
    prepared: Path, data: Path, device: str, batch: int, reps: int
) -> tuple[float, float, float]:
    """(mask+downsample faces/s, full batch faces/s, mask+downsample faces per CPU-second)."""
    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.resample import downsample

    b = MaskedFaceBatcher(prepared, "all", 4, device, batch, 0, data=data)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    idx = torch.arange(batch) % len(b)
    faces = b.faces[idx.to(b.device)].permute(0, 3, 1, 2).float() / 255
    lms = b.landmarks[idx.to(b.device)]
    for _ in range(2):  # warm-up
        b.masks(faces, lms, b.generator)
        b.next_batch()
    sync()
    t = time.perf_counter()
    cpu0 = _cpu_seconds()
    for _ in range(reps):
        masked, _ = b.masks(faces, lms, b.generator)
        downsample(masked, 4)
        downsample(masked, 8)
        downsample(faces, 4)
    sync()
    degrade = reps * batch / (time.perf_counter() - t)
    degrade_cpu = reps * batch / (_cpu_seconds() - cpu0)
    t = time.perf_counter()
    for _ in range(reps):
        b.next_batch()
    sync()
    full = reps * batch / (time.perf_counter() - t)
    return degrade, full, degrade_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--n-prepare", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="facesr-bench-data-"))
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
        fps, fps_cpu = bench_prepare(data, args.n_prepare, args.workers, tmp)
        print(
            f"prepare: {fps:.1f} faces/s wall ({args.workers} worker processes, {args.n_prepare} UTKFace files); "
            f"{fps_cpu:.1f} faces per CPU-second"
        )
        torch.set_num_threads(args.threads)
        prepared = tmp / "prepared" / "utkface"
        cpu = bench_masking(prepared, data, "cpu", args.batch, args.reps)
        print(
            f"mask+downsample (x4,x8) cpu[{args.threads} threads]: {cpu[0]:.0f} faces/s; "
            f"full batch incl. heatmaps+parsing: {cpu[1]:.0f} faces/s (batch {args.batch}); "
            f"mask+downsample {cpu[2]:.0f} faces per CPU-second"
        )
        print(f"ratio mask+downsample / prepare (cpu, per CPU-second): {cpu[2] / fps_cpu:.1f}x")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if torch.cuda.is_available():
            gpu = bench_masking(prepared, data, "cuda", args.batch, args.reps * 4)
            print(
                f"mask+downsample (x4,x8) cuda[{torch.cuda.get_device_name()}]: {gpu[0]:.0f} faces/s; "
                f"full batch: {gpu[1]:.0f} faces/s (batch {args.batch})"
            )
            print(
                f"ratio cuda / cpu: mask+downsample {gpu[0] / cpu[0]:.1f}x, full batch {gpu[1] / cpu[1]:.1f}x"
            )
        else:
            print("cuda: not available")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
