"""Time whole-photo restoration: a 1920x1080 photo with 20 small real faces, bicubic vs lite JDSR.

Why a composed photo: no 1080p crowd photo with known small faces ships with the data, so one is
built at run time (never committed) from 20 genuine face crops of ``web_unmasked/`` (every 27th
file, sorted), each scaled so that the face is about 16-30 px across, on a smooth background.

The lite JDSR generator is *randomly initialised* unless ``--jdsr`` names trained weights: its
timing is the same either way, its output is not meaningful. CPU threads default to 2 (the
project's target machine); run with ``taskset -c 0,1`` as well on a bigger machine.

    python benchmarks/bench_restore.py --threads 2 --repeats 3
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


def compose(root: Path, n: int = 20, seed: int = 0) -> np.ndarray:
    """1920x1080 canvas with ``n`` real face crops scaled to 30-55 px boxes (faces ~16-30 px)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:1080, 0:1920]
    canvas = np.stack([90 + 60 * xx / 1920, 110 + 40 * yy / 1080, 120 + 30 * (xx + yy) / 3000], -1)
    canvas = (canvas + rng.normal(0, 3, canvas.shape)).clip(0, 255).astype(np.uint8)
    files = sorted((root / "web_unmasked").glob("*.jpg"))[::27][:n]
    cols, rows = 5, 4
    for i, f in enumerate(files):
        crop = Image.open(f).convert("RGB")
        side = int(rng.integers(30, 56))
        crop = crop.resize((side, round(side * crop.height / crop.width)), Image.Resampling.LANCZOS)
        cx = int((i % cols + 0.5) * 1920 / cols + rng.integers(-120, 120))
        cy = int((i // cols + 0.5) * 1080 / rows + rng.integers(-60, 60))
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from facesr.nets.jdsr import JDSRGenerator
    from facesr.restoration.api import restore
    from facesr.zoo import save_weights

    photo = compose(data_root(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        jdsr = {}
        for s in (4, 8):
            if args.jdsr:
                jdsr[s] = args.jdsr
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
        for label, model in (("bicubic", "bicubic"), ("jdsr-lite-x4", jdsr[4]), ("jdsr-lite-x8", jdsr[8])):
            restore(photo, model=model, device=args.device)  # warm-up: loads the model
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = restore(photo, model=model, device=args.device)
                runs.append((time.perf_counter() - t, res.timings))
            total = statistics.median(r[0] for r in runs)
            det = statistics.median(r[1].get("detect", 0.0) for r in runs)
            rest = statistics.median(r[1].get("restore", 0.0) for r in runs)
            results[label] = {
                "total_s": round(total, 3),
                "detect_s": round(det, 3),
                "model_s": round(rest, 3),
                "faces_found": len(res.faces),
                "faces_restored": len(res.restored),
            }
    base = results["bicubic"]["total_s"]
    print(
        json.dumps(
            {
                "photo": "1920x1080, 20 composed real faces (web_unmasked)",
                "device": args.device,
                "threads": args.threads,
                "cpu": platform.processor() or platform.machine(),
                "cpus_visible": os.cpu_count(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "torch": torch.__version__,
                "jdsr_weights": args.jdsr or "random init (timing only)",
                "results": results,
            },
            indent=2,
        )
    )
    for label, r in results.items():
        print(
            f"{label:<14} total {r['total_s']:.2f} s (detect {r['detect_s']:.2f} s, model {r['model_s']:.2f} s), "
            f"{r['faces_restored']}/{r['faces_found']} faces restored, {r['total_s'] / base:.2f}x bicubic",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()
