"""Which runtime executes the restorer in ``facesr.restore``: PyTorch eager or ONNX Runtime (CPU).

Why: on the 2-core CPU target, ONNX Runtime runs the lite JDSR generator several times faster
than PyTorch eager at batch 1 (its fused conv kernels; measured by ``facesr bench --levers``, see
docs/speed.md) with outputs equal to fp32 eager within float rounding. ``engine="auto"`` therefore
picks ONNX Runtime on the CPU when it is installed and the precision is fp32, and PyTorch
everywhere else (GPU, bf16/fp16, bicubic, or onnxruntime missing).

The ONNX export (a TorchScript trace, seconds) is paid once per weights file: the graph is cached
in the user's cache folder (``facesr.paths.cache_dir("onnx")``: ``FACESR_CACHE`` or
``~/.cache/facesr``, never the current folder), keyed by the weights' sha256 and the
torch/onnxruntime versions and written atomically, so later processes only open a session.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facesr.errors import FacesrError

ENGINES = ("auto", "torch", "ort")


def ort_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_engine(engine: str, device: torch.device, precision: str) -> str:
    """``auto`` -> ``ort`` on the CPU in fp32 when onnxruntime is installed, else ``torch``."""
    if engine not in ENGINES:
        raise FacesrError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "torch":
        return "torch"
    usable = device.type == "cpu" and precision == "fp32" and ort_available()
    if engine == "ort" and not usable:
        why = "onnxruntime is not installed" if not ort_available() else "it runs fp32 on the CPU only"
        raise FacesrError(f"engine ort is not usable here: {why}")
    return "ort" if usable else "torch"


def _weights_key(restorer: nn.Module) -> str:
    """A stable key for the graph: hash of the state dict bytes (cheap for these small models) and of
    everything else that changes the graph: versions, scale, ``output_key`` and the file's metadata
    (two files with the same tensors but another ``facesr.output_key`` must not share a graph)."""
    import json

    import onnxruntime

    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{onnxruntime.__version__}|{getattr(restorer, 'scale', 0)}".encode())
    h.update(f"|{getattr(restorer, 'output_key', None)}|".encode())
    h.update(json.dumps(dict(getattr(restorer, "meta", {}) or {}), sort_keys=True).encode())
    for k, v in restorer.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class OrtRestorer(nn.Module):
    """A Restorer look-alike (``name``, ``scale``, ``lr_size``, ``hr_size``, ``meta``) whose forward runs ORT.

    ``forward`` takes and returns float32 torch tensors in [0, 1] like the wrapped restorer; it
    holds no parameters of its own, so autocast and ``inference_mode`` around it are no-ops.
    """

    def __init__(
        self,
        restorer: nn.Module,
        cache_dir: Path | None = None,
        threads: int | None = None,
        *,
        int8: bool = False,
    ) -> None:
        super().__init__()
        import onnxruntime as ort

        from facesr.restoration.onnx import export_onnx

        self.name = getattr(restorer, "name", "model")
        self.scale = int(restorer.scale)
        self.lr_size = int(restorer.lr_size)  # the wrapped model's own sizes (facesr.zoo.Restorer)
        self.hr_size = int(restorer.hr_size)
        self.meta = dict(getattr(restorer, "meta", {}) or {})
        if cache_dir is None:
            from facesr.paths import cache_dir as user_cache

            cache_dir = user_cache("onnx")
        path = Path(cache_dir) / f"{_weights_key(restorer)}.onnx"
        if not path.is_file():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                export_onnx(restorer, path)
            except OSError:  # read-only cache folder: export into a private temporary folder instead
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="facesr-onnx-")
                path = Path(self._tmp.name) / path.name
                export_onnx(restorer, path)
        if int8:  # a measured lever only (facesr bench): ORT turns Conv into ConvInteger
            path = _quantised(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(lr.detach().float().cpu().numpy())
        (out,) = self.session.run(["sr"], {"lr": arr})
        return torch.from_numpy(out).to(lr.device)


def _quantised(path: Path) -> Path:
    """``path`` with int8 dynamic quantisation (weights int8, activations quantised per call), cached.

    Why ORT's and not ``torch.ao.quantization.quantize_dynamic``: PyTorch's dynamic quantisation covers
    Linear/LSTM only and these restorers are all convolutions. Whether it keeps the picture is measured
    by ``facesr bench`` (it does not: docs/speed.md), so restore never uses it.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from facesr.io import atomic_path

    out = path.with_name(path.stem + ".int8.onnx")
    if not out.is_file():
        with atomic_path(out) as tmp:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
    return out


def wrap(restorer: nn.Module, engine: str) -> Any:
    """The restorer itself (torch) or its ONNX Runtime twin (ort); bicubic always stays torch.

    A model that does not export (an operator ONNX lacks) stays on PyTorch with a warning: the
    engine is a speed choice, never a reason to fail a restore.
    """
    if engine != "ort" or not any(True for _ in restorer.parameters()):
        return restorer
    try:
        return OrtRestorer(restorer)
    except Exception as exc:
        import warnings

        msg = f"ONNX Runtime unavailable for {getattr(restorer, 'name', 'model')} ({type(exc).__name__}); using PyTorch"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return restorer
