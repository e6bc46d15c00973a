"""``facesr eval``, ``facesr report`` and ``facesr bench`` (see facesr.cli).

Only click and the standard library are imported here; torch and the evaluation code are imported
inside the command bodies so that ``facesr --help`` stays fast.
"""

from __future__ import annotations

import shlex
import sys

import click

from facesr.eval.names import BENCHMARK_NAMES, CR_BENCHMARKS


def _command_line() -> str:
    return "facesr " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "facesr"


@click.command("eval")
@click.option(
    "--model", "model_name", default=None, help="Zoo name (bicubic, jdsr-lite-x4...) or a .safetensors path."
)
@click.option(
    "--images",
    type=click.Path(file_okay=False),
    default=None,
    help="Score a folder of restored 128x128 PNGs named <id>.png instead of running a model "
    "(how peers are scored).",
)
@click.option("--name", default=None, help="Name of the method when scoring --images (file name stem).")
@click.option("--label", default=None, help="Row label in RESULTS.md (default: the model name).")
@click.option(
    "--kind",
    type=click.Choice(["facesr", "baseline", "peer"]),
    default=None,
    help="Row kind (default: baseline for bicubic, peer for --images, else facesr).",
)
@click.option("--notes", default=None, help="Free text stored with the result (e.g. a peer's licence).")
@click.option("--benchmark", type=click.Choice(BENCHMARK_NAMES), required=True)
@click.option(
    "--input",
    "input_kind",
    type=click.Choice(["masked", "clean"]),
    default="masked",
    show_default=True,
    help="Model input: the masked LR (the task) or the unmasked LR.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the result JSON (default: <workspace>/results, never a tracked file). "
    "Maintainers pass --out results to update the repository's results/ for facesr report.",
)
@click.option("--limit", type=int, default=None, help="Score only the first N faces (smoke tests).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option(
    "--benchmarks-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding the frozen benchmarks (default: workspace/benchmarks).",
)
@click.option("--no-identity", is_flag=True, help="Skip identity cosine, FRD and verification.")
def eval_cmd(
    model_name: str | None,
    images: str | None,
    name: str | None,
    label: str | None,
    kind: str | None,
    notes: str | None,
    benchmark: str,
    input_kind: str,
    out_dir: str | None,
    limit: int | None,
    device: str | None,
    batch_size: int,
    benchmarks_root: str | None,
    no_identity: bool,
) -> None:
    """Score a model (or restored faces) on a frozen benchmark; write the result JSON.

    Needs the frozen benchmarks: `facesr prepare utkface`, then `facesr benchmarks build`.
    """
    from pathlib import Path

    import torch

    from facesr.errors import FacesrError
    from facesr.eval.results import markdown_table, write_result
    from facesr.eval.runner import NO_IDENTITY, evaluate, load_eval_set
    from facesr.eval.tables import row_from_arch
    from facesr.paths import cache_dir, workspace

    if (model_name is None) == (images is None):
        raise FacesrError("give exactly one of --model or --images")
    if images is not None and not name:
        raise FacesrError("--images needs --name (the method's name in the results)")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # Default to the (git-ignored) workspace: a user's eval must not rewrite the tracked results/.
    out_dir = out_dir or str(workspace() / "results")
    if benchmark in CR_BENCHMARKS:  # no frozen folder: genuine faces + prepared UTKFace (docs/cr.md)
        from facesr.eval.genuine import eval_command
        from facesr.eval.tables import cr_table

        if model_name is None:
            raise FacesrError(f"--benchmark {benchmark} scores a --model (no --images)")
        path, doc = eval_command(
            benchmark,
            model_name,
            name=name,
            label=label,
            kind=kind,
            notes=notes,
            out_dir=out_dir,
            limit=limit,
            device=dev,
            command=_command_line(),
        )
        click.echo(cr_table([doc]), nl=False)
        click.echo(f"wrote {path} ({doc['protocol']['n_faces']} faces, {doc['run']['wall_time_s']:.1f} s)")
        return
    evalset = load_eval_set(benchmark, root=benchmarks_root)
    restorer = None
    if model_name is not None:
        from facesr.zoo import load_model

        restorer = load_model(model_name, scale=evalset.scale, device=dev)
        model = {"name": name or getattr(restorer, "name", model_name)}
        model["kind"] = kind or ("baseline" if model["name"].startswith("bicubic") else "facesr")
        meta = getattr(restorer, "meta", {}) or {}
        if meta.get("facesr.arch"):
            model["arch"] = meta["facesr.arch"]
            model["arch_args"] = meta.get("facesr.args", "")
            model["row"] = row_from_arch(model["name"], meta["facesr.arch"], meta.get("facesr.args", ""))
        if Path(model_name).suffix == ".safetensors":
            from facesr.zoo import sha256_file

            model["weights_sha256"] = sha256_file(model_name)
    else:
        model = {"name": name, "kind": kind or "peer", "images": str(images)}
    if label:
        model["label"] = label
    if notes:
        model["notes"] = notes
    result = evaluate(
        evalset,
        restorer=restorer,
        images=Path(images) if images else None,
        model=model,
        input_kind=input_kind,
        batch_size=batch_size,
        device=dev,
        limit=limit,
        face_id=NO_IDENTITY if no_identity else None,
        progress=True,
        command=_command_line(),
        cache_dir=cache_dir("eval"),
    )
    path = write_result(result, out_dir)
    click.echo(markdown_table([{k: v for k, v in result.items() if not k.startswith("_")}]), nl=False)
    click.echo(f"wrote {path} ({result['protocol']['n_faces']} faces, {result['run']['wall_time_s']:.1f} s)")


@click.command("report")
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="Folder of facesr-eval/2 JSON files.",
)
@click.option("--out", default="RESULTS.md", show_default=True, type=click.Path(dir_okay=False))
@click.option(
    "--grid-dir",
    default="docs/img",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the comparison grids go (grid_<benchmark>.png).",
)
@click.option("--no-grids", is_flag=True, help="Write RESULTS.md only.")
def report_cmd(results_dir: str, out: str, grid_dir: str, no_grids: bool) -> None:
    """Regenerate RESULTS.md (and the comparison grids) from the result JSON files."""
    from facesr.eval.report import generate

    path, grids = generate(results_dir, out, None if no_grids else grid_dir)
    click.echo(f"wrote {path}" + "".join(f"\nwrote {g}" for g in grids))


@click.command("bench")
@click.option(
    "--models",
    default=None,
    help="Comma-separated model names (zoo names, .safetensors paths, or arch specs such as "
    "jdsr:size=lite). Default: bicubic, every zoo model, and the JDSR lite/paper "
    "architectures with untrained weights (speed does not depend on weights).",
)
@click.option("--scales", default="4,8", show_default=True)
@click.option("--out", default="BENCHMARKS.md", show_default=True, type=click.Path(dir_okay=False))
@click.option(
    "--json-out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the raw measurements to this JSON file.",
)
@click.option("--batch-size", type=int, default=16, show_default=True, help="CPU throughput batch.")
@click.option("--gpu-batch-size", type=int, default=128, show_default=True)
@click.option("--repeats", type=int, default=10, show_default=True, help="Timed repeats per measurement.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--no-gpu", is_flag=True, help="Skip the GPU measurements even when CUDA is available.")
@click.option("--no-levers", is_flag=True, help="Skip the CPU inference-lever tables (docs/speed.md).")
@click.option("--no-peers", is_flag=True, help="Skip the peers side by side.")
@click.option("--quality-faces", type=int, default=16, show_default=True, help="UTK-Mask faces per lever.")
@click.option("--lever-scales", default="4", show_default=True, help="Scales for the lever/peer tables.")
@click.option(
    "--train",
    "train_config",
    default=None,
    help="Also time the training-step levers with this config (e.g. configs/jdsr_lite_x4.yaml).",
)
@click.option("--train-batch", type=int, default=4, show_default=True)
@click.option("--train-steps", type=int, default=3, show_default=True)
@click.option("--train-tiny", is_flag=True, help="Training levers with very narrow nets (code paths only).")
@click.option(
    "--gpu-json",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Fold in the tables of a scripts/gpu_speed.sh result (gpu_speed.json).",
)
def bench_cmd(
    models: str | None,
    scales: str,
    out: str,
    json_out: str | None,
    batch_size: int,
    gpu_batch_size: int,
    repeats: int,
    threads: int | None,
    no_gpu: bool,
    no_levers: bool,
    no_peers: bool,
    quality_faces: int,
    lever_scales: str,
    train_config: str | None,
    train_batch: int,
    train_steps: int,
    train_tiny: bool,
    gpu_json: str | None,
) -> None:
    """Measure parameters, GFLOPs/face, CPU latency/throughput and memory (and GPU speed); write BENCHMARKS.md."""
    from facesr.errors import FacesrError
    from facesr.speed.bench import run_bench

    try:
        scale_list = [int(s) for s in scales.split(",") if s.strip()]
    except ValueError:
        raise FacesrError(f"--scales must be comma-separated integers, got {scales!r}") from None
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    path = run_bench(
        names,
        scale_list,
        out=out,
        json_out=json_out,
        batch_size=batch_size,
        gpu_batch_size=gpu_batch_size,
        repeats=repeats,
        threads=threads,
        gpu=not no_gpu,
        command=_command_line(),
        levers=not no_levers,
        lever_scales=tuple(int(s) for s in lever_scales.split(",") if s.strip()),
        quality_faces=quality_faces,
        peers=not no_peers,
        train=(
            {
                "config": train_config,
                "batch": train_batch,
                "steps": train_steps,
                "warmup": 1,
                "tiny": train_tiny,
            }
            if train_config
            else None
        ),
        gpu_json=gpu_json,
    )
    click.echo(path.read_text(encoding="utf-8"), nl=False)
    click.echo(f"wrote {path}")


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(eval_cmd)
    group.add_command(report_cmd)
    group.add_command(bench_cmd)
