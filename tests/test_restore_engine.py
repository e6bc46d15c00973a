"""The restore engine: ONNX Runtime on the CPU gives the same photo as PyTorch, and is picked by auto."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.errors import FacesrError
from facesr.restoration.api import model_installed, restore
from facesr.restoration.engine import resolve_engine

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"


def test_resolve_engine() -> None:
    cpu = torch.device("cpu")
    assert resolve_engine("torch", cpu, "fp32") == "torch"
    assert resolve_engine("auto", cpu, "bf16") == "torch"  # ORT path is fp32 only
    assert resolve_engine("auto", torch.device("cuda"), "fp32") == "torch"
    with pytest.raises(FacesrError, match="unknown engine"):
        resolve_engine("tensorrt", cpu, "fp32")
    with pytest.raises(FacesrError, match="not usable"):
        resolve_engine("ort", torch.device("cuda"), "fp32")


def test_ort_engine_restores_the_same_photo_as_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    if not model_installed("jdsr-lite-x4"):
        pytest.skip("jdsr-lite-x4 weights are not installed")
    monkeypatch.setenv("FACESR_CACHE", str(tmp_path))  # the ONNX cache goes here
    photo = sorted(SAMPLES.glob("*.jpg"))[0]
    a = restore(photo, model="jdsr-lite-x4", device="cpu", engine="torch")
    b = restore(photo, model="jdsr-lite-x4", device="cpu", engine="ort")
    assert len(b.restored) == len(a.restored) > 0  # same faces found and restored
    diff = np.abs(a.image.astype(int) - b.image.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding flips at most a few pixels by 1
    assert list((tmp_path / "onnx").glob("*.onnx"))  # exported once, cached by weights hash
    assert resolve_engine("auto", torch.device("cpu"), "fp32") == "ort"
