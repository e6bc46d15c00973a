"""Time whole-photo restoration: a 1920x1080 photo with 20 small real faces, bicubic vs lite JDSR.

Why a composed photo: no 1080p crowd photo with known small faces ships with the data, so one is
built at run time (never committed) from 20 genuine face crops of ``web_unmasked/`` (every 27th
file, sorted), each scaled so that the face is about 16-30 px across, on a smooth background.

The lite JDSR generator is the shipped ``jdsr-lite-x4``/``-x8`` when installed, else *randomly
initialised* unless ``--jdsr`` names trained weights: its timing is the same either way. Each JDSR
model runs once per ``--engines`` entry (``torch``: PyTorch eager; ``ort``: ONNX Runtime, what
``facesr.restore(engine="auto")`` picks on the CPU), interleaved in the same run, so the ratios
between engines hold even on a loaded machine. CPU threads default to 2 (the
project's target machine); run with ``taskset -c 0,1`` as well on a bigger machine.

    python benchmarks/bench_restore.py --threads 2 --repeats 3 --engines torch,ort
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facesr.paths import data_root

#: The photos of issue 16's speed targets: (width, height, faces, columns, rows).
PHOTOS = {"1080p": (1920, 1080, 20, 5, 4), "3mp": (2048, 1536, 30, 6, 5)}


def compose(root: Path, n: int = 20, seed: int = 0, size: str = "1080p") -> np.ndarray:
    """A canvas with ``n`` real face crops scaled to 30-55 px boxes (faces ~16-30 px) on a grid.

    ``size``: "1080p" (1920x1080, 20 faces: the default photo) or "3mp" (2048x1536, 30 faces: the
    issue's group photo).
    """
    width, height, n_faces, cols, rows = PHOTOS[size]
    n = n if size == "1080p" else n_faces
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    canvas = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 120 + 30 * (xx + yy) / 3000], -1)
    canvas = (canvas + rng.normal(0, 3, canvas.shape)).clip(0, 255).astype(np.uint8)
    files = sorted((root / "web_unmasked").glob("*.jpg"))[:: 27 if n <= 20 else 17][:n]
    for i, f in enumerate(files):
        crop = Image.open(f).convert("RGB")
        side = int(rng.integers(30, 56))
        crop = crop.resize((side, round(side * crop.height / crop.width)), Image.Resampling.LANCZOS)
        cx = int((i % cols + 0.5) * width / cols + rng.integers(-120, 120) * width / 1920)
        cy = int((i // cols + 0.5) * height / rows + rng.integers(-60, 60) * height / 1080)
        y0, x0 = cy - crop.height // 2, cx - crop.width // 2
        canvas[y0 : y0 + crop.height, x0 : x0 + crop.width] = np.asarray(crop)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jdsr", default=None, help="trained weights (default: random-init lite JDSR)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--engines", default="torch,ort", help="comma-separated: torch, ort")
    parser.add_argument("--json-out", default=None, help="also write the JSON summary here")
    parser.add_argument(
        "--upscales",
        default="1",
        help="comma-separated --upscale values (1, 2, 4, 8); each config runs at each",
    )
    parser.add_argument(
        "--auto",
        action="store_true",
        help="also time model=auto (facesr.restoration.api.DEFAULT_MODELS per face)",
    )
    parser.add_argument("--photo", default="1080p", choices=sorted(PHOTOS), help="the composed photo")
    parser.add_argument(
        "--only-auto",
        action="store_true",
        help="time model=auto only (and bicubic as the ratio base): the issue-16 targets",
    )
    parser.add_argument(
        "--detect-baseline",
        action="store_true",
        help="also time model=auto with the detector settings before the speed work "
        "(DetectOptions(min_size=10, factor=0.709)), interleaved: the ratio to the shipped settings",
    )
    parser.add_argument(
        "--detect-settings",
        default="",
        help="extra model=auto configs with other detector settings, name=min_size:factor,... "
        "(e.g. min12=12:0.709), interleaved with the others",
    )
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's malloc thresholds alone (facesr restore raises them: facesr.speed.allocator)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from facesr.speed.allocator import keep_freed_memory

    allocator = "glibc defaults" if args.default_allocator or not keep_freed_memory() else "keep_freed_memory"

    from facesr.nets.jdsr import JDSRGenerator
    from facesr.restoration.api import model_installed, restore
    from facesr.zoo import save_weights

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    upscales = [int(u) for u in args.upscales.split(",") if u.strip()]

    photo = compose(data_root(args.data), size=args.photo)
    with tempfile.TemporaryDirectory() as tmp:
        jdsr = {}
        for s in (4, 8):
            if args.jdsr:
                jdsr[s] = args.jdsr
                continue
            if model_installed(f"jdsr-lite-x{s}"):
                jdsr[s] = f"jdsr-lite-x{s}"
                continue
            torch.manual_seed(0)
            path = Path(tmp) / f"jdsr-lite-random-x{s}.safetensors"
            save_weights(
                JDSRGenerator("lite", scale=s),
                path,
                arch="jdsr",
                args={"size": "lite", "scale": s},
                scale=s,
                output_key="sr",
            )
            jdsr[s] = str(path)
        restore(photo, model="bicubic", device=args.device)  # warm-up: loads the detector
        results = {}
        from facesr.restoration.detect import DetectOptions

        ref_detect = DetectOptions(min_size=10.0, factor=0.709)
        base_configs = [("bicubic", "bicubic", "torch", None)]
        if not args.only_auto:
            base_configs += [(f"jdsr-lite-x{s}/{e}", jdsr[s], e, None) for s in (4, 8) for e in engines]
        if args.auto or args.only_auto:
            base_configs += [(f"auto/{e}", None, e, None) for e in engines]
        if args.detect_baseline:
            base_configs += [(f"auto/{e}/detect-baseline", None, e, ref_detect) for e in engines]
        for item in filter(None, args.detect_settings.split(",")):
            name, spec = item.split("=")
            ms, fac = (float(v) for v in spec.split(":"))
            base_configs += [
                (f"auto/{e}/{name}", None, e, DetectOptions(min_size=ms, factor=fac)) for e in engines
            ]
        configs = [
            (label if u == 1 else f"{label}@x{u}", model, engine, u, dopt)
            for u in upscales
            for label, model, engine, dopt in base_configs
        ]
        for _label, model, engine, u, dopt in configs:  # warm-up
            restore(photo, model=model, device=args.device, engine=engine, upscale=u, detect=dopt)
        runs_by: dict[str, list] = {c[0]: [] for c in configs}
        last = {}
        for _ in range(args.repeats):  # interleaved rounds: load changes hit every config alike
            for label, model, engine, u, dopt in configs:
                t = time.perf_counter()
                res = restore(photo, model=model, device=args.device, engine=engine, upscale=u, detect=dopt)
                runs_by[label].append((time.perf_counter() - t, res.timings))
                last[label] = res
        results = {}
        for label, _model, engine, u, _dopt in configs:
            runs, res = runs_by[label], last[label]
            total = statistics.median(r[0] for r in runs)
            det = statistics.median(r[1].get("detect", 0.0) for r in runs)
            rest = statistics.median(r[1].get("restore", 0.0) for r in runs)
            paste = statistics.median(r[1].get("paste", 0.0) for r in runs)
            bg = statistics.median(r[1].get("background", 0.0) for r in runs)
            mask = statistics.median(r[1].get("mask", 0.0) for r in runs)
            results[label] = {
                "engine": engine,
                "mask_s": round(mask, 3),
                "upscale": u,
                "total_s": round(total, 3),
                "detect_s": round(det, 3),
                "model_s": round(rest, 3),
                "paste_s": round(paste, 3),
                "background_s": round(bg, 3),
                "faces_found": len(res.faces),
                "faces_restored": len(res.restored),
            }
    base = results[configs[0][0]]["total_s"]
    summary = json.dumps(
        {
            "command": "python " + " ".join(sys.argv),
            "photo": "{}x{}, {} composed real faces (web_unmasked)".format(*PHOTOS[args.photo][:3]),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "device": args.device,
            "threads": args.threads,
            "allocator": allocator,
            "cpu": platform.processor() or platform.machine(),
            "cpus_visible": os.cpu_count(),
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
            "jdsr_weights": {
                s: w if not w.startswith("/") else "random init (timing only)" for s, w in jdsr.items()
            },
            "results": results,
        },
        indent=2,
    )
    print(summary)
    if args.json_out:
        from facesr.io import atomic_write_text

        atomic_write_text(Path(args.json_out), summary + "\n")
    for label, r in results.items():
        print(
            f"{label:<18} total {r['total_s']:.2f} s (detect {r['detect_s']:.2f} s, model {r['model_s']:.2f} s, "
            f"paste {r['paste_s']:.2f} s, background {r['background_s']:.2f} s), "
            f"{r['faces_restored']}/{r['faces_found']} faces restored, {r['total_s'] / base:.2f}x {configs[0][0]}",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()
