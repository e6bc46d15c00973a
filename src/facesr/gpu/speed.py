"""Every speed lever on a GPU in one command: inference, batch sweep, memory, training step.

Run by ``scripts/gpu_speed.sh`` (which prepares data on the device machine); writes, after every
section so that a run cut short still returns what it measured:

* ``$OUT/gpu_speed.json``: environment, command, and per section its title, Markdown lines and
  raw rows (fold into BENCHMARKS.md with ``facesr bench --gpu-json gpu_speed.json``);
* ``$OUT/gpu_speed.md``: the same tables, readable.

Sections (each skipped with a note when ``--budget-s`` is nearly spent):

1. training-step levers for lite and paper (``facesr.speed.training``), then a batch sweep of the
   best exact lever combination (images/s, GPU busy / step time, syncs/step, peak MB/image);
2. inference levers for the shipped lite x4 model and the paper architecture against fp32 eager, on
   the UTK-Mask x4 faces when the benchmark is built (mean abs vs fp32 in 1/255, PSNR change);
3. a batch sweep of the fastest inference lever that is exact enough (<= 1/255 mean abs, PSNR
   within 0.01 dB of fp32), and a 10,000-face run checking that allocated memory does not grow.

``--smoke`` runs every section with tiny sizes on whatever device is there (the CPU here), to check
the script before spending GPU time on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from facesr.speed.inference import (
    CPU_LEVERS,
    Runner,
    batch_sweep,
    load_quality_faces,
    measure_levers,
    memory_growth,
    parse_lever,
    render_levers,
)
from facesr.speed.report import exact_enough
from facesr.speed.training import (
    CPU_TRAIN_LEVERS,
    CUDA_TRAIN_LEVERS,
    bench_train,
    rebase,
    render_train,
    tiled_prepared,
)

T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[gpu_speed {time.perf_counter() - T0:6.0f} s] {msg}", flush=True)


class Report:
    """Sections written to JSON + Markdown after each one (a cut-short run keeps what it measured)."""

    def __init__(self, out: Path, env: dict[str, Any]) -> None:
        self.out, self.env, self.sections = out, env, []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, title: str, lines: list[str], raw: Any = None) -> None:
        self.sections.append({"title": title, "lines": lines, "raw": raw})
        self.env["elapsed_s"] = round(time.perf_counter() - T0, 1)
        doc = {**self.env, "sections": self.sections}
        (self.out / "gpu_speed.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
        md = [f"# GPU speed: {self.env['device']}", "", f"`{self.env['command']}`, {self.env['date']}", ""]
        for s in self.sections:
            md += [f"## {s['title']}", "", *s["lines"], ""]
        (self.out / "gpu_speed.md").write_text("\n".join(md))
        print("\n".join([f"## {title}", *lines]), flush=True)


def build_model(spec: str, scale: int) -> torch.nn.Module:
    from facesr.speed.models import build

    return build(spec, scale)


def main(argv: list[str] | None = None) -> None:
    """``facesr gpu speed [options]`` (``-h`` lists them)."""
    ap = argparse.ArgumentParser(prog="facesr gpu speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "out/gpu_speed"))
    ap.add_argument("--budget-s", type=float, default=520.0, help="stop starting sections after this")
    ap.add_argument("--prepared", default=None, help="prepared set (default: workspace/prepared/utkface)")
    ap.add_argument("--data", default=None, help="face-data root with masktheface/ (default: FACESR_DATA)")
    ap.add_argument("--benchmarks-root", default=None)
    ap.add_argument("--wait-benchmark-s", type=float, default=120.0)
    ap.add_argument("--quality-faces", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on any device (checks the script)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    from facesr.paths import benchmarks_dir, prepared_dir
    from facesr.provenance import code_revision, utc_now

    env = {
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)",
        "command": "bash scripts/gpu_speed.sh" + (" (--smoke)" if args.smoke else ""),
        "date": utc_now(),
        "code_revision": code_revision(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "tf32": cuda,
        "smoke": args.smoke,
    }
    rep = Report(Path(args.out), env)
    budget = args.budget_s

    def left() -> float:
        return budget - (time.perf_counter() - T0)

    prepared_path = args.prepared or str(prepared_dir("utkface"))
    bench_root = args.benchmarks_root or str(benchmarks_dir())
    small = args.smoke
    steps, warmup = (2, 1) if small else (10, 3)
    extra = (
        ["model.overrides={trunk: 8, prior_width: 8, encoder_blocks: 1}", "model.critic={width: 8}"]
        if small
        else []
    )
    from facesr.restoration.api import model_installed

    lite = "jdsr-lite-x4" if model_installed("jdsr-lite-x4") else "jdsr:size=lite"
    state: dict[str, Any] = {"faces": None, "faces_loaded": False, "best_inf": {}, "best_train": {}}

    def train_levers(label: str, config: str, batch: int, levers: list[str]) -> None:
        say(f"training levers {label} batch {batch}: {levers}")
        prep = tiled_prepared(prepared_path, max(4 * batch, 64))
        rows = bench_train(
            config,
            levers,
            batch=batch,
            steps=steps,
            warmup=warmup,
            prepared=prep,
            data_root=args.data,
            extra_overrides=extra,
        )
        note = (
            f"Full JDSR step of `{config}` (every loss term, WGAN-GP critic with gradient penalty, EMA), "
            f"{steps} timed steps after {warmup} warm-up steps; ratios against fp32 eager (foreach Adam)."
        )
        rep.add(
            f"Training levers, {label} x4, batch {batch}",
            [note, "", *render_train(rows)],
            [r.to_json() for r in rows],
        )
        ok = [r for r in rows if r.error is None]
        if ok:
            state["best_train"][label] = max(ok, key=lambda r: r.images_per_s).lever

    def train_sweep(label: str, config: str, batches: list[int]) -> None:
        best = state["best_train"].get(label)
        if best is None:
            return
        say(f"training batch sweep {label} {best}")
        sweep = []
        for b in batches:
            sweep += bench_train(
                config,
                [best],
                batch=b,
                steps=steps,
                warmup=warmup,
                prepared=tiled_prepared(prepared_path, max(4 * b, 64)),
                data_root=args.data,
                extra_overrides=extra,
            )
        rebase(sweep)
        rep.add(
            f"Training batch sweep, {label} x4, lever {best}",
            [
                "Same lever, larger batches (learning rate not rescaled here: speed only).",
                "",
                *render_train(sweep),
            ],
            [r.to_json() for r in sweep],
        )

    def quality_faces() -> Any:
        if not state["faces_loaded"]:
            t_wait = time.perf_counter() + (
                0 if small else min(args.wait_benchmark_s, max(0.0, left() - 200))
            )
            while (
                not (Path(bench_root) / "utk-mask-x4" / "meta.json").is_file()
                and time.perf_counter() < t_wait
            ):
                time.sleep(2)
            state["faces"] = load_quality_faces(4, 16 if small else args.quality_faces, bench_root)
            state["faces_loaded"] = True
            say(f"quality faces: {state['faces'].source if state['faces'] else 'none (benchmark not built)'}")
        return state["faces"]

    def infer_levers(label: str, spec: str, batch: int, levers: list[str]) -> None:
        faces = quality_faces()
        say(f"inference levers {spec} batch {batch}: {levers}")
        rows = measure_levers(
            lambda: build_model(spec, 4),
            model_name=spec,
            scale=4,
            device=dev,
            levers=levers,
            batch=batch,
            repeats=5 if small else 10,
            faces=faces,
        )
        note = (
            f"`{spec}` x4, batch {batch}; quality on {faces.source if faces else 'no benchmark faces'}; "
            "first call s = build + compile/capture + first batch."
        )
        rep.add(
            f"Inference levers, {label} x4", [note, "", *render_levers(rows)], [r.to_json() for r in rows]
        )
        good = [r for r in rows if exact_enough(r)]
        if good:
            state["best_inf"][label] = max(good, key=lambda r: r.faces_per_s).lever

    def sweep_and_memory(label: str, spec: str, batches: list[int], mem_batch: int, n_faces: int) -> None:
        lever = state["best_inf"].get(label)
        if lever is None:
            return
        say(f"batch sweep {spec} {lever}")
        sweep = batch_sweep(lambda: build_model(spec, 4), lever=lever, device=dev, batches=batches, repeats=5)
        lines = ["| lever | batch | faces/s | ms/batch | peak MB/face |", "|---|---|---|---|---|"]
        for r in sweep:
            if "error" in r:
                lines.append(f"| {lever} | {r['batch']} | not measured: {r['error']} | | |")
                continue
            pm = f"{r['peak_mb_per_face']:.2f}" if "peak_mb_per_face" in r else "–"
            lines.append(
                f"| {lever} | {r['batch']} | {r['faces_per_s']:,.0f} | {r['ms_per_batch']:.2f} | {pm} |"
            )
        runner = Runner(build_model(spec, 4), parse_lever(lever), dev, mem_batch)
        mem = memory_growth(runner, n_faces)
        del runner
        unit = "allocated" if cuda else "resident"
        lines += [
            "",
            f"Memory over {mem['faces']:.0f} faces ({lever}, batch {mem_batch}): {unit} {mem['first_mb']:.1f} MB "
            f"after the warm-up batches, {mem['last_mb']:.1f} MB at the end (growth {mem['growth_mb']:+.1f} MB).",
        ]
        rep.add(f"Inference batch sweep and memory, {label} x4", lines, {"sweep": sweep, "memory": mem})

    if small:
        lite_inf = list(CPU_LEVERS[:3])
        paper_inf = ["fp32", "bf16"]
        lite_train = list(CPU_TRAIN_LEVERS)
        paper_train = ["fp32", "sync_log"]
    else:
        lite_inf = [
            "fp32",
            "channels_last",
            "bf16",
            "compile",
            "cuda_graph",
            "bf16+channels_last",
            "bf16+channels_last+compile+cuda_graph",
        ]
        paper_inf = ["fp32", "bf16+channels_last", "bf16+channels_last+compile+cuda_graph"]
        lite_train = [lv for lv in CUDA_TRAIN_LEVERS if lv not in ("bf16+compile",)]
        paper_train = ["fp32", "bf16", "bf16+channels_last+fused+sync_log"]
    b = lambda small_b, big_b: small_b if small else big_b  # noqa: E731
    # (minimum seconds left to start it, what) in priority order; a run cut short keeps what it measured
    plan: list[tuple[float, str, Any]] = [
        (
            150,
            "training levers, lite",
            lambda: train_levers("lite", "configs/jdsr_lite_x4.yaml", b(8, 256), lite_train),
        ),
        (120, "inference levers, lite", lambda: infer_levers("lite", lite, b(8, 1024), lite_inf)),
        (
            60,
            "training levers, paper",
            lambda: train_levers("paper", "configs/jdsr_paper_x4.yaml", b(4, 128), paper_train),
        ),
        (
            60,
            "inference levers, paper",
            lambda: infer_levers("paper", "jdsr:size=paper", b(4, 512), paper_inf),
        ),
        (
            40,
            "inference sweep + memory, lite",
            lambda: sweep_and_memory("lite", lite, b([2, 4], [256, 1024, 4096]), b(4, 1000), b(200, 10_000)),
        ),
        (
            40,
            "training sweep, lite",
            lambda: train_sweep("lite", "configs/jdsr_lite_x4.yaml", b([4, 8], [128, 512])),
        ),
        (
            40,
            "inference sweep + memory, paper",
            lambda: sweep_and_memory(
                "paper", "jdsr:size=paper", b([2, 4], [256, 2048]), b(4, 1000), b(200, 10_000)
            ),
        ),
    ]
    for need, what, fn in plan:
        if not small and left() < need:
            rep.add(what, [f"skipped: {left():.0f} s of the time budget left (needs about {need:.0f} s)"])
            continue
        try:
            fn()
        except Exception as exc:  # one failing section must not lose the others
            rep.add(what, [f"failed: {type(exc).__name__}: {str(exc)[:300]}"])
    say("done")
