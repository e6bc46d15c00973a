"""`facesr export`: write a restorer as ONNX and check it against PyTorch with onnxruntime.

The exported graph is the :class:`facesr.zoo.Restorer` (input ``lr``: N x 3 x h x w RGB in [0, 1];
output ``sr``: N x 3 x 128 x 128 in [0, 1]) with a dynamic batch axis. Heavy imports stay inside the
functions so that ``facesr --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

OPSET = 17


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """Silence file descriptors 1 and 2 (C++ logging included) for the duration of the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "w") as null:
            for fd in saved:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, keep in saved.items():
            os.dup2(keep, fd)
            os.close(keep)


def export_onnx(restorer: Any, path: str | Path, *, opset: int = OPSET) -> None:
    """Export ``restorer`` (a facesr.zoo.Restorer) to ``path`` atomically (TorchScript-based exporter)."""
    import warnings

    import torch

    from facesr.io import atomic_path

    restorer = restorer.eval().cpu()
    dummy = torch.rand(1, 3, restorer.lr_size, restorer.lr_size)
    # dynamo=False: the torch.export-based exporter needs onnxscript, which facesr does not depend on;
    # the TorchScript exporter handles these static graphs (it warns that it is deprecated). Its C++
    # side dumps the whole graph to stdout on failure; _quiet_output keeps the error to one line.
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings(), _quiet_output():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            restorer,
            (dummy,),
            str(tmp),
            input_names=["lr"],
            output_names=["sr"],
            opset_version=opset,
            dynamic_axes={"lr": {0: "batch"}, "sr": {0: "batch"}},
            dynamo=False,
        )


def verify_onnx(restorer: Any, path: str | Path, *, batch: int = 2, seed: int = 0) -> float:
    """Max abs difference between onnxruntime and PyTorch on a random batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, restorer.lr_size, restorer.lr_size, generator=gen)
    with torch.no_grad():
        ref = restorer.eval().cpu()(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["sr"], {"lr": x.numpy()})
    return float(np.abs(out - ref).max())


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
