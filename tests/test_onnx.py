"""The JDSR generator exports to ONNX and onnxruntime reproduces PyTorch."""

from __future__ import annotations

import pytest

from facesr.nets.jdsr import JDSRGenerator
from facesr.restoration.onnx import export_onnx, verify_onnx
from facesr.zoo import Restorer

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("scale", [4, 8])
def test_lite_onnx_matches_pytorch(tmp_path, scale: int) -> None:
    net = JDSRGenerator("lite", scale).eval()
    restorer = Restorer(net, name="jdsr-lite", scale=scale, output_key="sr")
    path = tmp_path / f"jdsr_x{scale}.onnx"
    export_onnx(restorer, path)
    diff = verify_onnx(restorer, path, batch=2)
    print(f"x{scale} onnxruntime vs PyTorch max abs diff {diff:.2e}")
    assert diff <= 1e-4, f"max abs diff {diff}"


def test_export_cli_roundtrip(tmp_path) -> None:
    from facesr.cli import main
    from facesr.zoo import save_weights

    net = JDSRGenerator("lite", 8).eval()
    weights = tmp_path / "m.safetensors"
    save_weights(net, weights, arch="jdsr", args={"size": "lite", "scale": 8}, scale=8, output_key="sr")
    out = tmp_path / "m.onnx"
    assert main(["export", str(weights), "--onnx", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 100_000
    assert main(["export", str(weights), "--onnx", str(out), "--scale", "4"]) == 2  # scale mismatch: one line
