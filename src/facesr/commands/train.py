"""`facesr train`, `facesr combine-two-stage`, `facesr runs`, `facesr time-to-quality`.

Heavy imports stay inside command bodies."""

from __future__ import annotations

import click


def _split_args(args: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """First argument without ``=`` is the config file; every ``key.sub=value`` is an override."""
    config = None
    overrides = []
    for a in args:
        if "=" in a:
            overrides.append(a)
        elif config is None:
            config = a
        else:
            from facesr.errors import ConfigError

            raise ConfigError(f"unexpected argument {a!r}: overrides look like key.sub=value")
    return config, overrides


@click.command("train", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
@click.option(
    "--resume",
    "resume",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue the run in RUN_DIR from its last checkpoint (overrides still apply).",
)
@click.option(
    "--print-config", is_flag=True, help="Print the fully resolved config (with defaults) and exit."
)
def train_cmd(args: tuple[str, ...], resume: str | None, print_config: bool) -> None:
    """Train a model: `facesr train CONFIG.yaml [key.sub=value ...]`.

    Examples: `facesr train configs/jdsr_lite_x4.yaml optim.lr=2e-4 run.steps=20000`;
    `facesr train --resume workspace/runs/jdsr_lite_x4 run.steps=40000`;
    multi-GPU: `torchrun --nproc_per_node 4 -m facesr.cli train configs/jdsr_paper_x4.yaml`.
    """
    from facesr.config import dump
    from facesr.errors import ConfigError
    from facesr.train.config import load_train_config
    from facesr.train.loop import config_for_resume, train

    config, overrides = _split_args(args)
    if resume is not None:
        if config is not None:
            raise ConfigError("--resume takes the config from the run's checkpoint; pass only overrides")
        cfg = config_for_resume(resume, overrides)
    else:
        if config is None and not print_config:
            raise ConfigError("give a config file (e.g. configs/jdsr_lite_x4.yaml) or --resume RUN_DIR")
        cfg = load_train_config(config, overrides)
    if print_config:
        click.echo(dump(cfg), nl=False)
        return
    run_dir = train(cfg, resume=resume is not None)
    click.echo(f"run folder: {run_dir}")


@click.command("combine-two-stage")
@click.argument("denoiser", type=click.Path(dir_okay=False))
@click.argument("sr", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the chained jdsr_two_stage safetensors.",
)
def combine_cmd(denoiser: str, sr: str, output: str) -> None:
    """Chain a two_stage_denoiser run's denoiser.safetensors and a two_stage_sr run's weights."""
    from facesr.train.recipes.jdsr import combine_two_stage

    click.echo(f"wrote {combine_two_stage(denoiser, sr, output)}")


@click.command("runs")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def runs_cmd(run_dirs: tuple[str, ...]) -> None:
    """Markdown table of finished runs: recipe, steps, wall time, last logged losses."""
    from facesr.train.runs import runs_table

    click.echo(runs_table(list(run_dirs)), nl=False)


@click.command("time-to-quality")
@click.argument("logs", nargs=-1, required=True)
@click.option("--target", type=float, default=None, help="Target value (e.g. the two-stage PSNR).")
@click.option(
    "--reference", default=None, help="JSON with the metric, or a run whose last val record is the target."
)
@click.option("--metric", type=click.Choice(["val/psnr", "val/ssim"]), default="val/psnr", show_default=True)
def ttq_cmd(logs: tuple[str, ...], target: float | None, reference: str | None, metric: str) -> None:
    """Training time until each run's validation metric reached a target (run folders or log.jsonl)."""
    from facesr.errors import ConfigError
    from facesr.train.validate import time_to_quality_report

    if (target is None) == (reference is None):
        raise ConfigError("give exactly one of --target or --reference")
    for line in time_to_quality_report(list(logs), target=target, reference=reference, metric=metric):
        click.echo(line)


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    for command in (train_cmd, combine_cmd, runs_cmd, ttq_cmd):
        group.add_command(command)
