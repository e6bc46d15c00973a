"""`facesr prepare`, `facesr benchmarks build|verify`, `facesr preview` (see docs/data.md).

Only click and the standard library are imported here; the data code is imported inside each
command so that ``facesr --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from facesr.commands.helpfmt import FullHelpGroup


def _resolve_source(src: str, data: str | None) -> tuple[Path, str]:
    """A path, or a source name (utkface, celeba10k, ...) resolved against the data root."""
    from facesr.data.prepare import SOURCES
    from facesr.errors import DataError
    from facesr.paths import data_root

    path = Path(src).expanduser()
    if path.is_dir():
        return path, path.name
    if src in SOURCES:
        return data_root(data) / SOURCES[src], src
    raise DataError(f"{src!r} is neither a folder nor a known source ({', '.join(sorted(SOURCES))})")


@click.command("prepare")
@click.argument("src")
@click.option("--name", default=None, help="Name of the prepared set (default: the source name).")
@click.option("--data", default=None, help="Face data root (default: $FACESR_DATA or ../shared/data).")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Output folder (default: workspace/prepared/NAME).",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--all-test", is_flag=True, help="Put every face in the test split (CelebA-10k).")
@click.option(
    "--n-test",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Test faces (distinct content hashes) when not --all-test.",
)
def prepare_cmd(
    src: str, name: str | None, data: str | None, out: str | None, workers: int, all_test: bool, n_test: int
) -> None:
    """Detect, align (128 and 64 px) and split the faces in SRC (a folder or: utkface, celeba10k)."""
    import json

    from facesr.data.prepare import prepare
    from facesr.paths import prepared_dir

    src_path, default_name = _resolve_source(src, data)
    name = name or default_name
    out_path = Path(out) if out else prepared_dir(name)
    report = prepare(
        src_path, out_path, workers=workers, n_test=None if all_test else n_test, source_name=name
    )
    summary = {
        k: report[k]
        for k in (
            "source",
            "files",
            "aligned",
            "failed",
            "aligned_fraction",
            "train",
            "test",
            "failure_reasons",
            "outside_frame",
            "files_per_second",
        )
    }
    click.echo(json.dumps(summary))
    click.echo(f"prepared set written to {out_path}")
    if name in ("utkface", "celeba10k") and out is None:
        click.echo("next: `facesr benchmarks build` (the frozen test sets cut from it)")


@click.group("benchmarks", cls=FullHelpGroup)
def benchmarks_group() -> None:
    """Build or verify the frozen test sets (utk-mask-x2, utk-mask-x4, utk-mask-x8, celeba10k).

    They are cut from the prepared sets: run `facesr prepare utkface` (UTK-Mask) and
    `facesr prepare celeba10k --all-test` (CelebA-10k) first.
    """


@benchmarks_group.command("build")
@click.option(
    "--only",
    "only",
    default=None,
    help="Build only this benchmark (an error if its prepared set is missing).",
)
@click.option(
    "--prepared",
    default=None,
    type=click.Path(file_okay=False),
    help="Prepared-sets folder (default: workspace/prepared).",
)
@click.option("--data", default=None, help="Face data root (mask templates, CelebA identities).")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Benchmarks folder (default: workspace/benchmarks).",
)
def benchmarks_build(only: str | None, prepared: str | None, data: str | None, out: str | None) -> None:
    """Freeze the test faces, seeded masks and LR inputs to PNG with a SHA256SUMS manifest.

    Builds every benchmark whose prepared set exists; the others are skipped with the commands
    that give them. Exits 2 when nothing could be built.
    """
    from facesr.data.benchmarks import NAMES, build_benchmark, unbuildable_reason
    from facesr.errors import DataError
    from facesr.paths import benchmarks_dir, data_root, workspace

    if only is not None and only not in NAMES:
        raise DataError(f"unknown benchmark {only!r}; choose from {', '.join(NAMES)}")
    names = NAMES if only is None else (only,)
    prep_root = Path(prepared) if prepared else workspace() / "prepared"
    out_root = Path(out) if out else benchmarks_dir()
    skipped = {name: why for name in names if (why := unbuildable_reason(name, prep_root))}
    if only is not None and skipped:
        raise DataError(skipped[only])
    todo = [n for n in names if n not in skipped]
    if not todo:
        raise DataError(
            f"no complete prepared set under {str(prep_root)!r} yet; run `facesr prepare utkface` "
            "(UTK-Mask x2/x4/x8, a few minutes) and/or `facesr prepare celeba10k --all-test` (CelebA-10k), "
            "then `facesr benchmarks build`"
        )
    data_dir = data_root(data)
    hint = "utk-mask-x4" if "utk-mask-x4" in todo else todo[0]  # the main task first
    for name in todo:
        path = build_benchmark(name, prep_root, out_root, data_dir)
        click.echo(f"{name}: built {path}")
    for why in skipped.values():
        click.echo(f"skipped {why}", err=True)
    click.echo(
        f"built {len(todo)} of {len(names)} benchmarks"
        + (f" (skipped: {', '.join(skipped)})" if skipped else "")
        + f"; next: `{_eval_hint(hint)}`"
    )


@benchmarks_group.command("verify")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Benchmarks folder (default: workspace/benchmarks).",
)
def benchmarks_verify(out: str | None) -> None:
    """Check every benchmark file against its SHA256SUMS."""
    from facesr.data.benchmarks import NAMES, unbuildable_reason, verify_benchmark
    from facesr.errors import DataError
    from facesr.paths import benchmarks_dir, workspace

    root = Path(out) if out else benchmarks_dir()
    found = [n for n in NAMES if (root / n).is_dir()]
    if not found:
        first = (
            ""
            if unbuildable_reason("utk-mask-x4", workspace() / "prepared") is None
            else "`facesr prepare utkface`, then "
        )
        raise DataError(f"no benchmarks under {str(root)!r}; run {first}`facesr benchmarks build`")
    for name in found:
        n = verify_benchmark(root / name)
        click.echo(f"{name}: {n} files OK")


@click.command("preview")
@click.option("--n", "n", default=8, show_default=True, type=click.IntRange(1, 64), help="Faces to show.")
@click.option(
    "-o",
    "--output",
    default="workspace/preview.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Image to write: PNG, or JPEG (quality 92, 4:4:4) for a .jpg path.",
)
@click.option(
    "--prepared",
    default=None,
    type=click.Path(file_okay=False),
    help="Prepared set folder (default: workspace/prepared/utkface).",
)
@click.option("--data", default=None, help="Face data root (mask templates).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test", "all"]))
@click.option("--scale", default=4, show_default=True, type=click.Choice(["4", "8"]))
@click.option("--seed", default=0, show_default=True, type=int)
def preview_cmd(
    n: int, output: str, prepared: str | None, data: str | None, split: str, scale: str, seed: int
) -> None:
    """Contact sheet: HR, masked HR, masked LR, clean LR, mask, heatmaps, parsing for N faces."""
    from facesr.data.preview import write_preview
    from facesr.paths import data_root, prepared_dir

    prep = Path(prepared) if prepared else prepared_dir("utkface")
    path = write_preview(
        prep, Path(output), n=n, split=split, scale=int(scale), seed=seed, data=data_root(data)
    )
    click.echo(f"contact sheet written to {path}")


def _eval_hint(benchmark: str) -> str:
    """`facesr eval` of the default model on a built benchmark folder (celeba10k is scored as celeba10k-x4)."""
    from facesr.restoration.api import DEFAULT_MODELS

    name = "celeba10k-x4" if benchmark == "celeba10k" else benchmark
    scale = int(name[-1])
    model = DEFAULT_MODELS.get(scale, f"bicubic-x{scale}")
    return f"facesr eval --model {model} --benchmark {name}"


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(prepare_cmd)
    group.add_command(benchmarks_group)
    group.add_command(preview_cmd)
