"""Is this face wearing a mask? Read from what the JDSR denoiser does to the lower face.

Why the noise map: JDSR's denoiser is trained to mark the pixels a face mask covers (its noise
map is the estimated "noise", i.e. the mask, in LR space), so its energy in the lower face is a
mask detector that costs one small forward pass and needs no extra weights. The score is the
mean squared noise map over the lower-face box of the template frame (nose to chin, between the
cheeks) divided by the same over the upper-face box (brows to nose): the ratio cancels the
general JPEG/blur "noise" every genuine photo has, which the map also picks up.
``benchmarks/mask_detect.py`` measures how well it separates ``rwmfd`` (masked) from
``web_unmasked`` faces and prints the threshold stored here (docs/restore.md).
"""

from __future__ import annotations

from typing import Any

import torch

from facesr.geometry import face_boxes
from facesr.nets.fast import lower_face_score

#: Score (:func:`face_scores`, 8-bit levels squared) above which a face is reported as masked, for the
#: weights named by :data:`THRESHOLD_WEIGHTS` (a test fails when the installed mask model differs:
#: the score's scale moves with every retraining). Measured 2026-12-07 on the session-9 ``jdsr-fast-x4``
#: (its face-level gate does not change the score: the denoiser is read directly):
#: ``python benchmarks/mask_detect.py --per-class 150 --threads 1`` (the most confident face of 150
#: ``rwmfd/`` and 150 ``web_unmasked/`` photos, 260 faces), ROC AUC 0.963; the threshold is the best on
#: the even-indexed half (744.0), and gives balanced accuracy 0.928 on the odd half
#: (results/restore/mask_detect.json). Earlier models: session 7 AUC 0.954, threshold 620.5; session 6
#: AUC 0.955, 466.6; session 5 AUC 0.941, 722; session 4, whose denoiser had learnt nothing, AUC 0.848.
#: Re-measure with ``benchmarks/mask_detect.py`` for new weights.
THRESHOLD = 744.0
#: sha256 of the ``jdsr-fast-x4`` weights :data:`THRESHOLD` was measured with.
THRESHOLD_WEIGHTS = "18ad5d90fe752f15c39e725e9e1ffc8a50d6d67edca0fab8b8ed04dff9f040ba"


def has_noise_map(restorer: Any) -> bool:
    """Whether a (torch) restorer's network is a JDSR-style generator with a noise estimator."""
    net = getattr(restorer, "net", None)
    return hasattr(getattr(net, "denoiser", None), "estimator")


@torch.inference_mode()
def noise_map(restorer: Any, lr: torch.Tensor) -> torch.Tensor:
    """The denoiser's noise map (``N x C x h x w``) for aligned LR faces in [0, 1]."""
    return restorer.net.denoiser.estimator(lr).float()


@torch.inference_mode()
def face_scores(restorer: Any, lr: torch.Tensor) -> torch.Tensor:
    """The mask score used by ``facesr restore``: how much the denoiser changes the lower face.

    Mean squared change ``(denoised - input)`` over the lower-face box, in 8-bit levels squared. Why
    not the noise map: the ``jdsr-fast`` denoisers' noise estimator carries no mask signal (ROC AUC 0.48 on
    rwmfd vs web_unmasked), while what the denoiser *does* to the lower face separates them (0.87;
    ``benchmarks/mask_detect.py``, docs/restore.md). The noise-map ratio is kept as :func:`mask_scores`.
    """
    denoised = restorer.net.denoiser(lr)[1].float()
    return lower_face_score(lr.float(), denoised, lr.shape[-1])


def mask_scores(noise: torch.Tensor) -> torch.Tensor:
    """Lower-face / upper-face noise-map energy, one score per face (module docstring)."""
    (ly0, ly1, lx0, lx1), (uy0, uy1, ux0, ux1) = face_boxes(noise.shape[-1])
    e = noise.pow(2).mean(1)  # N x h x w
    lower = e[:, ly0:ly1, lx0:lx1].mean((1, 2))
    upper = e[:, uy0:uy1, ux0:ux1].mean((1, 2))
    return lower / upper.clamp(min=1e-6)


def lower_face_box(size: int) -> tuple[int, int, int, int]:
    """The lower-face box (``y0, y1, x0, x1``) a mask covers, at ``size`` px."""
    return face_boxes(size)[0]


__all__ = ["THRESHOLD", "face_scores", "has_noise_map", "lower_face_box", "mask_scores", "noise_map"]
