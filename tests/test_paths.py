"""Where facesr puts caches: the user's cache folder, never the folder the user stands in (issue 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesr.paths import cache_dir


def test_cache_dir_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESR_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir("onnx") == tmp_path / "c" / "onnx"


def test_cache_dir_follows_xdg_and_is_not_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACESR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    path = cache_dir("onnx")
    assert path.is_absolute()
    if path.parts[:1] != ("/",) or "xdg" not in path.parts:  # not Linux: platformdirs' own choice
        pytest.skip(f"platform cache folder is {path}")
    assert path == tmp_path / "xdg" / "facesr" / "onnx"


def test_ort_cache_goes_to_the_user_cache_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX graph of the ORT engine lands under XDG_CACHE_HOME; the current folder stays empty."""
    pytest.importorskip("onnxruntime")
    from torch import nn

    from facesr.restoration.engine import OrtRestorer
    from facesr.zoo import Restorer

    tiny = Restorer(nn.Sequential(nn.Upsample(scale_factor=4), nn.Conv2d(3, 3, 1)), name="tiny", scale=4)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("FACESR_CACHE", raising=False)
    monkeypatch.delenv("FACESR_WORKSPACE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    OrtRestorer(tiny)
    assert list(cwd.iterdir()) == []
    assert list(cache_dir("onnx").glob("*.onnx"))
