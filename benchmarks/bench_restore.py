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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from facesr.nets.jdsr import JDSRGenerator
    from facesr.restoration.api import model_installed, restore
    from facesr.zoo import save_weights

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    upscales = [int(u) for u in args.upscales.split(",") if u.strip()]

    photo = compose(data_root(args.data))
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
        base_configs = [("bicubic", "bicubic", "torch")]
        base_configs += [(f"jdsr-lite-x{s}/{e}", jdsr[s], e) for s in (4, 8) for e in engines]
        base_configs += [(f"auto/{e}", None, e) for e in engines] if args.auto else []
        configs = [
            (label if u == 1 else f"{label}@x{u}", model, engine, u)
            for u in upscales
            for label, model, engine in base_configs
        ]
        for _label, model, engine, u in configs:
            restore(photo, model=model, device=args.device, engine=engine, upscale=u)  # warm-up
        runs_by: dict[str, list] = {c[0]: [] for c in configs}
        last = {}
        for _ in range(args.repeats):  # interleaved rounds: load changes hit every config alike
            for label, model, engine, u in configs:
                t = time.perf_counter()
                res = restore(photo, model=model, device=args.device, engine=engine, upscale=u)
                runs_by[label].append((time.perf_counter() - t, res.timings))
                last[label] = res
        results = {}
        for label, _model, engine, u in configs:
            runs, res = runs_by[label], last[label]
            total = statistics.median(r[0] for r in runs)
            det = statistics.median(r[1].get("detect", 0.0) for r in runs)
            rest = statistics.median(r[1].get("restore", 0.0) for r in runs)
            paste = statistics.median(r[1].get("paste", 0.0) for r in runs)
            bg = statistics.median(r[1].get("background", 0.0) for r in runs)
            results[label] = {
                "engine": engine,
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
            "photo": "1920x1080, 20 composed real faces (web_unmasked)",
            "device": args.device,
            "threads": args.threads,
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
