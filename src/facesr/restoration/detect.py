"""Face detection for restoration: every candidate face is kept or skipped *with a reason*.

Why a separate step: a photo restorer that silently drops faces (too small, too blurred, low
detector confidence) leaves users guessing. Here the detector's output is passed through
explicit quality filters and each face carries ``status`` and ``reason``, so the report can say
exactly which faces were restored and why the others were not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facesr.geometry import TEMPLATE_128

#: Eye distance of the 128x128 template (pixels); the face-size rule is expressed against it.
TEMPLATE_EYE_DISTANCE_128 = float(np.linalg.norm(TEMPLATE_128[1] - TEMPLATE_128[0]))


class FaceDetector(Protocol):
    """Anything that returns boxes, scores and 5 landmarks for an ``H x W x 3`` uint8 image."""

    def detect(self, image: np.ndarray, min_size: float | None = None):  # -> Detections-like
        ...


@dataclass
class DetectOptions:
    """Detection and quality-filter settings (pixels are in the input photo).

    ``min_size``: smallest face box searched for (MTCNN pyramid start). ``min_score``: faces the
    detector is less sure of are skipped ("low score"). ``min_eye_distance``: below this there is
    too little face to restore ("too small"; well under the eye distance of the x8 model's 16 px
    input frame). ``max_eye_distance``: faces larger than the 128 px output frame are already
    sharper than any restoration ("too large"); None = the template's eye distance at 128 px.
    ``min_sharpness``: Laplacian variance (0-255 grey levels squared) of the face box resampled to
    24x24; flat or smeared crops below it are skipped ("too blurred").
    """

    min_size: float = 10.0
    min_score: float = 0.8
    min_eye_distance: float = 2.0
    max_eye_distance: float | None = None
    min_sharpness: float = 5.0


@dataclass
class Face:
    """One detected face and whether it goes on to be restored."""

    index: int
    box: list[float]
    score: float
    landmarks: np.ndarray  # 5 x 2
    eye_distance: float
    sharpness: float
    status: str = "ok"  # ok | skipped (set later: restored | failed)
    reason: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "eye_distance": round(self.eye_distance, 2),
            "sharpness": round(self.sharpness, 1),
            "status": self.status,
            "reason": self.reason,
            **self.extra,
        }


def sharpness(image: np.ndarray, box: np.ndarray | list[float], size: int = 24) -> float:
    """Laplacian variance of the grey face box, area-resampled to ``size x size``.

    Resampling to a fixed size makes the number comparable between a 12 px and a 60 px face;
    the variance of the 4-neighbour Laplacian is the usual cheap focus measure.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    grey = image[y1:y2, x1:x2].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    from PIL import Image

    small = np.asarray(Image.fromarray(grey, mode="F").resize((size, size), Image.Resampling.BOX), np.float32)
    lap = small[:-2, 1:-1] + small[2:, 1:-1] + small[1:-1, :-2] + small[1:-1, 2:] - 4 * small[1:-1, 1:-1]
    return float(lap.var())


def detect_faces(image: np.ndarray, detector: FaceDetector, opts: DetectOptions | None = None) -> list[Face]:
    """All faces the detector reports, each marked ok or skipped with its reason."""
    opts = opts or DetectOptions()
    det = detector.detect(image, min_size=opts.min_size)
    max_eye = TEMPLATE_EYE_DISTANCE_128 if opts.max_eye_distance is None else opts.max_eye_distance
    faces = []
    for i in range(len(det.scores)):
        lm = np.asarray(det.landmarks[i], np.float64)
        eye = float(np.linalg.norm(lm[1] - lm[0]))
        face = Face(
            index=i,
            box=[float(v) for v in det.boxes[i]],
            score=float(det.scores[i]),
            landmarks=lm,
            eye_distance=eye,
            sharpness=sharpness(image, det.boxes[i]),
        )
        if face.score < opts.min_score:
            face.status, face.reason = "skipped", f"low score ({face.score:.2f} < {opts.min_score})"
        elif eye < opts.min_eye_distance:
            face.status, face.reason = (
                "skipped",
                f"too small (eye distance {eye:.1f} px < {opts.min_eye_distance})",
            )
        elif eye > max_eye:
            face.status, face.reason = (
                "skipped",
                f"too large (eye distance {eye:.1f} px > {max_eye:.1f}; "
                "already sharper than the 128 px output)",
            )
        elif face.sharpness < opts.min_sharpness:
            face.status, face.reason = (
                "skipped",
                f"too blurred (sharpness {face.sharpness:.1f} < {opts.min_sharpness})",
            )
        faces.append(face)
    return faces
