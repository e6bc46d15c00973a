"""Face detection for restoration: every candidate face is kept or skipped *with a reason*.

Why a separate step: a photo restorer that silently drops faces (too small, too blurred, low
detector confidence) leaves users guessing. Here the detector's output is passed through
explicit quality filters and each face carries ``status`` and ``reason``, so the report can say
exactly which faces were restored and why the others were not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facesr.geometry import TEMPLATE_128

#: Eye distance of the 128x128 template (pixels); the face-size rule is expressed against it.
TEMPLATE_EYE_DISTANCE_128 = float(np.linalg.norm(TEMPLATE_128[1] - TEMPLATE_128[0]))


class FaceDetector(Protocol):
    """Anything that returns boxes, scores and 5 landmarks for an ``H x W x 3`` uint8 image."""

    def detect(
        self, image: np.ndarray, min_size: float | None = None, factor: float | None = None
    ):  # -> Detections-like
        ...


@dataclass
class DetectOptions:
    """Detection and quality-filter settings (pixels are in the input photo).

    ``min_size``: smallest face box searched for (MTCNN pyramid start). ``min_score``: faces the
    detector is less sure of are skipped ("low score"). ``min_eye_distance``: below this there is
    too little face to restore ("too small"; well under the eye distance of the x8 model's 16 px
    input frame). ``min_sharpness``: Laplacian variance (0-255 grey levels squared) of the face box
    resampled to 24x24; flat or smeared crops below it are skipped ("too blurred").
    ``max_shape_error``: RMS distance (in eye distances) of the 5 landmarks from the template after
    the alignment fit; hair, hands and scarves that MTCNN mistakes for faces get landmarks no face
    has, and so do faces turned far from frontal, which the template frame would paint over with a
    frontal face ("not a frontal face"). ``max_outside``: share of the face box that may lie
    outside the photo; a face cut by the photo border beyond it is skipped ("cut by the photo
    border"): the model would be fed the border pixels repeated where the rest of the face should
    be, and paints a smear (see :func:`outside_share`). ``pad``: detect on a copy padded by this fraction of the
    long side (small images; see :func:`pad_for_detection`), so faces filling a tight crop are found.
    Faces that are too large for every model are not skipped here: the restore step keeps them.
    """

    min_size: float = 10.0
    factor: float = 0.709
    min_score: float = 0.8
    max_pixels: int = 0  # 0: DETECT_MAX_PIXELS (see detection_copy)
    min_eye_distance: float = 2.0
    min_sharpness: float = 5.0
    max_shape_error: float = 0.25
    max_outside: float = 0.25
    pad: float = 0.5


#: Images with a long side above this are padded by a fixed PAD_LARGE px instead of ``pad`` x side
#: (their faces are small against the frame; full padding would multiply detection time).
PAD_MAX_SIDE = 640
PAD_LARGE = 32
#: The PAD_LARGE border may make the detector's copy at most this share larger than ``max_pixels``.
#: Why: on a thin photo the border is most of what the detector sees (a 1 KB GIF of 65,531 x 32
#: became a 65,595 x 96 copy, three times its pixels, and took ``facesr restore`` to 1.25 GB; a
#: 2,000,000 x 2 PNG would be 66 times); there the border is narrowed. Photos of ordinary shape
#: keep the full border, as before (a copy at the 4 MP bound up to about 7:1, smaller photos longer).
PAD_MAX_SHARE = 0.1


def _border(h: int, w: int, fraction: float, max_pixels: int = 0) -> int:
    """Border width (px) that :func:`pad_for_detection` adds around an ``h x w`` image."""
    side = max(h, w)
    if side <= PAD_MAX_SIDE:  # at most (2 x 640)^2 = 1.6 MP with the border: bounded as it is
        return max(0, round(fraction * side))
    pad = max(0, min(PAD_LARGE, round(fraction * side)))
    limit = max_pixels * (1 + PAD_MAX_SHARE)
    if max_pixels and (h + 2 * pad) * (w + 2 * pad) > limit:
        # the largest p with (h + 2p)(w + 2p) <= limit: 4p^2 + 2(h + w)p + hw - limit <= 0
        root = (-2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (h * w - limit))) / 8
        pad = max(0, min(pad, math.floor(root)))
    return pad


def pad_for_detection(image: np.ndarray, fraction: float, max_pixels: int = 0) -> tuple[np.ndarray, int]:
    """A copy of ``image`` with a border of its mean colour; returns (padded, border px).

    Why: MTCNN's proposal net needs some context around a face; on a tight crop (the face fills
    the image) it finds nothing. A flat border adds that context without inventing structure
    (a mirrored border would add mirrored faces). With ``max_pixels``, a border of PAD_LARGE px is
    narrowed where it would make the copy more than PAD_MAX_SHARE over ``max_pixels`` (thin photos).
    """
    h, w = image.shape[:2]
    pad = _border(h, w, fraction, max_pixels)
    if pad <= 0:
        return image, 0
    fill = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
    out = np.empty((h + 2 * pad, w + 2 * pad, 3), np.uint8)
    out[:] = fill
    out[pad : pad + h, pad : pad + w] = image
    return out, pad


#: Detection runs on a copy of the photo with at most this many pixels. Why: MTCNN's memory grows
#: with the pixels of its first pyramid level (about 150 bytes per photo pixel at the default
#: ``min_size``: an all-black 7900 x 7900 PNG took 10 GB), so a bounded copy bounds the detector's
#: memory (the budget in docs/reliability.md; the border added for detection is bounded too, see
#: PAD_MAX_SHARE). On a larger photo, faces smaller than
#: ``min_size x`` the reduction factor are not searched for; :func:`detection_scale` tells by how much.
DETECT_MAX_PIXELS = 4_000_000


def detection_scale(shape: tuple[int, ...], max_pixels: int = 0) -> float:
    """How many photo pixels one pixel of the detection copy spans (1.0: detection at full size)."""
    h, w = shape[:2]
    limit = max_pixels or DETECT_MAX_PIXELS
    return 1.0 if h * w <= limit else math.sqrt(h * w / limit)


def detection_copy(image: np.ndarray, max_pixels: int) -> tuple[np.ndarray, float, float]:
    """``image`` itself, or a box-filtered copy of at most ``max_pixels``; returns (copy, fx, fy).

    ``fx``, ``fy``: photo pixels per copy pixel, to map detections back (pixel-centre convention).
    """
    h, w = image.shape[:2]
    f = detection_scale(image.shape, max_pixels)
    if f <= 1.0:
        return image, 1.0, 1.0
    nw, nh = max(1, int(w / f)), max(1, int(h / f))
    from PIL import Image

    small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BOX))
    return small, w / nw, h / nh


def shape_error(landmarks: np.ndarray) -> float:
    """RMS residual of the 5 points after the alignment fit, in template eye distances."""
    from facesr.geometry import alignment_transform, apply_affine

    m = alignment_transform(np.asarray(landmarks, np.float64), 128)
    res = apply_affine(m, landmarks) - TEMPLATE_128
    return float(np.sqrt((res**2).sum(1).mean()) / TEMPLATE_EYE_DISTANCE_128)


def outside_share(box: list[float] | np.ndarray, shape: tuple[int, ...]) -> float:
    """Share (0-1) of the face box ``x1, y1, x2, y2`` that lies outside an image of ``shape``.

    Why the box and not the 128 px template frame: the frame holds hair and background around
    the face and often reaches past the border of a tight crop whose face is whole; the box is
    the face itself (brows to chin), so a share of it outside the photo is a cut face.
    """
    h, w = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(x2 - x1, 1e-6) * max(y2 - y1, 1e-6)
    inside = max(0.0, min(x2, w) - max(x1, 0.0)) * max(0.0, min(y2, h) - max(y1, 0.0))
    return float(min(1.0, max(0.0, 1.0 - inside / area)))


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
    """All faces the detector reports (on a padded, bounded copy), each marked ok or skipped with its reason."""
    opts = opts or DetectOptions()
    limit = opts.max_pixels or DETECT_MAX_PIXELS
    small, fx, fy = detection_copy(image, limit)
    padded, pad = pad_for_detection(small, opts.pad, limit)
    det = detector.detect(padded, min_size=opts.min_size, factor=opts.factor)
    del padded
    faces = []
    for i in range(len(det.scores)):
        lm = np.asarray(det.landmarks[i], np.float64) - pad
        box = [float(v) - pad for v in det.boxes[i]]
        if small is not image:  # back to photo pixels (pixel-centre convention)
            lm = (lm + 0.5) * [fx, fy] - 0.5
            box = [(v + 0.5) * (fx if k % 2 == 0 else fy) - 0.5 for k, v in enumerate(box)]
        eye = float(np.linalg.norm(lm[1] - lm[0]))
        err = shape_error(lm)
        cut = outside_share(box, image.shape)
        face = Face(
            index=i,
            box=box,
            score=float(det.scores[i]),
            landmarks=lm,
            eye_distance=eye,
            sharpness=sharpness(image, box),
            extra={"shape_error": round(err, 3), "outside": round(cut, 3)},
        )
        if face.score < opts.min_score:
            face.status, face.reason = "skipped", f"low score ({face.score:.2f} < {opts.min_score})"
        elif cut > opts.max_outside:
            face.status, face.reason = (
                "skipped",
                f"cut by the photo border ({cut:.0%} of the face box outside > {opts.max_outside:.0%})",
            )
        elif eye < opts.min_eye_distance:
            face.status, face.reason = (
                "skipped",
                f"too small (eye distance {eye:.1f} px < {opts.min_eye_distance})",
            )
        elif err > opts.max_shape_error:
            face.status, face.reason = (
                "skipped",
                f"not a frontal face (landmarks {err:.2f} eye distances off the template > {opts.max_shape_error})",
            )
        elif face.sharpness < opts.min_sharpness:
            face.status, face.reason = (
                "skipped",
                f"too blurred (sharpness {face.sharpness:.1f} < {opts.min_sharpness})",
            )
        faces.append(face)
    return faces
