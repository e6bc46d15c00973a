"""Face geometry shared by data preparation, identity features and restoration.

Everything aligns faces to one fixed 5-point template (eye centres, nose tip, mouth corners) at
128x128; the 64x64 (CR) and LR frames are the same template scaled. Keeping this module free of
data-pipeline imports lets ``facesr.restoration`` and the identity network use it cheaply.
"""

from __future__ import annotations

import numpy as np

HR_SIZE = 128

#: The CR family's native frame (papers.md 2, the Bulat et al. protocol): genuine LR faces of 16 px,
#: learned x4 to 64 px, the 128 template at half size. ``facesr.nets.cr``, its recipe, the genuine-LR
#: sets and their benchmark read these.
CR_LR_SIZE = 16
CR_NATIVE_SIZE = 64
CR_SCALE = CR_NATIVE_SIZE // CR_LR_SIZE  # G_S's learned factor (x4)


#: 5-point template at 128x128 (x, y): left eye centre, right eye centre, nose tip,
#: left mouth corner, right mouth corner ("left" = image left).
#:
#: Chosen on UTKFace (the training set), whose 200x200 crops are tight: they run from mid-forehead
#: to the chin. A loose FFHQ/CelebA-style frame would take ~60 % of every 128 px face from outside
#: the source (reflected padding). The frame is the provisional FFHQ-style one zoomed 1.45x about
#: the mean UTKFace crop centre; the points are the mean 5-point shape of the UTKFace faces aligned
#: in that frame, so the fit residuals are as small as they can be on average. On the 9,670 aligned
#: UTKFace faces: 19 % of each face comes from outside the crop on average (reflect-padded), the
#: chin (landmark 8) is inside the frame for 97 %, the brows start at y ~20 (forehead above).
#: ``benchmarks/template_fit.py`` prints these statistics (docs/data.md).
TEMPLATE_128 = np.array(
    [[39.59, 36.77], [85.44, 36.63], [62.50, 60.79], [42.00, 82.05], [83.59, 81.88]],
    dtype=np.float64,
)

#: Weights of the five points in the alignment fit. Face proportions vary (children, yaw), so no
#: similarity puts all five points on the template; weighting the eyes 5x puts each eye centre
#: within ~1.1 px of the template on average on UTKFace (~90 % within 2 px; ~1.9 px unweighted),
#: for ~0.4 px more error at the mouth corners. ``benchmarks/template_fit.py`` prints these.
ALIGN_WEIGHTS = np.array([5.0, 5.0, 1.0, 1.0, 1.0])

#: Indices into dlib's 68-point layout used to derive the 5 template points.
LEFT_EYE_68 = tuple(range(36, 42))
RIGHT_EYE_68 = tuple(range(42, 48))
NOSE_TIP_68 = 30
MOUTH_LEFT_68 = 48
MOUTH_RIGHT_68 = 54


def template(size: int = HR_SIZE) -> np.ndarray:
    """The 5-point template scaled to a ``size x size`` frame (pixel-centre convention)."""
    return (TEMPLATE_128 + 0.5) * (size / HR_SIZE) - 0.5


def face_boxes(size: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(lower, upper) boxes ``y0, y1, x0, x1`` of the template frame at ``size`` px.

    Lower: nose to a little below the mouth, between the cheeks (where a face mask sits); upper: brows
    to nose. One home because the mask detector (``restoration.mask``) and the x2 composite's gate
    (``nets.fast_mix``) must score the same region, or the gate's thresholds would not be the detector's.
    """
    t = template(size)
    eye_y, nose_y, mouth_y = t[:2, 1].mean(), t[2, 1], t[3:, 1].mean()
    x0, x1 = t[3, 0] - 0.15 * size, t[4, 0] + 0.15 * size
    lower = (
        round(nose_y),
        min(size, round(mouth_y + 0.6 * (mouth_y - nose_y)) + 1),
        round(x0),
        round(x1) + 1,
    )
    upper = (max(0, round(eye_y - 0.5 * (nose_y - eye_y))), round(nose_y), round(x0), round(x1) + 1)
    return lower, upper


def input_size(scale: int, output: int = HR_SIZE) -> int:
    """The side of the face a ``scale``-times network takes to give ``output`` px (128 / scale).

    The one place a size is derived from a scale: networks built for a scale state their input
    with it, and :func:`facesr.zoo.model_sizes` falls back to it for weights files written before
    ``facesr.lr_size`` existed. Everything else reads a model's own ``lr_size`` / ``hr_size``.
    """
    return int(output) // int(scale)


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from 68 dlib landmarks (``68 x 2`` -> ``5 x 2``)."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack(
        [
            lm68[list(LEFT_EYE_68)].mean(0),
            lm68[list(RIGHT_EYE_68)].mean(0),
            lm68[NOSE_TIP_68],
            lm68[MOUTH_LEFT_68],
            lm68[MOUTH_RIGHT_68],
        ]
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) least-squares similarity (rotation, uniform scale, shift; no reflection) ``src -> dst``.

    Returns a ``2 x 3`` matrix ``M`` with ``dst ~= M[:, :2] @ src + M[:, 2]``. ``weights`` (one per
    point, default equal) make some points count more, e.g. :data:`ALIGN_WEIGHTS`.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s0, d0 = src - mu_s, dst - mu_d
    cov = (d0 * w[:, None]).T @ s0
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = float(w @ (s0**2).sum(1))
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def alignment_transform(five: np.ndarray, size: int = HR_SIZE) -> np.ndarray:
    """The ``2 x 3`` matrix that aligns a face's 5 points to the template at ``size`` (what prepare uses).

    Use this (not a plain unweighted fit) wherever a face must match the prepared training faces.
    """
    return similarity_transform(five, template(size), ALIGN_WEIGHTS)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``2 x 3`` affine matrix."""
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``2 x 3`` affine matrix to ``N x 2`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]
