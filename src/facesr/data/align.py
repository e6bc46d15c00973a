"""Similarity-align a face to the fixed 5-point template (:data:`facesr.geometry.TEMPLATE_128`).

Why pre-reduce then warp: an affine warp samples the source at one point per output pixel, so
shrinking a 200 px face to 128 px with a plain bicubic warp aliases (jagged hair, moiré). We first
shrink the whole image with Pillow's antialiased (area-aware) bicubic ``resize`` by the warp's
scale, then apply the remaining near-unit-scale rotation+shift with a bicubic warp. Upscaling
(CelebA-10k) goes straight through the bicubic warp.

Why reflect padding: the 128 px frame (forehead to chin, cheeks and ears) can reach outside a
tight crop; reflecting the border fills it with plausible skin/hair/background instead of black,
which would otherwise become a strong artificial edge for the models to learn. The fraction of
each output that came from outside the source (:attr:`Aligned.outside`) is recorded so that
heavily padded faces can be found later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from facesr.geometry import alignment_transform, apply_affine, five_from_68, invert_affine


@dataclass(frozen=True)
class Aligned:
    """An aligned face: image, the 68 landmarks in its frame, the source->output matrix, padding share."""

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray
    outside: float


def alignment_matrix(landmarks68: np.ndarray, size: int) -> np.ndarray:
    """``2 x 3`` similarity taking source pixel coordinates onto the template at ``size`` (pixel centres)."""
    return alignment_transform(five_from_68(landmarks68), size)


def outside_fraction(matrix: np.ndarray, src_hw: tuple[int, int], size: int) -> float:
    """Share of output pixels whose centre maps outside the source image."""
    inv = invert_affine(matrix)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    src = apply_affine(inv, np.stack([xs.ravel(), ys.ravel()], 1))
    h, w = src_hw
    inside = (src[:, 0] >= -0.5) & (src[:, 0] <= w - 0.5) & (src[:, 1] >= -0.5) & (src[:, 1] <= h - 0.5)
    return float(1.0 - inside.mean())


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` (H x W x 3 uint8) by ``matrix`` (source -> output, pixel centres) to ``size``.

    Antialiased when shrinking (see module docstring); out-of-frame pixels are reflected.
    """
    m = np.asarray(matrix, dtype=np.float64)
    img = Image.fromarray(image)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 1.0:
        w0, h0 = img.size
        new = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        img = img.resize(new, Image.Resampling.BICUBIC, reducing_gap=None)
        rx, ry = new[0] / w0, new[1] / h0
        # x' = (x + 0.5) * r - 0.5 maps old pixel centres to new ones; compose its inverse into m.
        to_new = np.array([[rx, 0.0, 0.5 * rx - 0.5], [0.0, ry, 0.5 * ry - 0.5]])
        m = _compose(m, invert_affine(to_new))
    inv = invert_affine(m)  # output -> source (pixel centres)
    w, h = img.size
    corners = apply_affine(
        inv, np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    )
    margin = int(np.ceil(max(0.0, -corners.min(), corners[:, 0].max() - w, corners[:, 1].max() - h))) + 4
    arr = np.asarray(img)
    while margin > 0:  # reflect padding must be smaller than the image side; repeat if needed
        step = min(margin, min(arr.shape[:2]) - 1)
        arr = np.pad(arr, ((step, step), (step, step), (0, 0)), mode="reflect")
        margin -= step
        inv[:, 2] += step
    # Pillow's affine data maps output continuous coordinates (pixel centres at +0.5) to input ones.
    a = inv[:, :2]
    t = inv[:, 2] + 0.5 - a @ np.array([0.5, 0.5])
    data = (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1])
    out = Image.fromarray(arr).transform(
        (size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC
    )
    return np.asarray(out, dtype=np.uint8).copy()


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer o inner`` for 2 x 3 affine matrices."""
    full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return full[:2]


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = 128) -> Aligned:
    """Align ``image`` so that its 5 derived points fall on the template at ``size``."""
    m = alignment_matrix(landmarks68, size)
    out = warp(image, m, size)
    lm = apply_affine(m, landmarks68).astype(np.float32)
    return Aligned(image=out, landmarks=lm, matrix=m, outside=outside_fraction(m, image.shape[:2], size))
