"""Face geometry shared by data preparation, identity features and restoration.

Everything aligns faces to one fixed 5-point template (eye centres, nose tip, mouth corners) at
128x128; the 64x64 (CR) and LR frames are the same template scaled. Keeping this module free of
data-pipeline imports lets ``facesr.restore`` and the identity network use it cheaply.
"""

from __future__ import annotations

import numpy as np

HR_SIZE = 128

#: 5-point template at 128x128 (x, y): left eye centre, right eye centre, nose tip,
#: left mouth corner, right mouth corner ("left" = image left). FFHQ-style framing scaled to
#: 128 px: the whole face from forehead to chin fits, so masks (nose bridge to chin) are inside.
TEMPLATE_128 = np.array(
    [[48.25, 59.99], [79.73, 60.05], [64.16, 78.50], [50.32, 92.85], [78.27, 92.79]],
    dtype=np.float64,
)

#: Indices into dlib's 68-point layout used to derive the 5 template points.
LEFT_EYE_68 = tuple(range(36, 42))
RIGHT_EYE_68 = tuple(range(42, 48))
NOSE_TIP_68 = 30
MOUTH_LEFT_68 = 48
MOUTH_RIGHT_68 = 54


def template(size: int = HR_SIZE) -> np.ndarray:
    """The 5-point template scaled to a ``size x size`` frame (pixel-centre convention)."""
    return (TEMPLATE_128 + 0.5) * (size / HR_SIZE) - 0.5


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from 68 dlib landmarks (``68 x 2`` -> ``5 x 2``)."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([
        lm68[list(LEFT_EYE_68)].mean(0), lm68[list(RIGHT_EYE_68)].mean(0), lm68[NOSE_TIP_68],
        lm68[MOUTH_LEFT_68], lm68[MOUTH_RIGHT_68],
    ])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping ``src`` points onto ``dst``.

    Returns a ``2 x 3`` matrix ``M`` with ``dst ~= M[:, :2] @ src + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``2 x 3`` affine matrix."""
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``2 x 3`` affine matrix to ``N x 2`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]
