"""Alignment, scale rule, colour matching and paste-back of the restore pipeline."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facesr.geometry import template
from facesr.restoration.pipeline import (
    MAX_REDUCE,
    align_face,
    choose_lr_size,
    colour_match,
    native_frame,
    paste_back,
    paste_region,
    to_tensor,
)


def test_native_frame_is_the_template_frame_side_in_the_photo() -> None:
    for side in (16.0, 37.5, 200.0):
        lm = template(128) * side / 128 + [10.0, 20.0]
        assert abs(native_frame(lm) - side) < 1e-6 * side + 1e-3


def test_each_face_goes_to_the_largest_input_that_does_not_enlarge_it() -> None:
    sizes = [16, 32, 64]
    assert choose_lr_size(10, sizes) == 16  # smaller than every input: the smallest
    assert choose_lr_size(20, sizes) == 16 and choose_lr_size(31, sizes) == 32  # 10 % tolerance
    assert choose_lr_size(40, sizes) == 32 and choose_lr_size(63, sizes) == 64
    assert choose_lr_size(64 * MAX_REDUCE, sizes) == 64
    assert choose_lr_size(64 * MAX_REDUCE + 1, sizes) is None  # too large for every model: kept
    assert choose_lr_size(40, [16, 32]) == 32 and choose_lr_size(46, [16, 32]) is None


def test_align_of_an_aligned_face_is_the_antialiased_downsample() -> None:
    """A 128 image whose landmarks are the template: warping it to 32 px = antialiased bicubic."""
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (1, 3, 16, 16))
    big = F.interpolate(torch.tensor(img, dtype=torch.float32), size=(128, 128), mode="bilinear")
    lr = align_face(big, template(128), 32)
    ref = F.interpolate(big, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    assert lr.shape == (1, 3, 32, 32)
    assert (lr - ref).abs().max() < 2e-3


def test_colour_match_fixes_a_global_colour_cast() -> None:
    lr = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    sr = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    cast = (sr * 0.9 + 0.08).clamp(0, 1)
    fixed = colour_match(cast, lr)
    assert (fixed - sr).abs().mean() < 0.5 * (cast - sr).abs().mean()


def test_paste_back_leaves_everything_outside_the_face_regions_unchanged() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    before = photo.copy()
    faces = [
        template(128) * 0.3 + [40, 60],
        (template(128) - 64) @ np.array([[0.9, 0.4], [-0.4, 0.9]]) * 0.5 + [250, 150],
        template(128) * 0.2 + [370, 270],
    ]  # the last one hangs over the border
    touched = np.zeros(photo.shape[:2], bool)
    for lm in faces:
        sr = torch.rand(1, 3, 128, 128)
        paste_back(photo, sr, lm)
        x0, y0, x1, y1 = paste_region(lm, photo.shape[:2]).region
        touched[y0:y1, x0:x1] = True
    assert touched.any() and not touched.all()
    assert np.array_equal(photo[~touched], before[~touched])
    changed = (photo != before).any(2)
    assert changed[touched].mean() > 0.3  # the faces were really pasted


def test_paste_back_of_the_aligned_input_is_nearly_invisible() -> None:
    """Restoring with an identity 'model' (the LR crop up-sampled) leaves no visible seam."""
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 255, (30, 40, 3))
    photo = np.asarray(
        F.interpolate(torch.tensor(base).permute(2, 0, 1)[None], size=(240, 320), mode="bilinear")[0]
        .permute(1, 2, 0)
        .round()
        .clamp(0, 255)
        .byte()
        .numpy()
    )
    before = photo.copy()
    lm = template(128) * 0.5 + [100, 60]
    lr = align_face(to_tensor(photo), lm, 64)
    sr = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    paste_back(photo, colour_match(sr, lr), lm)
    diff = np.abs(photo.astype(int) - before.astype(int))
    assert diff.max() <= 12 and diff.mean() < 0.5


class _NaNUnderAutocast(torch.nn.Module):
    """Finite in fp32, NaN whenever autocast is on: exercises the precision fallback."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=4, mode="nearest")
        if torch.is_autocast_enabled("cpu"):
            return up * float("nan")
        return up


def test_low_precision_non_finite_output_falls_back_to_fp32() -> None:
    import pytest

    from facesr.restoration.pipeline import run_model

    lr = torch.rand(3, 3, 32, 32)
    with pytest.warns(RuntimeWarning, match="not finite"):
        out, fell_back = run_model(_NaNUnderAutocast(), lr, "bf16", batch_size=2)
    assert fell_back and torch.isfinite(out).all() and out.shape == (3, 3, 128, 128)
    out32, fb32 = run_model(_NaNUnderAutocast(), lr, "fp32", batch_size=2)
    assert not fb32 and torch.equal(out, out32)


def test_aligned_mode_restores_the_whole_crop() -> None:
    from facesr.restoration.api import restore

    crop = (np.random.default_rng(3).uniform(0, 255, (40, 40, 3))).astype(np.uint8)
    res = restore(crop, model="bicubic", device="cpu", aligned=True)
    assert res.image.shape == (128, 128, 3) and res.faces[0].scale == 4  # 40 px crop -> x4 by the size rule
