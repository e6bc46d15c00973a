"""Down-sampling matches the named reference, Pillow BICUBIC, within 1/255."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.io import read_image
from facesr.pixels import quantise_half_up
from facesr.resample import downsample, resize, resize_matrix

FIX = Path(__file__).parent / "fixtures" / "data"


def _faces() -> list[np.ndarray]:
    faces = [
        np.asarray(Image.fromarray(read_image(p)).resize((128, 128), Image.Resampling.LANCZOS))
        for p in sorted((FIX / "utk").glob("*.jpg"))
    ]
    rng = np.random.default_rng(1)
    faces.append(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))  # worst case: noise, hard edges
    return faces


@pytest.mark.parametrize("scale", [4, 8])
def test_downsample_matches_pillow_bicubic(scale: int) -> None:
    for face in _faces():
        x = torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float() / 255
        y = downsample(x, scale)
        assert y.shape == (1, 3, 128 // scale, 128 // scale)
        ref = np.asarray(Image.fromarray(face).resize((128 // scale,) * 2, Image.Resampling.BICUBIC))
        got = y[0].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - ref).max() <= 1.0
        assert np.abs(quantise_half_up(y)[0].permute(1, 2, 0).numpy().astype(int) - ref).max() <= 1


def test_float_path_matches_pillow_mode_f() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((128, 96)).astype(np.float32)
    ref = np.asarray(Image.fromarray(a, "F").resize((24, 32), Image.Resampling.BICUBIC))
    got = resize(torch.from_numpy(a), (32, 24)).numpy()
    assert np.abs(got - ref).max() < 1e-5


def test_rows_sum_to_one_and_batched_equals_single() -> None:
    np.testing.assert_allclose(resize_matrix(128, 16).sum(1), 1.0, atol=1e-12)
    x = torch.rand(5, 3, 128, 128)
    np.testing.assert_allclose(downsample(x, 4)[2:3].numpy(), downsample(x[2:3], 4).numpy(), atol=1e-6)


def test_bad_scale_is_an_error() -> None:
    with pytest.raises(ValueError):
        downsample(torch.rand(1, 3, 100, 100), 8)
