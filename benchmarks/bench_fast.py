"""jdsr-fast speed, in one run: images/s of the full training step per candidate, and ms per face of the
public API (``restore(face, aligned=True)``), each as a ratio to the paper-architecture ``lite`` baseline
measured in the same run (machines are noisy; the ratios are what this script claims).

    python benchmarks/bench_fast.py --threads 2 --json results/speed/fast.json

Training rows use :func:`facesr.speed.training.measure_train_lever` (the loop's own recipe, losses,
critic update and Updaters; the batcher makes masked clean-bicubic batches, so the real-world degradation,
about 5 % of a step, is not in these numbers). Inference rows time ``facesr.restore`` on an aligned
template face with the zoo model (PyTorch engine and, when installed, ONNX Runtime).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

CANDIDATES = [
    # (label, config, overrides)
    ("lite x4 (paper arch), CPU objective", "configs/jdsr_lite_x4_cpu.yaml", []),
    (
        "jdsr-fast x4, pixel + noise",
        "configs/jdsr_fast_x4.yaml",
        ["loss.sr_perceptual=0", "loss.sr_identity=0", "recipe.adversarial=false"],
    ),
    ("jdsr-fast x4, + perceptual + identity (shipped objective)", "configs/jdsr_fast_x4.yaml", []),
    (
        "jdsr-fast x4, + adversarial (critic width 16)",
        "configs/jdsr_fast_x4.yaml",
        ["recipe.adversarial=true", "recipe.adv_start_step=0"],
    ),
]


def train_rows(prepared: object, steps: int, warmup: int, batch: int) -> list[dict[str, object]]:
    from facesr.speed.training import measure_train_lever
    from facesr.train.loop import cpu_bf16_native

    levers = ["fp32", "channels_last"]
    if cpu_bf16_native():  # bf16 autocast is only a lever where the CPU computes bf16 natively
        levers += ["bf16", "bf16+channels_last"]
    rows = []
    for label, config, extra in CANDIDATES:
        for lever in levers:
            res = measure_train_lever(
                config,
                lever,
                batch=batch,
                steps=steps,
                warmup=warmup,
                prepared=prepared,
                data_root=None,
                # the full joint step: a config's denoiser-only warm-up (recipe.warmup_steps, 500 in
                # jdsr_fast_x4 since session 5, 150 in the lite CPU config) has no SR loss, so timing
                # its first steps would time the warm-up, not the training step
                extra_overrides=["run.device=cpu", "recipe.warmup_steps=0", *extra],
                profile=False,
            )
            rows.append({"candidate": label, "lever": lever, "images_per_s": round(res.images_per_s, 2)})
            print(f"train  {label:58s} {lever:14s} {res.images_per_s:6.2f} img/s", flush=True)
    base = rows[0]["images_per_s"]
    for r in rows:
        r["vs_lite"] = round(float(r["images_per_s"]) / float(base), 2)
    return rows


def infer_rows(models: list[str], repeats: int) -> list[dict[str, object]]:
    from facesr import restore
    from facesr.data.benchmarks import load_benchmark
    from facesr.restoration.api import model_installed

    # a template-aligned face at the x4 model's input size: what `restore(face, aligned=True)` gets from a
    # caller who aligned it (no framing check at model-input size; the model is what is timed)
    face = np.asarray(load_benchmark("utk-mask-x4", scale=4).lr_clean[0])
    rows = []
    for engine in ("torch", "ort"):
        for name in models:
            if not model_installed(name):
                continue
            try:
                restore(face, model=name, aligned=True, engine=engine)  # load + warm up
            except Exception as exc:
                print(f"infer  {name} {engine}: skipped ({exc})")
                continue
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                restore(face, model=name, aligned=True, engine=engine)
                times.append(time.perf_counter() - t)
            ms = float(np.median(times) * 1e3)
            rows.append({"model": name, "engine": engine, "ms_per_face": round(ms, 2)})
            print(f"infer  {name:16s} {engine:6s} {ms:8.2f} ms/face", flush=True)
    for engine in ("torch", "ort"):
        base = next((r for r in rows if r["engine"] == engine and r["model"] == models[0]), None)
        for r in rows:
            if base is not None and r["engine"] == engine:
                r["speedup_vs_" + models[0]] = round(float(base["ms_per_face"]) / float(r["ms_per_face"]), 2)
    return rows


def compute_floor(threads: int) -> dict[str, object]:
    """Why the 40 images/s target is out of reach: GFLOP per training image against this CPU's matmul peak.

    Counts the forward + backward FLOPs of the generator (``torch.utils.flop_counter``) and of the face-id
    pass that the perceptual and identity terms add, then times a large fp32 matmul with the same threads:
    images/s can be at most peak GFLOPS / GFLOP per image, and convolutions reach a fraction of the peak.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from facesr.nets.face_id import load_face_id
    from facesr.zoo import build_arch

    def gflop(fn) -> float:  # type: ignore[no-untyped-def]
        with FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops() / 16 / 1e9

    def gen_step() -> None:
        out = net(torch.rand(16, 3, 32, 32))
        (out["sr"].mean() + out["denoised"].mean()).backward()

    def face_id_step() -> None:
        x = torch.rand(16, 3, 128, 128, requires_grad=True)
        fid.embed_and_features(x)[0].sum().backward()
        with torch.no_grad():
            fid.embed_and_features(torch.rand(16, 3, 128, 128))

    net = build_arch("jdsr_fast", {"size": "fast", "scale": 4, "unet_up": "bilinear"})
    fid = load_face_id()
    g, f = gflop(gen_step), gflop(face_id_step)
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    peak = 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9
    row = {
        "threads": threads,
        "generator_gflop_per_image": round(g, 2),
        "face_id_gflop_per_image": round(f, 2),
        "matmul_peak_gflops": round(peak, 1),
        "ceiling_pixel_images_per_s": round(peak / g, 1),
        "ceiling_shipped_images_per_s": round(peak / (g + f), 1),
    }
    print(
        f"floor  generator {g:.2f} + face-id {f:.2f} GFLOP/image; matmul peak {peak:.0f} GFLOPS -> at most "
        f"{peak / g:.0f} img/s (pixel terms) / {peak / (g + f):.0f} img/s (shipped objective) at 100% of peak"
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--models", nargs="+", default=["jdsr-lite-x4", "jdsr-fast-x4"])
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from facesr.train.loop import cpu_bf16_native

    out: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_native": cpu_bf16_native(),
    }
    if args.skip_train and args.json and args.json.is_file():  # keep the training rows of an earlier run
        out["train"] = json.loads(args.json.read_text(encoding="utf-8")).get("train", [])
        out["train_measured"] = json.loads(args.json.read_text(encoding="utf-8")).get("date")
    if not args.skip_train:
        from facesr.data.prepared import PreparedSet
        from facesr.paths import prepared_dir

        out["train"] = train_rows(
            PreparedSet.load(prepared_dir("utkface")), args.steps, args.warmup, args.batch
        )
    out["compute_floor"] = compute_floor(torch.get_num_threads())
    out["inference"] = infer_rows(args.models, args.repeats)
    if args.json:
        from facesr.io import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
