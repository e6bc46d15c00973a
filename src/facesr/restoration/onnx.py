"""ONNX export of a restorer, and its check against PyTorch with onnxruntime (the inference layer).

The exported graph is the :class:`facesr.zoo.Restorer` (input ``lr``: N x 3 x h x w RGB in [0, 1];
output ``sr``: N x 3 x 128 x 128 in [0, 1]) with a dynamic batch axis. It lives here, not in the
``facesr export`` command, because the ONNX Runtime restore engine (:mod:`facesr.restoration.engine`)
exports too, and the inference layer must not depend on a CLI module. torch and onnxruntime are
imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPSET = 17


#: File descriptors 1 and 2 belong to the whole process: two threads redirecting them at once would
#: save each other's /dev/null as "the original" and leave the process silent for good (issue 17:
#: two first demo requests). The lock makes the redirection (and so the export) one at a time.
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """Silence file descriptors 1 and 2 (C++ logging included) for the duration of the block."""
    with _QUIET_LOCK:
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
