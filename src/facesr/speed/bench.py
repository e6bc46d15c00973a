"""``facesr bench``: size, compute and speed of each model, written to BENCHMARKS.md.

Per model and scale it measures parameters, GFLOPs per face (``torch.utils.flop_counter``: one
multiply-add = 2 FLOPs; ops it does not count, such as interpolation, count 0), CPU latency at batch 1,
CPU throughput at a batch, peak memory, and, when CUDA is available, GPU throughput in fp32 and bf16
(autocast) with the achieved TFLOP/s and the peak allocated memory.

Absolute CPU timings depend on the machine and on whatever else runs on it, so every timing is also
printed as a ratio to bicubic and to the JDSR lite model *measured in the same run*. Each CPU
measurement runs in a fresh child process (:func:`child_measure`) so that its peak resident
memory (``ru_maxrss``) belongs to that model alone and no allocator state leaks between models.
Speed does not depend on weight values, so architectures can be benchmarked untrained
(``jdsr:size=lite``), which is how the default run covers models that have not been trained yet.

Then, in the same run (:mod:`facesr.speed.report`): every inference lever (channels_last, bf16, torch.compile,
ONNX Runtime, int8) against fp32 eager with output differences and PSNR on real UTK-Mask faces; the
CPU targets; real peers that nobody here wrote (ESRGAN-thick, RealSR on ncnn) on the same faces with
PSNR next to speed; optionally the training-step levers; and the GPU tables folded in from a
``scripts/gpu_speed.sh`` JSON (``--gpu-json``), since this machine may have no GPU.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from facesr.errors import FacesrError
from facesr.geometry import HR_SIZE, input_size
from facesr.speed.models import DEFAULT_SPECS, LITE_SPEC, build, count_flops, median_time


def measure_cpu(spec: str, scale: int, batch_size: int, repeats: int, threads: int | None) -> dict[str, Any]:
    """Everything measured on the CPU for one model (run inside a child process)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(spec, scale).eval()
    side = model.lr_size  # the model's own input size
    lr1 = torch.rand(1, 3, side, side)
    lrb = torch.rand(batch_size, 3, side, side)
    params = int(sum(p.numel() for p in model.parameters()))
    flops = count_flops(model, lr1)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        lat = median_time(lambda: model(lr1), repeats)
        thr_t = median_time(lambda: model(lrb), max(3, repeats // 3), warmup=1)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kb = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "model": spec,
        "name": getattr(model, "name", spec),
        "scale": scale,
        "params": params,
        "gflops_per_face": flops / 1e9,
        "cpu_latency_ms": lat * 1e3,
        "cpu_throughput": batch_size / thr_t,
        "cpu_batch": batch_size,
        "cpu_peak_rss_mb": rss_peak / kb,
        "cpu_forward_rss_increase_mb": (rss_peak - rss_before) / kb,
        "threads": torch.get_num_threads(),
    }


def measure_gpu(
    spec: str, scale: int, batch_size: int, repeats: int, flops_per_face: float
) -> dict[str, Any]:
    """GPU fp32 and bf16 (autocast) throughput, achieved TFLOP/s and peak allocated memory."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = build(spec, scale).to(dev).eval()
    x = torch.rand(batch_size, 3, model.lr_size, model.lr_size, device=dev)
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(dev), "gpu_batch": batch_size}
    for tag, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)

        def run(dtype: torch.dtype | None = dtype) -> None:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                model(x)

        t = median_time(run, repeats, sync=torch.cuda.synchronize)
        out[f"gpu_{tag}_throughput"] = batch_size / t
        out[f"gpu_{tag}_tflops"] = flops_per_face * batch_size / t / 1e12
        out[f"gpu_{tag}_peak_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def _child(spec: str, scale: int, batch_size: int, repeats: int, threads: int | None) -> dict[str, Any]:
    args = {"spec": spec, "scale": scale, "batch_size": batch_size, "repeats": repeats, "threads": threads}
    code = "import sys; from facesr.speed.bench import child_measure; child_measure(sys.argv[1])"
    cmd = [sys.executable, "-c", code, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise FacesrError(f"bench {spec} x{scale}: measurement failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def default_specs() -> list[str]:
    """bicubic, the JDSR architectures (untrained), and every masked-task zoo model."""
    from facesr.zoo import list_models

    specs = list(DEFAULT_SPECS)
    for entry in list_models():
        if entry.task == "masked" and entry.path.is_file():
            specs.append(entry.name)
    return specs


def _zoo_entries() -> list[Any]:
    from facesr.zoo import list_models

    return [e for e in list_models() if e.task != "baseline"]


def _ratio(a: float | None, b: float | None) -> str:
    if not (a and b):
        return "–"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def render(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """BENCHMARKS.md text."""
    lines = [
        "# Benchmarks: size, compute and speed",
        "",
        f"Generated by `{env['command']}` on {env['date']} (code `{env['code_revision']}`); do not edit by hand.",
        "",
        f"* CPU: {env['cpu']} ({env['cpu_count']} logical cores visible, {env['threads']} torch threads)",
        f"* GPU: {env.get('gpu') or 'none available in this run (GPU columns empty)'}",
        f"* Python {env['python']}, torch {env['torch']}, {env['platform']}",
        f"* Load average (1 min) at start / end: {env.get('load_start', '?')} / {env.get('load_end', '?')}"
        + (
            " (other jobs were running: absolute CPU times are inflated; ratios within this run hold)"
            if float(env.get("load_end") or 0) > 0.5 * float(env["cpu_count"] or 1)
            else ""
        ),
        "",
        "GFLOPs per face: `torch.utils.flop_counter` at batch 1 (multiply-add = 2 FLOPs; interpolation "
        "counts 0). CPU timings are medians after warm-up; on a shared machine they are only meaningful "
        "relative to each other, so they are also given as ratios to bicubic and to `jdsr:size=lite` from "
        "this same run (latency ratio = this / reference). Peak RSS is the child process's high-water "
        "mark (model, inputs, torch runtime); 'forward +' is the increase during the timed runs. Models "
        "named `arch:key=value` are architectures with untrained weights (speed does not depend on weights).",
        "",
    ]
    for scale in sorted({r["scale"] for r in rows}):
        group = [r for r in rows if r["scale"] == scale]
        bic = next((r for r in group if r["model"].startswith("bicubic")), None)
        lite = next((r for r in group if r["model"] == LITE_SPEC), None)
        lines += [
            f"## x{scale} ({input_size(scale)}x{input_size(scale)} -> {HR_SIZE}x{HR_SIZE})",
            "",
            "| model | params | GFLOPs/face | CPU latency b1 ms | x bicubic | x lite | "
            f"CPU faces/s (batch {group[0]['cpu_batch']}) | peak RSS MB | forward + MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            lines.append(
                f"| `{r['model']}` | {r['params']:,} | {r['gflops_per_face']:.3f} | {r['cpu_latency_ms']:.2f} | "
                f"{_ratio(r['cpu_latency_ms'], bic and bic['cpu_latency_ms'])} | "
                f"{_ratio(r['cpu_latency_ms'], lite and lite['cpu_latency_ms'])} | "
                f"{r['cpu_throughput']:.1f} | {r['cpu_peak_rss_mb']:.0f} | {r['cpu_forward_rss_increase_mb']:.0f} |"
            )
        if any("gpu_fp32_throughput" in r for r in group):
            lines += [
                "",
                f"GPU ({group[0].get('gpu', '?')}, batch {group[0].get('gpu_batch', '?')}):",
                "",
                "| model | fp32 faces/s | fp32 TFLOP/s | fp32 peak MB | bf16 faces/s | bf16 TFLOP/s | "
                "bf16 peak MB | bf16 x lite |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in group:
                if "gpu_fp32_throughput" not in r:
                    continue
                lines.append(
                    f"| `{r['model']}` | {r['gpu_fp32_throughput']:.0f} | {r['gpu_fp32_tflops']:.2f} | "
                    f"{r['gpu_fp32_peak_mb']:.0f} | {r['gpu_bf16_throughput']:.0f} | "
                    f"{r['gpu_bf16_tflops']:.2f} | {r['gpu_bf16_peak_mb']:.0f} | "
                    f"{_ratio(lite and lite.get('gpu_bf16_throughput'), r['gpu_bf16_throughput'])} |"
                )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run_bench(
    specs: list[str] | None,
    scales: list[int],
    *,
    out: str | os.PathLike[str] = "BENCHMARKS.md",
    json_out: str | os.PathLike[str] | None = None,
    batch_size: int = 16,
    gpu_batch_size: int = 128,
    repeats: int = 10,
    threads: int | None = None,
    gpu: bool = True,
    command: str = "facesr bench",
    levers: bool = True,
    lever_scales: tuple[int, ...] = (4,),
    quality_faces: int = 16,
    peers: bool = True,
    train: dict[str, Any] | None = None,
    gpu_json: str | os.PathLike[str] | None = None,
    benchmarks_root: str | None = None,
    lever_specs: list[tuple[str, str]] | None = None,
    lever_list: list[str] | None = None,
) -> Path:
    """Measure every model at every scale and write BENCHMARKS.md (+ the raw JSON)."""
    from tqdm import tqdm

    from facesr.io import atomic_write_text
    from facesr.provenance import code_revision, cpu_name, software, utc_now

    for s in scales:
        if s not in (4, 8):
            raise FacesrError(f"scale must be 4 or 8, got {s}")
    if batch_size < 1 or gpu_batch_size < 1 or repeats < 1:
        raise FacesrError("batch sizes and repeats must be at least 1")
    if threads:
        torch.set_num_threads(threads)
    load_start = round(os.getloadavg()[0], 2)
    specs = list(specs or default_specs())
    if not any(s.startswith("bicubic") for s in specs):
        specs.insert(0, "bicubic")
    use_gpu = gpu and torch.cuda.is_available()
    rows = []
    zoo_scale = {e.name: e.scale for e in _zoo_entries()}
    # a zoo model runs at its own scale only (jdsr-lite-x8 has no x4 input); specs and paths at every scale
    jobs = [(s, sc) for sc in scales for s in specs if zoo_scale.get(s, sc) == sc]
    for spec, scale in tqdm(jobs, desc="bench", unit="model"):
        row = _child(spec, scale, batch_size, repeats, threads)
        if use_gpu:
            row.update(measure_gpu(spec, scale, gpu_batch_size, repeats, row["gflops_per_face"] * 1e9))
        rows.append(row)
    extra: list[str] = []
    speed: dict[str, Any] = {}
    if levers or peers or train or gpu_json:
        from facesr.speed import report

        for sc in lever_scales if levers else ():
            lines, speed[f"levers_x{sc}"] = report.cpu_lever_section(
                sc, quality_faces, repeats, lever_list, benchmarks_root, lever_specs
            )
            extra += lines
        for sc in lever_scales if peers else ():
            lines, speed[f"peers_x{sc}"] = report.peer_section(sc, quality_faces, repeats, benchmarks_root)
            extra += lines
        if train:
            lines, speed["train"] = report.train_section(train)
            extra += lines
        if gpu_json:
            extra += report.gpu_section(gpu_json)
    sw = software()
    env = {
        "command": command,
        "date": utc_now(),
        "code_revision": code_revision(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": rows[0]["threads"] if rows else torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if use_gpu else None,
        "python": sw["python"],
        "torch": sw["torch"],
        "platform": platform.platform(),
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    out_path = Path(out)
    text = render(rows, env) + ("\n" + "\n".join(extra).rstrip() + "\n" if extra else "")
    atomic_write_text(out_path, text)
    if json_out:
        doc = {"env": env, "rows": rows, "speed": speed}
        atomic_write_text(Path(json_out), json.dumps(doc, indent=1, default=str) + "\n")
    return out_path


def child_measure(args_json: str) -> None:
    """What the child process of :func:`_child` runs: :func:`measure_cpu`, printed as one JSON line."""
    args = json.loads(args_json)
    res = measure_cpu(args["spec"], args["scale"], args["batch_size"], args["repeats"], args["threads"])
    print(json.dumps(res))
