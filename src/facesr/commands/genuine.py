"""`facesr genuine build`: the genuine low-resolution face set for CR (see facesr.data.genuine).

Heavy imports (torch, the detector) stay inside the command body so `facesr --help` is fast.
"""

from __future__ import annotations

import json

import click

from facesr.commands.helpfmt import FullHelpGroup


@click.group("genuine", cls=FullHelpGroup)
def genuine() -> None:
    """Genuine (real-camera) low-resolution faces for Characteristic Regularisation."""


@genuine.command("build")
@click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False),
    default=None,
    help="Face data folder (default: FACESR_DATA or ../shared/data).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (default: <workspace>/genuine).",
)
@click.option(
    "--max-size",
    type=float,
    default=32.0,
    show_default=True,
    help="Largest native face (MTCNN box side, px) kept for the train/test genuine split.",
)
@click.option(
    "--train-max-size",
    type=float,
    default=64.0,
    show_default=True,
    help="Faces up to this size (and above --max-size) are added to the train split only.",
)
@click.option(
    "--min-size",
    type=float,
    default=8.0,
    show_default=True,
    help="Smaller detections are rejected as too small.",
)
@click.option("--min-score", type=float, default=0.95, show_default=True, help="MTCNN score threshold.")
@click.option(
    "--min-sharpness",
    type=float,
    default=1.5,
    show_default=True,
    help="Mean |Laplacian| of the grey 16x16 crop (0-255) below which a face is 'too blurred'.",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.3,
    show_default=True,
    help="Share of photos (with a small face) whose faces form the test split.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--source",
    "sources",
    multiple=True,
    default=("rwmfd", "web_unmasked"),
    show_default=True,
    help="Sub-folders of the data folder to scan (repeatable).",
)
@click.option("--limit", type=int, default=None, help="Only the first N photos per source (quick runs).")
def build(
    data: str | None,
    out: str | None,
    max_size: float,
    train_max_size: float,
    min_size: float,
    min_score: float,
    min_sharpness: float,
    test_fraction: float,
    seed: int,
    sources: tuple[str, ...],
    limit: int | None,
) -> None:
    """Detect small faces in real photos, align them to the 16x16 template, split and report."""

    from facesr.data.genuine import GenuineConfig, build_genuine
    from facesr.errors import ConfigError
    from facesr.paths import data_root, workspace

    if not 0.0 <= test_fraction <= 1.0:
        raise ConfigError(f"--test-fraction must be in [0, 1], got {test_fraction}")
    if min_size > max_size:
        raise ConfigError(f"--min-size ({min_size}) is larger than --max-size ({max_size})")
    cfg = GenuineConfig(
        max_size=max_size,
        train_max_size=max(train_max_size, max_size),
        min_size=min_size,
        min_score=min_score,
        min_sharpness=min_sharpness,
        test_fraction=test_fraction,
        seed=seed,
        sources=list(sources),
    )
    out_dir = out or str(workspace() / "genuine")
    report = build_genuine(data_root(data), out_dir, cfg, limit=limit)
    summary = {k: report[k] for k in ("photos", "faces_kept", "faces_train", "faces_test")}
    summary["per_source_kept"] = {s: v["kept"] for s, v in report["per_source"].items()}
    click.echo(json.dumps(summary))
    click.echo(f"wrote {out_dir}/lr16.npy, meta.jsonl, split.npy, report.json")


@genuine.command("summary")
@click.option(
    "--genuine",
    "genuine_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Built genuine-LR folder (default: <workspace>/genuine).",
)
def summary_cmd(genuine_dir: str | None) -> None:
    """Print the counts and size histograms of a built genuine-LR set as Markdown."""
    from pathlib import Path

    from facesr.data.genuine import summary_markdown
    from facesr.errors import DataError
    from facesr.paths import workspace

    path = Path(genuine_dir or workspace() / "genuine") / "report.json"
    if not path.is_file():
        raise DataError(f"{path} not found; run `facesr genuine build` first")
    click.echo(summary_markdown(json.loads(path.read_text(encoding="utf-8"))), nl=False)


@genuine.command("eval")
@click.option(
    "--method",
    "methods",
    multiple=True,
    required=True,
    metavar="NAME=MODEL",
    help="A method to score: NAME=zoo name or .safetensors path; NAME=bicubic for the baseline.",
)
@click.option(
    "--genuine",
    "genuine_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Built genuine-LR folder (default: <workspace>/genuine).",
)
@click.option(
    "--prepared",
    "prepared_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Prepared UTKFace folder with faces64.npy (default: <workspace>/prepared/utkface).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Result folder (default: <workspace>/results; maintainers pass --out results, which "
    "`facesr report` reads).",
)
@click.option("--limit", type=int, default=None, help="Score only the first N faces of each set.")
def eval_cmd(
    methods: tuple[str, ...],
    genuine_dir: str | None,
    prepared_dir: str | None,
    out_dir: str | None,
    limit: int | None,
) -> None:
    """Score several methods on genuine-lr and utk-art-x4 in one process.

    Writes the same files as `facesr eval --benchmark genuine-lr|utk-art-x4 --model MODEL --name NAME`
    for each method (the reference embeddings are computed once). `facesr report` turns them into
    the CR section of RESULTS.md and the grid docs/img/grid_genuine-lr.png.
    """
    import shlex
    import sys

    from facesr.errors import ConfigError
    from facesr.eval.genuine import run_genuine_eval
    from facesr.paths import cache_dir as user_cache
    from facesr.paths import prepared_dir as _prepared
    from facesr.paths import workspace

    parsed = []
    for m in methods:
        name, sep, spec = m.partition("=")
        if not sep or not name or not spec:
            raise ConfigError(f"--method {m!r} must look like NAME=MODEL")
        parsed.append((name, spec))
    paths = run_genuine_eval(
        parsed,
        genuine_dir=genuine_dir or workspace() / "genuine",
        prepared_dir=prepared_dir or _prepared("utkface"),
        out_dir=out_dir or workspace() / "results",
        limit=limit,
        command="facesr " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        cache_dir=user_cache("eval"),
    )
    for path in paths:
        click.echo(f"wrote {path}")


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(genuine)
