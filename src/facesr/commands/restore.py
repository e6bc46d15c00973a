"""`facesr restore` (whole photos or aligned crops) and `facesr models` (the zoo).

Heavy imports (torch, the pipeline) happen inside the command bodies so `facesr --help` is fast.
Exit status: 0 all files done, 1 some file failed (unreadable input or write error, each with a
one-line reason in the output and the report), 2 usage / user error (bad option, unwritable
output folder, unknown model, an input path that does not exist or a glob that matches nothing:
like click's ``Path(exists=True)``, checked before any work). A readable photo always gives an
output, even with no face in it.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from facesr.zoo import ZooEntry


def _expand_inputs(inputs: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """Files, folders (recursive) and globs -> [(path, name relative to its root)], in order, unique.

    A path that does not exist, or a glob that matches no file, is a usage error (exit 2) raised
    before any work, as click does for ``Path(exists=True)``: it is a typo, not a bad photo.
    """
    from facesr.errors import FacesrError
    from facesr.io import list_images

    out: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    missing: list[str] = []

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append((path, rel))

    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            for f in list_images(p):
                add(f, f.relative_to(p))
        elif p.exists() or p.is_symlink():
            add(p, Path(p.name))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                missing.append(f"{item}: no file matches")
            for f in files:
                add(f, Path(f.name))
        else:
            missing.append(f"{item}: no such file")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FacesrError(f"{missing[0]}{more}; nothing was restored")
    return out


def _check_output_dir(out: Path) -> None:
    from facesr.errors import FacesrError

    if out.exists() and not out.is_dir():
        raise FacesrError(f"output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".facesr-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FacesrError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None


def _compare_image(before, after):  # type: ignore[no-untyped-def]
    """Side by side: input | restored (the aligned mode's input is resized to the output size)."""
    import numpy as np
    from PIL import Image

    if before.shape != after.shape:
        before = np.asarray(Image.fromarray(before).resize(after.shape[1::-1], Image.Resampling.NEAREST))
    gap = np.full((after.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([before, gap, after], 1)


@click.command("restore")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (created if needed); results are PNG files plus report.json.",
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
    "--aligned",
    is_flag=True,
    help="Inputs are template-framed face crops (checked: others are restored as photos, larger ones kept).",
)
@click.option(
    "--model",
    default=None,
    help="auto (default: per face, the model whose input is closest to the face's size), bicubic, "
    "a zoo name (e.g. cr-x4) or a .safetensors path.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Inference precision; falls back to fp32 with a warning if the output is not finite.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "torch", "ort"]),
    default="auto",
    show_default=True,
    help="Runtime of the restorer: auto = ONNX Runtime on the CPU in fp32 when installed, else PyTorch.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--save-faces", is_flag=True, help="Also write each face's aligned input and restored output.")
@click.option("--compare", is_flag=True, help="Also write a side-by-side input | output image.")
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
    "--overwrite",
    is_flag=True,
    help="Replace output files that existed before this run (default: write NAME_1.png and so on "
    "instead). Inputs are never replaced.",
)
def restore_cmd(
    inputs: tuple[str, ...],
    output: Path,
    upscale: str | None,
    bg_upsampler: str,
    aligned: bool,
    model: str | None,
    device: str,
    precision: str,
    engine: str,
    batch_size: int,
    save_faces: bool,
    compare: bool,
    max_pixels: int | None,
    min_face: float | None,
    overwrite: bool = False,
) -> int:
    """Restore every face in photos INPUT... (files, folders, globs) and write the results to -o."""
    import warnings

    from tqdm import tqdm

    from facesr.errors import FacesrError, ModelError
    from facesr.io import IMAGE_EXTENSIONS, MAX_PIXELS, write_image
    from facesr.restoration.api import background_upsampler, resolve_device, restore
    from facesr.restoration.detect import DetectOptions
    from facesr.restoration.engine import resolve_engine
    from facesr.restoration.report import RunReport
    from facesr.speed.allocator import keep_freed_memory

    keep_freed_memory()  # detection's strips reuse freed heap instead of faulting it in again
    dev = resolve_device(device)  # an unavailable device is a usage error before any work
    engine = resolve_engine(engine, dev, precision)  # likewise an unusable --engine ort
    background_upsampler(bg_upsampler, dev)  # an unknown or unusable upsampler: exit 2 before any work
    files = _expand_inputs(inputs)  # a missing input: exit 2 before the output folder is made
    _check_output_dir(output)
    from facesr.outputs import OutputPlan, ReportWriter, remove_dead_temps

    for stale in remove_dead_temps(output):  # left by a killed run (its process is gone)
        click.echo(f"facesr: removed {stale}, a temporary file of an interrupted run", err=True)
    if not files:
        raise FacesrError("no input images found")
    limit = max_pixels or MAX_PIXELS
    detect = DetectOptions() if min_face is None else DetectOptions(min_size=min_face)
    report = RunReport(
        settings={
            "model": model or "auto",
            "device": str(dev),
            "precision": precision,
            "engine": engine,
            "batch_size": batch_size,
            "aligned": aligned,
            "upscale": int(upscale) if upscale else "default",
            "bg_upsampler": bg_upsampler,
            "max_pixels": limit,
            "min_face": detect.min_size,
            "output": str(output),
        }
    )
    # Outputs never replace an input, a file that existed before the run (unless --overwrite) or
    # another output of this run (facesr.outputs); the report is rewritten as the run goes.
    input_paths = {p.resolve() for p, _ in files}
    plan = OutputPlan(protected=input_paths, overwrite=overwrite)
    report_path = plan.file(output / "report.json")
    writer = ReportWriter(report_path, report.to_json)
    for path, rel in tqdm(
        files, desc="restore", unit="img", disable=len(files) < 2 or not sys.stderr.isatty()
    ):
        writer.update()  # the previous file's result is on disk within a second
        out_path = output / rel.with_suffix(".png")
        if out_path.resolve() in input_paths:
            reason = f"output {out_path} would overwrite an input; choose another -o folder"
            report.add_failed(path, reason)
            click.echo(f"facesr: failed: {path}: {reason}", err=True)
            continue
        out_path = plan.file(out_path)  # NAME_1.png if NAME.png existed before (or --overwrite)
        if path.suffix.lower() not in IMAGE_EXTENSIONS and path.is_file():
            reason = f"{path}: unsupported file type {path.suffix or '(none)'!r}; use {', '.join(IMAGE_EXTENSIONS)}"
            report.add_failed(path, reason)
            click.echo(f"facesr: failed: {reason}", err=True)
            continue
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                res = restore(
                    path,
                    model=model,
                    device=str(dev),
                    precision=precision,
                    engine=engine,
                    batch_size=batch_size,
                    aligned=aligned,
                    upscale=int(upscale) if upscale else None,
                    bg_upsampler=bg_upsampler,
                    detect=detect,
                    max_pixels=limit,
                    keep_faces=save_faces or compare,
                )
        except FacesrError as exc:
            if isinstance(exc, ModelError):
                raise  # a missing/corrupt model fails every file: stop with one line, exit 2
            reason = str(exc).splitlines()[0]
            report.add_failed(path, reason, timings={"total": time.perf_counter() - t0})
            click.echo(f"facesr: failed: {reason}", err=True)
            continue
        for w in res.warnings:
            if w not in report.warnings:
                click.echo(f"facesr: warning: {w}", err=True)
            report.warn(w)
        faces_json = [f.to_json() for f in res.faces]
        for note in res.notes:
            click.echo(f"facesr: note: {path}: {note}", err=True)
        try:
            write_image(out_path, res.image)
            extra: list[str] = []
            if compare:
                before = res.faces[0].lr if aligned else None
                from facesr.io import read_image

                src = before if before is not None else read_image(path, max_pixels=limit)
                cmp_path = plan.file(out_path.with_name(out_path.stem + "_compare.png"))
                write_image(cmp_path, _compare_image(src, res.image))
                extra.append(str(cmp_path))
            if save_faces:
                face_dir = plan.folder(out_path.with_name(out_path.stem + "_faces"))
                for fr in res.restored:
                    i = fr.face.index
                    for kind, arr in (("lr", fr.lr), ("sr", fr.sr)):
                        if arr is not None:
                            fp = plan.file(face_dir / f"face{i:02d}_{kind}.png")
                            write_image(fp, arr)
                            extra.append(str(fp))
        except OSError as exc:
            reason = f"{out_path}: cannot write output ({exc.strerror or exc})"
            report.add_failed(path, reason, faces=faces_json, timings=res.timings)
            click.echo(f"facesr: failed: {reason}", err=True)
            continue
        report.add_ok(
            path,
            out_path,
            faces_json,
            res.timings,
            extra,
            upscale=res.upscale,
            size=[int(res.image.shape[1]), int(res.image.shape[0])],
            notes=res.notes,
        )
    writer.finish()
    if plan.summary():
        click.echo(f"facesr: note: {plan.summary()}", err=True)
    click.echo(f"facesr restore: {report.summary()}; report: {report_path}")
    return 1 if report.counts["failed"] else 0


def _format_scores(benchmark: str, metrics: object) -> str:
    """``utk-mask-x4 24.10 dB / 0.7311 SSIM / id 0.95`` from a zoo entry's per-benchmark means."""
    if not isinstance(metrics, dict):
        return f"{benchmark}={metrics}"
    parts = []
    if "psnr" in metrics:
        parts.append(f"{metrics['psnr']:.2f} dB")
    if "ssim" in metrics:
        parts.append(f"{metrics['ssim']:.4f} SSIM")
    if "identity" in metrics:
        parts.append(f"id {metrics['identity']:.3f}")
    return f"{benchmark} " + " / ".join(parts)


def _model_sizes(entry: ZooEntry) -> str:
    """``16->128``, or ``16->64->128`` when the network's own output is smaller than the 128 frame.

    Read from the model itself: its ``lr_size`` / ``hr_size`` (:attr:`facesr.zoo.ZooEntry.sizes`), and
    ``facesr.hr_native`` from the weights file's header (cr-x4: a x4 net, 16 -> 64, framed at 128 by
    bicubic x2). Reading the header loads no tensors.
    """
    lr, hr = entry.sizes
    native = int(getattr(entry, "hr_native", 0) or 0)
    path = getattr(entry, "path", None) if getattr(entry, "file", "") else None
    if not native and path is not None and path.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                native = int((fh.metadata() or {}).get("facesr.hr_native", 0))
        except (SafetensorError, OSError, ValueError):  # a broken file fails where it is loaded
            native = 0
    return f"{lr}->{native}->{hr}" if 0 < native < hr else f"{lr}->{hr}"


@click.command("models")
def models_cmd() -> int:
    """List the model zoo: name, input -> output size (px), task, installed or not, and scores."""
    from facesr.restoration.api import model_installed
    from facesr.zoo import list_models

    rows = [("name", "in->out px", "task", "state", "scores / description")]
    for e in list_models():
        state = "built-in" if not e.file else ("installed" if model_installed(e.name) else "MISSING")
        scores = "; ".join(_format_scores(bench, m) for bench, m in e.scores.items()) if e.scores else "-"
        rows.append((e.name, _model_sizes(e), e.task, state, f"{scores}  {e.description}".strip()))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + f"  {r[4]}".rstrip())
    return 0


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(restore_cmd)
    group.add_command(models_cmd)
