"""What a finished (or stopped) run leaves for people: a loss-curve PNG and a draft model card.

The card is a *draft*: it records what the training run knows (config, data, steps, hardware, wall
time, throughput, revision) and says plainly that benchmark scores come from ``facesr eval``, which
the lead runs before a model is listed in the zoo. No number in it is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.config import dump
from facesr.io import atomic_path, atomic_write_text
from facesr.train.config import TrainConfig


def write_loss_curve(log_path: Path, out: Path) -> None:
    """Plot every logged loss against the step (log scale) to a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facesr.train.runlog import iter_log

    records = [r for r in iter_log(log_path) if "event" not in r]
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        for k, v in r.items():
            if "/" in k and k.split("/")[0] in ("G", "D") and isinstance(v, (int, float)):
                xs, ys = series.setdefault(k, ([], []))
                xs.append(r["step"])
                ys.append(float(v))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (k, (xs, ys)) in enumerate(sorted(series.items())):
        ax = axes[1] if k.startswith("D/") else axes[0]
        if k.startswith("D/") or all(y > 0 for y in ys):
            ax.plot(xs, ys, label=k, lw=1, ls=("-", "--", ":")[(i // 10) % 3])  # 10 colours, then dashes
    axes[0].set_yscale("log")
    axes[0].set_title("generator losses")
    axes[1].set_title("critic (WGAN-GP)")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_card(
    run_dir: Path,
    cfg: TrainConfig,
    *,
    step: int,
    wall_s: float,
    images: int,
    world: int,
    device: torch.device,
    precision: str,
    revision: str,
    stopped_early: bool,
    generator: nn.Module,
    skipped: dict[str, int],
    data_desc: str = "",
) -> None:
    """Write ``card.md``: everything the training run itself knows, with the config verbatim."""
    from facesr.train.recipes import recipe_class
    from facesr.train.runlog import hardware, iter_log

    recipe = recipe_class(cfg.recipe.name)

    params = sum(p.numel() for p in generator.parameters())
    stop_note = ""
    if stopped_early:  # the loop stops early for one of two reasons; say which
        at_stop_step = cfg.run.stop_step is not None and step >= cfg.run.stop_step
        stop_note = " (stopped at run.stop_step)" if at_stop_step else " (stopped early by run.max_minutes)"
    last: dict[str, Any] = {}
    for r in iter_log(run_dir / "log.jsonl"):
        if "event" not in r:
            last = r
    ips = images / wall_s if wall_s > 0 else 0.0
    weights = run_dir / "weights.safetensors"
    size = f"{weights.stat().st_size / 2**20:.1f} MiB" if weights.is_file() else "n/a"
    lines = [
        f"# {cfg.run.name} (draft card written by `facesr train`)",
        "",
        f"* Recipe: `{cfg.recipe.name}`; architecture `{cfg.model.arch}` size `{cfg.model.size}`, x{cfg.data.scale}; "
        f"{params:,} generator parameters; weights file {size} (fp16 EMA of the generator).",
        f"* Data: {data_desc or cfg.data.prepared}, split `{cfg.data.split}`; degraded inputs synthesised per step.",
        f"* Steps: {step} of {cfg.run.steps}{stop_note}; global batch {cfg.data.batch_size}; {images:,} images seen.",
        f"* Hardware: {hardware()} x{world} process(es), {precision}; torch {torch.__version__}.",
        f"* Wall time: {wall_s / 60:.1f} min; mean throughput {ips:.2f} images/s (from the run's own clock).",
        f"* Updates skipped by the NaN/inf guard: {json.dumps(skipped)}.",
        f"* Source revision: `{revision}`.",
        f"* Benchmark scores: not measured by the training run. Run {recipe.benchmark_hint(cfg, weights)}.",
        "",
        "## Last logged losses",
        "",
        "```json",
        json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in last.items()}, indent=1),
        "```",
        "",
        "## Differences from the paper",
        "",
        *[f"* {d}" for d in recipe.card_differences],
        "",
        "## Config",
        "",
        "```yaml",
        dump(cfg).rstrip(),
        "```",
        "",
        "Files: `log.jsonl` (one JSON record per log interval), `loss_curve.png`, `images/latest.png`, `tb/`.",
        "",
    ]
    atomic_write_text(run_dir / "card.md", "\n".join(lines))
