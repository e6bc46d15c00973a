"""The face-level gate of ``jdsr_fast`` (an inference option) and ``scripts/gate_model.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from facesr.nets.fast import build_jdsr_fast, face_gate, lower_face_score

ROOT = Path(__file__).resolve().parents[1]


class _Paints(torch.nn.Module):
    """A stand-in denoiser that adds 0.3 to the rows and columns given (what it "removes")."""

    def __init__(self, rows: slice, cols: slice) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = lr.clone()
        out[..., self.rows, self.cols] += 0.3
        return torch.zeros_like(lr), out


def _net(**gate: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_jdsr_fast(scale=4, **gate).eval()


def test_the_score_is_the_mask_detectors_and_the_gate_ramps() -> None:
    from facesr.restoration.mask import lower_face_box

    lr = torch.rand(2, 3, 32, 32)
    den = lr.clone()
    y0, y1, x0, x1 = lower_face_box(32)
    den[1, :, y0:y1, x0:x1] += 0.1  # the whole box changed by 0.1: (25.5 levels)^2
    assert torch.allclose(lower_face_score(lr, den, 32), torch.tensor([0.0, 25.5**2]))
    g = face_gate(torch.tensor([0.0, 750.0, 925.0, 1100.0, 5000.0]), 750.0, 1100.0).flatten()
    assert torch.allclose(g, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_a_gated_face_is_super_resolved_from_its_own_pixels() -> None:
    lr = torch.rand(1, 3, 32, 32)
    net = _net(gate_low=750.0, gate_high=1100.0)
    net.denoiser = _Paints(slice(20, 23), slice(14, 18))  # a moustache-sized change: far below the gate
    with torch.no_grad():
        assert torch.equal(net(lr)["sr"], net.sr_module(lr))
    net.denoiser = _Paints(slice(16, 32), slice(0, 32))  # a whole lower face: above the gate
    with torch.no_grad():
        out = net(lr)
        assert torch.equal(out["sr"], net.sr_module(out["denoised"]))
    assert float((out["denoised"] - lr).abs().max()) > 0.29  # the denoiser's change went through
    ungated = _net()
    ungated.denoiser = _Paints(slice(20, 23), slice(14, 18))
    with torch.no_grad():  # without the gate the small change reaches the SR module
        assert not torch.equal(ungated(lr)["sr"], ungated.sr_module(lr))


def test_bad_gates_are_refused() -> None:
    with pytest.raises(ValueError, match="together"):
        build_jdsr_fast(gate_low=1.0)
    with pytest.raises(ValueError, match="low < high"):
        build_jdsr_fast(gate_low=2.0, gate_high=1.0)


def test_gated_onnx_matches_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from facesr.restoration.onnx import export_onnx, verify_onnx
    from facesr.zoo import Restorer

    net = _net(gate_low=0.0, gate_high=50.0)
    torch.nn.init.normal_(net.denoiser.unet.out.weight, std=0.05)  # a denoiser that changes the face
    restorer = Restorer(net, name="t", scale=4, output_key="sr")
    export_onnx(restorer, tmp_path / "g.onnx")
    assert verify_onnx(restorer, tmp_path / "g.onnx", batch=2) < 1e-4


def test_gate_model_writes_the_same_tensors_with_the_gate_on(tmp_path: Path) -> None:
    from facesr.zoo import load_model, save_weights

    run = tmp_path / "run"
    run.mkdir()
    args = {"size": "fast", "scale": 4}
    save_weights(_net(), run / "weights.safetensors", arch="jdsr_fast", args=args, scale=4, output_key="sr")
    (run / "card.md").write_text("# a run\n", encoding="utf-8")
    out = tmp_path / "gated"
    cmd = [sys.executable, str(ROOT / "scripts" / "gate_model.py"), str(run), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    with safe_open(str(out / "weights.safetensors"), framework="pt") as fh:
        assert json.loads(fh.metadata()["facesr.args"]) | args == {
            **args,
            "gate_low": 750.0,
            "gate_high": 1100.0,
        }
    assert load_model(out / "weights.safetensors").net.gate == (750.0, 1100.0)
    assert load_model(run / "weights.safetensors").net.gate is None
    assert "Face-level gate" in (out / "card.md").read_text(encoding="utf-8")
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
