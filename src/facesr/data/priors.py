"""Face-prior targets from 68 landmarks: Gaussian heatmaps and landmark-derived parsing maps.

PAPER (JDSR-GAN, via FSRNet): the SR module predicts facial priors (landmark heatmaps and parsing
maps at 64x64) and is supervised with them. PROPOSAL (ours): no face-parsing network or labels
can be had offline, so the parsing maps here are **landmark-derived parsing**: polygons and an
ellipse drawn from the dlib-68 points of the clean HR face. They are geometric approximations,
not segmentations; name them as such in results.

Parsing classes (channel order, :data:`PARSING_CLASSES`; "left" = image left):

====  ==================  ==============================================================
 0    background          outside the head ellipse
 1    skin                jaw line (0-16) closed over a forehead arc raised above the brows
 2    left brow           brow points 17-21 thickened downwards
 3    right brow          brow points 22-26 thickened downwards
 4    left eye            eye contour 36-41
 5    right eye           eye contour 42-47
 6    nose                bridge top 27, alae and nostrils 31-35, widened at the top
 7    upper lip           outer 48-54 over inner 60-64
 8    lower lip           outer 54-59,48 under inner 64-67,60
 9    mouth interior      inner lip contour 60-67
10    hair-or-other       inside the head ellipse but not skin (hair, ears, neck, headwear)
====  ==================  ==============================================================

Later classes win where polygons overlap (eyes over skin, etc.). Maps are rendered at 2x and
average-pooled, so each pixel holds class *fractions* that sum to 1 (soft one-hot).
All functions work batched, on the landmarks' device; landmarks are in the 128 px frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facesr.geometry import HR_SIZE

PARSING_CLASSES = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "lower_lip",
    "mouth_interior",
    "hair_or_other",
)
HR = HR_SIZE  # the 128x128 template frame (facesr.geometry)


def _to_frame(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """128-frame pixel-centre coordinates -> a ``size`` frame."""
    return (landmarks.float() + 0.5) * (size / HR) - 0.5


def heatmaps(landmarks: torch.Tensor, size: int = 64, sigma: float = 1.0) -> torch.Tensor:
    """``[N, 68, size, size]`` Gaussians (peak 1 at the landmark) for landmarks in the 128 frame."""
    pts = _to_frame(landmarks, size)
    ar = torch.arange(size, device=landmarks.device, dtype=torch.float32)
    dx = (ar[None, None, :] - pts[..., 0:1]) ** 2  # [N,68,W]
    dy = (ar[None, None, :] - pts[..., 1:2]) ** 2  # [N,68,H]
    inv = -1.0 / (2.0 * sigma * sigma)
    return torch.exp(dy[..., :, None] * inv) * torch.exp(dx[..., None, :] * inv)


def _inside_many(polys: list[torch.Tensor], xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Even-odd point-in-polygon for several polygons ``[N, K_i, 2]`` on a pixel grid -> ``[N, P, H, W]``.

    Per row, the x positions where polygon edges cross that row are sorted, and each pixel
    counts the crossings to its right with ``searchsorted``: O(W log K) per row instead of O(W K).
    Polygons are padded to one vertex count by repeating their last vertex (zero-length edges
    never cross a row).
    """
    k = max(p.shape[1] for p in polys)
    padded = torch.stack([torch.cat([p, p[:, -1:].expand(-1, k - p.shape[1], -1)], 1) for p in polys], 1)
    x0, y0 = padded[..., 0], padded[..., 1]  # [N,P,K]
    nxt = padded.roll(-1, 2)
    x1, y1 = nxt[..., 0], nxt[..., 1]
    yy = ys[None, None, None, :]  # rows
    y0e, y1e, x0e, x1e = y0[..., None], y1[..., None], x0[..., None], x1[..., None]
    straddles = (y0e > yy) != (y1e > yy)  # [N,P,K,H]
    denom = torch.where((y1e - y0e).abs() < 1e-9, torch.full_like(y1e, 1e-9), y1e - y0e)
    x_cross = x0e + (yy - y0e) * (x1e - x0e) / denom
    x_cross = torch.where(straddles, x_cross, torch.full_like(x_cross, float("-inf")))
    x_sorted = x_cross.permute(0, 1, 3, 2).sort(-1).values  # [N,P,H,K]
    n, p, h, _ = x_sorted.shape
    flat = x_sorted.reshape(-1, k).contiguous()
    q = xs[None, :].expand(flat.shape[0], -1).contiguous()
    below = torch.searchsorted(flat, q, right=True, out_int32=True)  # crossings with x_cross <= x
    right = k - below  # crossings to the right of the pixel
    return (right & 1).bool().reshape(n, p, h, len(xs))


def _polygons(lm: torch.Tensor) -> list[torch.Tensor]:
    """The class polygons (index = class - 1 for classes 1..9) from 128-frame landmarks ``[N,68,2]``."""
    jaw = lm[:, 0:17]
    brow_l, brow_r = lm[:, 17:22], lm[:, 22:27]
    eye_d = (lm[:, 42:48].mean(1) - lm[:, 36:42].mean(1)).norm(dim=-1)[:, None, None]
    up = torch.tensor([0.0, 1.0], device=lm.device)
    # Forehead: the brow line (reversed, right to left) raised by 0.6 eye distances.
    brows = lm[:, list(range(26, 16, -1))]
    forehead = brows - up * 0.6 * eye_d
    skin = torch.cat([jaw, forehead], 1)
    thick = up * 0.12 * eye_d
    b_l = torch.cat([brow_l, brow_l.flip(1) + thick], 1)
    b_r = torch.cat([brow_r, brow_r.flip(1) + thick], 1)
    side = torch.tensor([1.0, 0.0], device=lm.device) * 0.12 * eye_d
    nose = torch.cat([lm[:, 27:28] - side, lm[:, 31:36], lm[:, 27:28] + side], 1)
    nose = torch.cat([nose[:, :1], lm[:, 31:32] - side, nose[:, 1:-1], lm[:, 35:36] + side, nose[:, -1:]], 1)
    upper = torch.cat([lm[:, 48:55], lm[:, [64, 63, 62, 61, 60]]], 1)
    lower = torch.cat([lm[:, 54:60], lm[:, 48:49], lm[:, 60:61], lm[:, [67, 66, 65, 64]]], 1)
    inner = lm[:, 60:68]
    return [skin, b_l, b_r, lm[:, 36:42], lm[:, 42:48], nose, upper, lower, inner]


def _head_ellipse(lm: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Head region ``[N,H,W]``: an ellipse spanning the jaw width (+15 %) from the chin to well above the brows."""
    jaw = lm[:, 0:17]
    left, right = jaw[..., 0].min(1).values, jaw[..., 0].max(1).values
    chin = lm[:, 8, 1]
    brow = lm[:, 17:27, 1].min(1).values
    cx = (left + right) / 2
    ax = (right - left) / 2 * 1.15
    top = brow - 0.9 * (chin - brow)
    cy = (chin + top) / 2
    ay = (chin - top) / 2
    dx = (xs[None, None, :] - cx[:, None, None]) / ax[:, None, None]
    dy = (ys[None, :, None] - cy[:, None, None]) / ay[:, None, None]
    return dx * dx + dy * dy <= 1.0


def parsing_maps(landmarks: torch.Tensor, size: int = 64, supersample: int = 2) -> torch.Tensor:
    """``[N, 11, size, size]`` landmark-derived parsing (soft one-hot; classes in the module docstring)."""
    r = size * supersample
    lm = _to_frame(landmarks, r)
    grid = torch.arange(r, device=landmarks.device, dtype=torch.float32)
    polys = _polygons(lm)
    inside = _inside_many(polys, grid, grid)  # [N,9,r,r]
    cls = torch.arange(1, len(polys) + 1, device=landmarks.device)[None, :, None, None]
    label = (inside * cls).amax(1)  # the highest class wins
    head = _head_ellipse(lm, grid, grid)
    label = torch.where((label == 0) & head, torch.full_like(label, 10), label)
    onehot = F.one_hot(label, len(PARSING_CLASSES)).permute(0, 3, 1, 2).float()
    if supersample > 1:
        onehot = F.avg_pool2d(onehot, supersample)
    return onehot


#: Landmark index permutation for a horizontal flip (dlib-68): left and right swap.
FLIP_68 = (
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # left eye <- right eye
    + [39, 38, 37, 36, 41, 40]  # right eye <- left eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


def flip_landmarks(landmarks: torch.Tensor, width: int = HR) -> torch.Tensor:
    """Landmarks of the horizontally flipped image (x mirrored, left/right points swapped)."""
    out = landmarks[:, FLIP_68].clone()
    out[..., 0] = (width - 1) - out[..., 0]
    return out
