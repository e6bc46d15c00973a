"""Heatmaps and landmark-derived parsing maps: shapes, peaks, classes where they belong."""

from __future__ import annotations

import numpy as np
import torch

from facesr.data.priors import FLIP_68, PARSING_CLASSES, flip_landmarks, heatmaps, parsing_maps


def _mean_face() -> torch.Tensor:
    """A plausible 68-point face in the 128 frame (ring jaw, brows, eyes, nose, mouth)."""
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)
    pts[0:17] = np.stack([64 - 46 * np.cos(t), 40 + 78 * np.sin(t)], 1)
    pts[17:22] = np.stack([np.linspace(26, 56, 5), [28, 24, 23, 24, 27]], 1)
    pts[22:27] = np.stack([np.linspace(72, 102, 5), [27, 24, 23, 24, 28]], 1)
    pts[27:31] = np.stack([[64] * 4, np.linspace(38, 60, 4)], 1)
    pts[31:36] = np.stack([np.linspace(55, 73, 5), [64, 66, 67, 66, 64]], 1)
    ang = np.linspace(0, 2 * np.pi, 7)[:-1]
    for c, sl in ((40.0, slice(36, 42)), (86.0, slice(42, 48))):
        pts[sl] = np.stack([c - 8 * np.cos(ang), 37 - 3 * np.sin(ang)], 1)
    ang = np.linspace(0, 2 * np.pi, 13)[:-1]
    pts[48:60] = np.stack([63 - 18 * np.cos(ang), 84 - 9 * np.sin(ang)], 1)
    ang = np.linspace(0, 2 * np.pi, 9)[:-1]
    pts[60:68] = np.stack([63 - 12 * np.cos(ang), 84 - 3 * np.sin(ang)], 1)
    return torch.tensor(pts, dtype=torch.float32)[None]


def test_heatmap_shape_and_peaks() -> None:
    lm = _mean_face()
    h = heatmaps(lm, 64, 1.0)
    assert h.shape == (1, 68, 64, 64)
    assert float(h.max()) <= 1.0
    for k in (8, 30, 36, 48):
        x, y = ((lm[0, k] + 0.5) / 2 - 0.5).round().long().tolist()
        flat = int(h[0, k].argmax())
        assert (flat // 64, flat % 64) == (y, x)


def test_parsing_classes_where_they_belong() -> None:
    lm = _mean_face()
    p = parsing_maps(lm, 64)
    assert p.shape == (1, len(PARSING_CLASSES), 64, 64) == (1, 11, 64, 64)
    assert torch.allclose(p.sum(1), torch.ones(1, 64, 64))
    label = p.argmax(1)[0]

    def at(point: torch.Tensor) -> str:
        x, y = ((point + 0.5) / 2 - 0.5).round().long().tolist()
        return PARSING_CLASSES[int(label[y, x])]

    assert at(lm[0, 36:42].mean(0)) == "left_eye"
    assert at(lm[0, 42:48].mean(0)) == "right_eye"
    assert at(lm[0, 60:68].mean(0)) == "mouth_interior"
    assert at(lm[0, 30]) == "nose"
    assert at(torch.tensor([40.0, 60.0])) == "skin"  # left cheek
    assert at(torch.tensor([2.0, 2.0])) == "background"
    assert at(lm[0, 19] + torch.tensor([0.0, 1.0])) == "left_brow"


def test_flip_permutation_is_an_involution() -> None:
    assert sorted(FLIP_68) == list(range(68))
    lm = _mean_face()
    assert torch.allclose(flip_landmarks(flip_landmarks(lm)), lm)
    f = flip_landmarks(lm)
    # After a flip, the (new) left eye is still on the image left.
    assert float(f[0, 36:42, 0].mean()) < float(f[0, 42:48, 0].mean())
