"""`facesr restore-batch`: ``facesr restore`` for very many photos, on Ray, resumable.

Heavy imports (Ray, torch, pyarrow) happen inside the command body so `facesr --help` is fast and
works without Ray. Exit status: 0 every photo done (now or by an earlier run), 1 some photo
failed (each with its reason in manifest.jsonl), 2 usage / user error (Ray missing, bad option,
unreachable cluster, unknown model). See docs/scale-out.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click


@click.command("restore-batch")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder: restored PNGs (named as by `facesr restore`) plus manifest.jsonl.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto); default: start Ray on this machine.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Restore workers (each loads the models once); default: one per GPU, else one per --cpus-per-worker CPUs.",
)
@click.option("--cpus-per-worker", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0.0),
    default=None,
    help="GPUs per restore worker when the device is cuda (default 1; 0.5 packs two per GPU).",
)
@click.option(
    "--prepare-cpus",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="CPUs per read/decode/detect task (CPU stage; as many run as the CPUs left by the restore workers).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Torch threads per worker and CPU task; outputs are the bytes of `OMP_NUM_THREADS=N facesr restore`.",
)
@click.option(
    "--photos-per-call",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Photos per worker call; a killed worker redoes at most this many.",
)
@click.option(
    "--local-cpus",
    type=click.IntRange(min=1),
    default=None,
    help="CPUs for the Ray instance started on this machine (without --address); default: all.",
)
@click.option(
    "--upscale",
    type=click.Choice(["1", "2", "4", "8"]),
    default=None,
    help="Output photo N times larger (default 2; with --aligned: the model's 128 px frame).",
)
@click.option(
    "--bg-upsampler",
    default="bicubic",
    show_default=True,
    help="Background upsampler for --upscale: bicubic, or a zoo general-SR model (e.g. rlfn-x4), run tiled.",
)
@click.option(
    "--aligned", is_flag=True, help="Inputs are template-framed face crops (as in `facesr restore`)."
)
@click.option(
    "--model",
    default=None,
    help="auto (default: jdsr-fast-x2/x4/x8 by face size), bicubic, a zoo name (e.g. cr-x4) or a .safetensors path.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where workers restore: auto = cuda when the cluster has GPUs, else cpu.",
)
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--engine", type=click.Choice(["auto", "torch", "ort"]), default="auto", show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Faces per model call."
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse images with more pixels than this (default 64,000,000).",
)
@click.option(
    "--min-face", type=float, default=None, help="Smallest face box (px) to search for (default 10)."
)
@click.option(
    "--plan-only",
    is_flag=True,
    help="Only plan: read the inputs, fix and save their output names (.facesr-batch/plan.parquet), "
    "count them, and stop before Ray starts; nothing is restored.",
)
def restore_batch_cmd(
    inputs: tuple[str, ...],
    output: Path,
    address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float | None,
    prepare_cpus: float,
    threads: int,
    photos_per_call: int,
    local_cpus: int | None,
    upscale: str | None,
    bg_upsampler: str,
    aligned: bool,
    model: str | None,
    device: str,
    precision: str,
    engine: str,
    batch_size: int,
    max_pixels: int | None,
    min_face: float | None,
    plan_only: bool,
) -> int:
    """Restore every face in photos INPUT... (folders, globs, files, or .txt/.csv/.parquet manifests
    of paths) on a Ray cluster; a rerun skips photos already done with the same settings."""
    from facesr.batch import pipeline

    if not plan_only:  # planning needs no Ray
        pipeline.require_ray()  # without Ray: the install hint, exit 2, before any work

    import torch

    from facesr.batch.inputs import candidates, check_manifests
    from facesr.batch.manifest import OutputFolder
    from facesr.batch.settings import RestoreSettings, background_fingerprint, model_fingerprint
    from facesr.errors import FacesrError
    from facesr.io import MAX_PIXELS
    from facesr.outputs import remove_dead_temps
    from facesr.restoration.detect import DetectOptions
    from facesr.restoration.engine import resolve_engine

    t0 = time.perf_counter()
    # Before the output folder is made: a bad manifest, no input at all, a bad model or background
    # upsampler are one line and exit 2. The inputs themselves are read once, streamed, by plan().
    check_manifests(inputs)
    if next(candidates(inputs), None) is None:
        raise FacesrError("no input images found")
    fingerprint = model_fingerprint(model or "auto")
    bg_fingerprint = background_fingerprint(bg_upsampler)
    folder = OutputFolder(output)
    folder.prepare()
    try:
        for stale in remove_dead_temps(output):  # left by a killed run (its workers are gone)
            click.echo(f"facesr: removed {stale}, a temporary file of an interrupted run", err=True)
        n = folder.plan(candidates(inputs))  # output names fixed and saved before any work
        if plan_only:
            click.echo(
                f"facesr restore-batch: plan only: {n} photos, output names in {folder.plan_path} "
                f"({time.perf_counter() - t0:.1f} s); nothing restored"
            )
            return 0
        resources = pipeline.connect(address, num_cpus=local_cpus)
        try:
            has_gpu = resources.get("GPU", 0.0) > 0
            if device == "cuda" and not has_gpu:
                raise FacesrError("--device cuda: the Ray cluster has no GPU (use --device auto or cpu)")
            dev = "cuda" if device == "cuda" or (device == "auto" and has_gpu) else "cpu"
            settings = RestoreSettings(
                model=model or "auto",
                device=dev,
                precision=precision,
                engine=resolve_engine(engine, torch.device(dev), precision),
                batch_size=batch_size,
                aligned=aligned,
                upscale=int(upscale) if upscale else 0,
                bg_upsampler=bg_upsampler,
                max_pixels=max_pixels or MAX_PIXELS,
                min_face=DetectOptions().min_size if min_face is None else min_face,
                model_fingerprint=fingerprint,
                bg_fingerprint=bg_fingerprint,
                threads=threads,
            )
            shape = pipeline.plan_shape(
                resources,
                dev,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                photos_per_call=photos_per_call,
                prepare_cpus=prepare_cpus,
            )
            # The task table (each input, its output, its last manifest row) goes to disk in
            # blocks that the CPU stage reads where it runs: the driver holds only their list.
            blocks = folder.write_tasks(pipeline.block_rows(n, shape))
            counts = {"ok": 0, "skipped": 0, "failed": 0}

            def on_rows(statuses: list[str], rows: list[str]) -> None:
                folder.append([r for s, r in zip(statuses, rows, strict=True) if s != "skipped"])
                for s in statuses:
                    counts[s] = counts.get(s, 0) + 1
                for s, r in zip(statuses, rows, strict=True):
                    if s == "failed":
                        click.echo(f"facesr: failed: {json.loads(r)['reason']}", err=True)

            click.echo(
                f"facesr restore-batch: {n} photos, {shape.workers} restore worker(s) on {dev} "
                f"({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs); "
                f"settings {settings.sha256[:12]}",
                err=True,
            )
            try:
                pipeline.run(blocks, settings, shape, on_rows)
            except Exception as exc:
                if isinstance(exc, FacesrError):
                    raise
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise FacesrError(
                    f"the Ray job stopped ({type(exc).__name__}: {first}); finished photos are in "
                    f"{folder.manifest}: run the same command again to resume"
                ) from None
        finally:
            pipeline.disconnect()
    finally:
        folder.close()  # the scratch index and task files (the plan and manifest stay)
    rows = folder.compact()
    took = time.perf_counter() - t0
    click.echo(
        f"facesr restore-batch: {counts['ok']} restored, {counts['skipped']} already done, "
        f"{counts['failed']} failed of {n} in {took:.1f} s; manifest: {folder.manifest} ({rows} rows)"
    )
    sys.stdout.flush()
    return 1 if counts["failed"] else 0


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(restore_batch_cmd)
