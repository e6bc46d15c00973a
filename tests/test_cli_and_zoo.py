"""The CLI shell and the model zoo contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facesr import zoo
from facesr.cli import main
from facesr.errors import ModelError
from facesr.nets.registry import register_arch


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "facesr" in capsys.readouterr().out
    assert main(["--help"]) == 0


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2


def test_import_is_light() -> None:
    code = (
        "import sys, facesr; "
        "bad = [m for m in sys.modules if m.startswith(('facesr.data', 'facesr.train', 'facesr.nets', 'torch'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_bicubic_restorer_shapes() -> None:
    for scale in (4, 8):
        model = zoo.load_model("bicubic", scale=scale)
        lr = torch.rand(2, 3, 128 // scale, 128 // scale)
        sr = model(lr)
        assert sr.shape == (2, 3, 128, 128) and sr.min() >= 0 and sr.max() <= 1


def test_unknown_model_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        zoo.load_model("no-such-model")
    with pytest.raises(ModelError, match="not found"):
        zoo.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="needs a scale"):
        zoo.load_model("bicubic")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a readable"):
        zoo.load_model(bad)


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    @register_arch("_test_conv")
    def _build(width: int = 4) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Upsample(scale_factor=4),
            torch.nn.Conv2d(3, width, 3, padding=1),
            torch.nn.Conv2d(width, 3, 3, padding=1),
        )

    net = _build(width=5)
    path = tmp_path / "m.safetensors"
    zoo.save_weights(net, path, arch="_test_conv", args={"width": 5}, scale=4, dtype=None)
    model = zoo.load_model(path)
    lr = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model(lr), net(lr).clamp(0, 1))
    with pytest.raises(ModelError, match="x4"):
        zoo.load_model(path, scale=8)


def test_zoo_hash_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "m.safetensors").write_bytes(b"corrupt")
    (weights / "zoo.json").write_text(
        '{"models": [{"name": "m-x4", "file": "m.safetensors", "sha256": "00", "scale": 4, "task": "masked"},'
        ' {"name": "gone-x4", "file": "gone.safetensors", "sha256": "00", "scale": 4, "task": "masked"}]}'
    )
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "ZOO_FILE", weights / "zoo.json")
    with pytest.raises(ModelError, match="sha256"):
        zoo.load_model("m-x4")
    with pytest.raises(ModelError, match="missing"):
        zoo.load_model("gone-x4")


def test_public_restore_is_the_function_even_after_the_pipeline_is_imported() -> None:
    """Regression: a subpackage named ``facesr.restore`` used to shadow the ``restore`` function."""
    code = (
        "import facesr.restoration.pipeline, facesr.commands.restore\n"
        "from facesr import restore, load_model, list_models\n"
        "import inspect, sys\n"
        "sys.exit(0 if inspect.isfunction(restore) and callable(load_model) and callable(list_models) else 1)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
