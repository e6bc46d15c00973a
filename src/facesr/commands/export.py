"""`facesr export`: write a restorer as ONNX and check it against PyTorch with onnxruntime.

The export itself lives in :mod:`facesr.restoration.onnx` (the restore engine uses it too); this module
is only the command. Heavy imports stay inside the command body so that ``facesr --help`` stays fast.
"""

from __future__ import annotations

import click

# Only the standard library at import time (so this keeps ``facesr --help`` fast, like click itself).
from facesr.restoration.onnx import OPSET


def register(group: click.Group) -> None:
    """Add ``facesr export``."""

    @group.command("export")
    @click.argument("model")
    @click.option(
        "--onnx",
        "onnx_path",
        type=click.Path(dir_okay=False),
        required=True,
        help="Where to write the .onnx file.",
    )
    @click.option(
        "--scale",
        type=click.Choice(["4", "8"]),
        default=None,
        help="Scale (needed for 'bicubic'; checked against the weights otherwise).",
    )
    @click.option("--opset", type=int, default=OPSET, show_default=True, help="ONNX opset version.")
    def export_cmd(model: str, onnx_path: str, scale: str | None, opset: int) -> None:
        """Export MODEL (a zoo name or .safetensors path) to ONNX and verify it with onnxruntime."""
        from facesr.errors import ModelError
        from facesr.restoration.onnx import export_onnx, verify_onnx
        from facesr.zoo import load_model

        restorer = load_model(model, scale=int(scale) if scale else None)
        try:
            export_onnx(restorer, onnx_path, opset=opset)
        except Exception as exc:  # exporter failures are reported as one line
            raise ModelError(f"ONNX export of {model!r} failed: {exc.__class__.__name__}: {exc}") from None
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            click.echo(
                f"wrote {onnx_path} (not verified: onnxruntime is not installed; pip install facesr[onnx])"
            )
            return
        diff = verify_onnx(restorer, onnx_path)
        click.echo(
            f"wrote {onnx_path}: {restorer.name} x{restorer.scale}, input 1x3x{restorer.lr_size}x"
            f"{restorer.lr_size} (dynamic batch); onnxruntime vs PyTorch max abs diff {diff:.2e}"
        )
