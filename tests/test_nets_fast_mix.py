"""``jdsr_fast_x2_mix``: the 64 px composite (x2 everywhere, x4 where its denoiser removes a mask)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facesr.nets.fast import build_jdsr_fast
from facesr.nets.fast_mix import (
    JDSRFastX2Mix,
    build_jdsr_fast_x2_mix,
    build_jdsr_fast_x4_mix,
    half_matrix,
    lower_face_ramp,
)
from facesr.resample import resize

ROOT = Path(__file__).resolve().parents[1]


def _mix(low: float = 0.015, high: float = 0.06, **gate: float) -> JDSRFastX2Mix:
    torch.manual_seed(0)
    x2, x4 = {"size": "fast"}, {"unet_up": "bilinear"}
    return build_jdsr_fast_x2_mix(x2=x2, x4=x4, low=low, high=high, **gate).eval()


class _PaintsLowerFace(torch.nn.Module):
    """A stand-in x4 denoiser that changes rows 16-31 of a 32 px face by 0.3 (a "mask" it removes)."""

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = lr.clone()
        out[..., 16:, :] += 0.3
        return torch.zeros_like(lr), out


def test_half_matrix_is_the_training_bicubic() -> None:
    x = torch.rand(2, 3, 64, 64)
    a = half_matrix()
    assert torch.allclose(a @ x @ a.T, resize(x, 32), atol=1e-5)


def test_ramp_keeps_the_eyes_out() -> None:
    ramp = lower_face_ramp().flatten()
    assert ramp[:10].max() == 0.0  # brows and eyes (the eyes sit at row ~8.8 of the 32 px template)
    assert ramp[14:].min() == 1.0  # nose to chin


def test_untouched_face_is_the_x2_output() -> None:
    """An untrained x4 denoiser is the identity: no change, blend 0, the output is the x2 part's exactly."""
    net = _mix()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64))
    assert out["sr"].shape == (2, 3, 128, 128) and out["blend"].shape == (2, 1, 128, 128)
    assert float(out["blend"].abs().max()) == 0.0
    assert torch.equal(out["sr"], out["sr_x2"])


def test_a_removed_mask_takes_the_x4_output_below_the_eyes_only() -> None:
    net = _mix()
    net.x4.denoiser = _PaintsLowerFace()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    m = out["blend"][0, 0]
    assert float(m[80:].min()) == 1.0  # the "mask" rows, upsampled x4
    assert float(m[:36].max()) == 0.0  # eyes and above stay the x2 output
    low = out["sr"][..., 80:, :]
    # sr2 + 1 * (sr4 - sr2) is sr4 up to float rounding (a few ulps, depending on the CPU's kernels)
    assert torch.allclose(low, out["sr_x4"][..., 80:, :], atol=1e-6)


class _PaintsAMoustache(torch.nn.Module):
    """A stand-in x4 denoiser that changes a 3x4 patch under the nose by 0.3 (a moustache it "removes")."""

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = lr.clone()
        out[..., 20:23, 14:18] += 0.3
        return torch.zeros_like(lr), out


def test_the_face_gate_keeps_a_small_repainted_patch_out() -> None:
    """Per pixel the patch is a "mask" (map 1 there without the gate), but the face's lower-face score is
    far below the gate, so the face stays the x2 output; a whole lower face changed passes the gate."""
    net = _mix()
    net.x4.denoiser = _PaintsAMoustache()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert float(out["gate"][0]) == 0.0 and float(out["blend"].max()) == 0.0
    assert torch.equal(out["sr"], out["sr_x2"])
    ungated = _mix(gate_low=0.0, gate_high=1e-3)
    ungated.x4.denoiser = _PaintsAMoustache()
    with torch.no_grad():
        assert float(ungated(torch.rand(1, 3, 64, 64))["blend"].max()) == 1.0
    net.x4.denoiser = _PaintsLowerFace()
    with torch.no_grad():
        assert float(net(torch.rand(1, 3, 64, 64))["gate"][0]) == 1.0


def test_bad_parts_and_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="x2 and an x4"):
        JDSRFastX2Mix(build_jdsr_fast(scale=4), build_jdsr_fast(scale=4))
    with pytest.raises(ValueError, match="low < high"):
        _mix(low=0.1, high=0.05)


def test_onnx_matches_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from facesr.restoration.onnx import export_onnx, verify_onnx
    from facesr.zoo import Restorer

    net = _mix(low=0.0, high=0.02)
    torch.nn.init.normal_(net.x4.denoiser.unet.out.weight, std=0.1)  # a denoiser that changes the face
    restorer = Restorer(net, name="t", scale=2, output_key="sr")
    path = tmp_path / "mix.onnx"
    export_onnx(restorer, path)
    assert verify_onnx(restorer, path, batch=2) < 1e-4


def test_x4_mix_is_the_clean_part_where_no_mask_is_seen() -> None:
    torch.manual_seed(0)
    net = build_jdsr_fast_x4_mix(clean={"size": "fast"}, joint={"unet_up": "bilinear"}).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32))
    assert out["sr"].shape == (2, 3, 128, 128)
    assert torch.equal(out["sr"], out["sr_clean"])  # identity denoiser: no change, blend 0
    net.joint.denoiser = _PaintsLowerFace()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32))
    assert torch.allclose(out["sr"][..., 80:, :], out["sr_joint"][..., 80:, :])


def _part(tmp_path: Path, arch: str, args: dict) -> Path:
    from facesr.zoo import build_arch, save_weights

    path = tmp_path / f"{arch}_x{args['scale']}.safetensors"
    save_weights(build_arch(arch, args), path, arch=arch, args=args, scale=args["scale"], output_key="sr")
    return path


@pytest.mark.parametrize("kind", ["x2", "x4"])
def test_compose_script_builds_a_loadable_file_from_two_parts(tmp_path: Path, kind: str) -> None:
    """scripts/compose_mix.py: two trained files in, one zoo file out, every key used, parts named."""
    from safetensors import safe_open

    from facesr.zoo import load_model

    masker = _part(tmp_path, "jdsr_fast", {"size": "fast", "scale": 4, "unet_up": "bilinear"})
    base = (
        _part(tmp_path, "jdsr_fast", {"size": "fast", "scale": 2})
        if kind == "x2"
        else _part(tmp_path, "jdsr_fast_sr_only", {"size": "fast", "scale": 4})
    )
    out = tmp_path / "mix"
    script = str(ROOT / "scripts/compose_mix.py")
    cmd = [sys.executable, script, kind, "--base", str(base), "--masker", str(masker), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    model = load_model(out / "weights.safetensors")
    size = 64 if kind == "x2" else 32
    assert (model.lr_size, model.hr_size, model.scale) == (size, 128, 128 // size)
    with safe_open(str(out / "weights.safetensors"), framework="pt") as fh:
        keys, meta = set(fh.keys()), fh.metadata()
    assert keys == set(model.net.state_dict())
    assert meta["facesr.arch"] == f"jdsr_fast_{kind}_mix"
    assert '"unet_up": "bilinear"' in meta["facesr.args"]  # each part keeps its own args
    assert str(masker.name) in meta["facesr.parts"] and str(base.name) in meta["facesr.parts"]
    assert f"jdsr_fast_{kind}_mix" in (out / "card.md").read_text()
    swapped = [sys.executable, script, kind, "--base", str(masker), "--masker", str(base), "-o", str(out)]
    refused = subprocess.run(swapped, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "not a jdsr_fast" in refused.stderr


def test_compose_drops_the_maskers_own_gate(tmp_path: Path) -> None:
    """A gated x4 file (the shipped one since session 9) composes into an x2 mix whose x4 part is ungated:
    the mix gates once, on the raw denoiser change, with its own thresholds."""
    from facesr.zoo import load_model

    gated = {"size": "fast", "scale": 4, "gate_low": 750.0, "gate_high": 1100.0}
    masker = _part(tmp_path, "jdsr_fast", gated)
    base = _part(tmp_path, "jdsr_fast", {"size": "fast", "scale": 2})
    out = tmp_path / "mix"
    cmd = [
        sys.executable,
        str(ROOT / "scripts/compose_mix.py"),
        "x2",
        "--base",
        str(base),
        "--masker",
        str(masker),
    ]
    subprocess.run([*cmd, "--gate-low", "500", "--gate-high", "900", "-o", str(out)], check=True, timeout=300)
    net = load_model(out / "weights.safetensors").net
    assert net.x4.gate is None and (net.gate_low, net.gate_high) == (500.0, 900.0)
    assert load_model(masker).net.gate == (750.0, 1100.0)
