"""``facesr gpu TOOL [options]``: the lent-GPU tools of :mod:`facesr.gpu`, one sub-command each.

Each tool keeps its own argparse options (``facesr gpu session -h``), so the arguments are passed through
untouched; the tool is imported only when it runs, keeping ``facesr --help`` fast.
"""

from __future__ import annotations

import importlib

import click

#: sub-command -> what it does (the module is facesr.gpu.<name>)
TOOLS = {
    "pack": "Pack the prepared faces, mask templates and wheels into .gpu/ (run here, before a GPU run).",
    "unpack": "Re-create the prepared set from .gpu/ on the GPU machine (no dlib), checked exactly.",
    "session": "A whole GPU training session: start | continue | finish (idempotent).",
    "speed": "Every speed lever on the GPU: training step, inference, batch sweep, memory.",
    "check": "Quick held-out PSNR/SSIM of a training run's weights vs bicubic (not the frozen benchmark).",
}
_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def register(group: click.Group) -> None:
    """Add ``facesr gpu`` and its tools."""

    @group.group("gpu")
    def gpu() -> None:
        """Tools for a lent GPU machine (docs/training.md, docs/speed.md)."""

    for name, summary in TOOLS.items():

        @gpu.command(
            name, help=summary + " Options: facesr gpu " + name + " -h.", context_settings=_PASS_THROUGH
        )
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def tool(args: tuple[str, ...], name: str = name) -> None:
            importlib.import_module(f"facesr.gpu.{name}").main(list(args))
