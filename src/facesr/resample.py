"""Antialiased bicubic resizing in torch that reproduces Pillow's ``Image.resize(..., BICUBIC)``.

Reference: Pillow (``PIL.Image.Resampling.BICUBIC``, ``src/libImaging/Resample.c``,
``precompute_coeffs``): a separable cubic convolution kernel with ``a = -0.5`` whose support is
stretched by the scale factor when shrinking (this stretching *is* the antialiasing), with the
weights of taps that fall outside the image dropped and the rest renormalised (no padding).
MATLAB's ``imresize`` uses the same kernel and stretching but pads by symmetric reflection, so
the two differ only in the outermost pixels.

Why a matrix: for fixed sizes the resampling is a linear map per axis, ``y = A_h x A_w^T``; we
build ``A`` once in float64 exactly as Pillow does and apply it with two matmuls, which is exact,
batched and runs on any device inside a training step. Pillow rounds to 8 bits after each pass
and uses fixed-point weights, so results agree to within 1/255 (tested in
``tests/test_resample.py``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

BICUBIC_A = -0.5


def _cubic(x: np.ndarray, a: float = BICUBIC_A) -> np.ndarray:
    x = np.abs(x)
    return np.where(
        x < 1.0,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0),
    )


@functools.lru_cache(maxsize=64)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``out_size x in_size`` float64 matrix of Pillow's bicubic weights along one axis."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    mat = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        xs = np.arange(xmin, xmax)
        w = _cubic((xs - center + 0.5) / filterscale)
        total = w.sum()
        if total != 0.0:
            w = w / total
        mat[xx, xmin:xmax] = w
    return mat


def resize(x: torch.Tensor, size: tuple[int, int] | int, *, uint8_intermediate: bool = False) -> torch.Tensor:
    """Resize ``[..., H, W]`` float images in [0, 1] to ``size`` (h, w) with Pillow's bicubic.

    ``uint8_intermediate=False`` reproduces Pillow's float (mode ``F``) path to ~1e-5.
    ``uint8_intermediate=True`` also rounds and clips to 8 bits between the width and height
    passes, as Pillow does for RGB images: without it the two differ by up to ~2-4 levels at
    strong edges, where the first pass overshoots and Pillow clips it.
    No final clamping: bicubic overshoots slightly; ``downsample`` clamps.
    """
    h_out, w_out = (size, size) if isinstance(size, int) else size
    h_in, w_in = x.shape[-2:]
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    a_h = torch.as_tensor(resize_matrix(h_in, h_out), dtype=dt, device=x.device)
    a_w = torch.as_tensor(resize_matrix(w_in, w_out), dtype=dt, device=x.device)
    y = torch.matmul(x.to(dt), a_w.T)  # width pass first, as Pillow does
    if uint8_intermediate:
        y = torch.round(y * 255.0).clamp_(0.0, 255.0) / 255.0
    return torch.matmul(a_h, y)


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic down-sampling by an integer ``scale`` (x4: 128->32, x8: 128->16), in [0, 1].

    Matches ``PIL.Image.resize((w // scale, h // scale), Image.Resampling.BICUBIC)`` on 8-bit RGB
    within 1/255 (the 8-bit intermediate rounding of Pillow is reproduced).
    """
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not divisible by scale {scale}")
    return resize(x, (h // scale, w // scale), uint8_intermediate=True).clamp_(0.0, 1.0)
