"""Issue 14: a model carries its input and output size (``facesr.lr_size`` / ``facesr.hr_size``).

Shipped files written before those keys existed keep loading with the sizes they always had; new
files state theirs; a zoo entry may state them too; sizes that disagree with the scale are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from facesr import zoo
from facesr.errors import ModelError
from facesr.nets.registry import register_arch


class _Up(nn.Module):
    """One conv, then bilinear up-sampling by ``factor``: any input size works."""

    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=self.factor, mode="bilinear")


register_arch("_i14_up")(lambda factor=4: _Up(factor))


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def _rewrite(path: Path, drop: tuple[str, ...] = (), **meta: str) -> Path:
    """The same tensors with edited metadata (as an older or a hostile writer would leave them)."""
    merged = {k: v for k, v in _meta(path).items() if k not in drop}
    merged.update({f"facesr.{k}": v for k, v in meta.items()})
    save_file(load_file(str(path)), str(path), metadata=merged)
    return path


def _save(path: Path, factor: int = 4, **sizes: int) -> Path:
    zoo.save_weights(
        _Up(factor), path, arch="_i14_up", args={"factor": factor}, scale=factor, dtype=None, **sizes
    )
    return path


@pytest.mark.parametrize(
    ("name", "sizes", "keyed"),
    [("cr-x4", (16, 128), True), ("jdsr-lite-x4", (32, 128), False), ("jdsr-lite-x8", (16, 128), False)],
)
def test_shipped_files_keep_their_sizes(name: str, sizes: tuple[int, int], keyed: bool) -> None:
    """The lite files predate the size keys (legacy path); cr-x4 was re-shipped in session 7 with them."""
    entry = zoo.get_entry(name)
    assert entry is not None
    if not entry.path.is_file():
        pytest.skip(f"{entry.file} is not installed")
    meta = _meta(entry.path)
    if keyed:
        assert (meta["facesr.lr_size"], meta["facesr.hr_size"]) == tuple(map(str, sizes))
    else:
        assert "facesr.lr_size" not in meta and "facesr.hr_size" not in meta  # written before the keys
    assert entry.sizes == sizes  # from the header, without loading the tensors
    model = zoo.load_model(name)  # sha256 checked: the shipped file is unchanged
    assert (model.lr_size, model.hr_size) == sizes


def test_cr_input_comes_from_its_learned_part_not_from_scale_8() -> None:
    legacy_cr = {"facesr.scale": "8", "facesr.hr_native": "64", "facesr.learned_scale": "4"}
    assert zoo.model_sizes(legacy_cr, 8) == (16, 128)
    # the learned part says 16 px in; a scale that does not take 16 to 128 is a contradiction
    with pytest.raises(ModelError, match="disagree"):
        zoo.model_sizes(legacy_cr, 4)
    assert zoo.model_sizes({}, 4) == (32, 128)  # neither: the 128 px frame over the scale


def test_saved_sizes_are_written_and_read(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.safetensors", 4, lr_size=24, hr_size=96)
    meta = _meta(path)
    assert (meta["facesr.lr_size"], meta["facesr.hr_size"]) == ("24", "96")
    model = zoo.load_model(path)
    assert (model.scale, model.lr_size, model.hr_size) == (4, 24, 96)
    assert model(torch.rand(1, 3, 24, 24)).shape == (1, 3, 96, 96)
    default = zoo.load_model(_save(tmp_path / "d.safetensors", 8))
    assert _meta(tmp_path / "d.safetensors")["facesr.lr_size"] == "16" and default.hr_size == 128


def test_sizes_that_disagree_with_the_scale_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="disagree"):
        _save(tmp_path / "bad.safetensors", 4, lr_size=16)  # 16 x 4 is not 128
    assert not (tmp_path / "bad.safetensors").exists()
    path = _rewrite(_save(tmp_path / "m.safetensors"), lr_size="20")
    with pytest.raises(ModelError, match="disagree"):
        zoo.load_model(path)
    for bad, why in (("x", "whole number"), ("0", "out of range"), ("99999", "out of range")):
        with pytest.raises(ModelError, match=why):
            zoo.load_model(_rewrite(path, lr_size=bad))


def _fake_zoo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **entry: object) -> None:
    item = {"name": "tiny", "file": "tiny.safetensors", "sha256": "", "scale": 4, "task": "masked", **entry}
    (tmp_path / "zoo.json").write_text(json.dumps({"models": [item]}), encoding="utf-8")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(zoo, "ZOO_FILE", tmp_path / "zoo.json")


def test_zoo_entry_sizes_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _rewrite(_save(tmp_path / "tiny.safetensors"), drop=("facesr.lr_size", "facesr.hr_size"))
    _fake_zoo(monkeypatch, tmp_path, lr_size=24, hr_size=96)
    entry = zoo.get_entry("tiny")
    assert entry is not None and (entry.lr_size, entry.hr_size) == (24, 96)
    model = zoo.load_model("tiny")
    assert (model.lr_size, model.hr_size) == (24, 96)
    # a file that states other sizes than its entry is refused, not silently re-sized
    _rewrite(tmp_path / "tiny.safetensors", lr_size="32", hr_size="128")
    with pytest.raises(ModelError, match="zoo entry"):
        zoo.load_model("tiny")


def test_entry_without_a_file_falls_back_to_the_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_zoo(monkeypatch, tmp_path, scale=8)
    entry = zoo.get_entry("tiny")
    assert entry is not None and entry.sizes == (16, 128)


def test_speed_runner_uses_the_model_input_size() -> None:
    from facesr.speed.inference import Runner, parse_lever

    model = zoo.Restorer(zoo.Bicubic(4), name="b", scale=4, lr_size=24, hr_size=96)
    runner = Runner(model, parse_lever("fp32"), torch.device("cpu"), 1)
    assert runner.lr_size == 24
