"""ONNX Runtime on the CPU, fp32 or with int8 dynamic quantisation, behind the Runner interface.

Why ONNX Runtime: it fuses conv + activation and picks its own CPU kernels, which on a small
2-core machine can beat PyTorch eager at batch 1. Why int8 *dynamic* quantisation through ORT and
not ``torch.ao.quantization.quantize_dynamic``: PyTorch's dynamic quantisation covers Linear/LSTM
layers only, and these restorers are all convolutions; ORT's ``quantize_dynamic`` turns Conv into
ConvInteger (weights int8, activations quantised per call). Whether that keeps the picture is
measured, not assumed (mean abs vs fp32 and PSNR in the lever table).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.errors import FacesrError


class OrtRestorer:
    """``OrtRestorer(restorer)(lr01) -> sr01``: the restorer exported to ONNX, run by onnxruntime."""

    def __init__(self, restorer: Any, *, int8: bool = False, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise FacesrError("the ort levers need onnxruntime (pip install facesr[onnx])") from None
        from facesr.commands.export import export_onnx

        self._tmp = tempfile.TemporaryDirectory(prefix="facesr-ort-")  # removed with this object
        path = Path(self._tmp.name) / "model.onnx"
        export_onnx(restorer, path)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = path.with_name("model.int8.onnx")
            quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
            path = q
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out,) = self.session.run(["sr"], {"lr": arr})
        return torch.from_numpy(out)
