"""``jdsr_fast_x2_mix``: a 64 px face restored from its own pixels, its mask removed at 32 px.

Why a composite and not one more trained x2 network (PROPOSAL, docs/jdsr-fast.md "Session 8"): the x2
jdsr-fast runs of sessions 3 and 5 never learnt to remove a mask at 64 px on this CPU. A mask covers
twice as many pixels there, the denoiser's U-Net would have to see twice as far, and each 64 px face
costs four times the compute of a 32 px one. The x4 model, trained for 8 CPU-hours, removes masks at
32 px. A 64 px face that wears a mask therefore has two parts, and each goes where its information is:

* **outside the mask**: the x2 model super-resolves the face from its own 64 px, so eyes, hair and
  skin keep twice the detail that the x4 model would see;
* **inside the mask**: the face's own pixels hold only the mask, so halving the input loses nothing
  there. The x4 model gets the face reduced to 32 px (the same antialiased bicubic as its training
  LR, written as two fixed matrices so that ONNX exports it), and its output replaces the x2 model's
  there.

*Where* the mask is comes from what the x4 denoiser changes: its mean absolute change per LR pixel,
smoothed over 3x3 and mapped to [0, 1] between ``low`` and ``high``. ``restore``'s mask detector reads the
same signal over the lower-face box (:func:`facesr.restoration.mask.face_scores`). It is limited to
the face below the eyes by a fixed ramp on the template frame (masks are worn there), grown by one LR
pixel to cover the mask's outline, and feathered by the bilinear up-sampling to 128. An unmasked face
gets a map near zero, so it comes out as the x2 model's output.

**A face-level gate** (session 9) multiplies the map: the mask detector's own score (mean squared change
over the lower-face box, 8-bit levels squared, :func:`lower_face_score`) mapped to [0, 1] between
``gate_low`` and ``gate_high``. Why: on real unmasked photos the x4 denoiser sometimes repaints a small
region (a dark moustache, a laughing cheek beside a green background), which the per-pixel map alone
would paste into an otherwise untouched x2 face; those faces score 474-683, real masks mostly above
1,000 (docs/jdsr-fast.md, "Session 9"). Both parts are ordinary ``jdsr_fast``
state dicts under ``x4.`` and ``x2.``, so the file is built from two trained files
(``scripts/compose_mix.py x2``) and can be taken apart again.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facesr.geometry import template
from facesr.nets.fast import (
    GATE_HIGH,
    GATE_LOW,
    JDSRFast,
    build_jdsr_fast,
    build_sr_only_fast,
    face_gate,
    lower_face_score,
)
from facesr.nets.registry import register_arch
from facesr.resample import resize_matrix

#: LR side of each part: the composite takes 64 px faces and gives the x4 part 32 px.
LR_SIZE, INNER_SIZE, HR = 64, 32, 128


def half_matrix(n: int = LR_SIZE) -> torch.Tensor:
    """``[n/2, n]`` matrix ``A`` with ``A @ x @ A.T`` = Pillow's bicubic x0.5 of an ``n x n`` image.

    The same weights as the training LR (:func:`facesr.resample.downsample`, which also rounds
    to 8 bits between its two passes); as matmuls it exports to ONNX, which has no antialiased bicubic.
    """
    return torch.as_tensor(resize_matrix(n, n // 2), dtype=torch.float32)


def lower_face_ramp(size: int = INNER_SIZE) -> torch.Tensor:
    """``[1, 1, size, 1]`` weight: 0 down to a fifth of the way from the eyes to the nose, 1 from half way.

    The template frame puts every face's eyes and nose at the same rows, so this keeps the x4 part's
    (blurrier) output away from the eyes whatever the denoiser does there.
    """
    t = template(size)
    eye_y, nose_y = float(t[:2, 1].mean()), float(t[2, 1])
    y0, y1 = eye_y + 0.2 * (nose_y - eye_y), eye_y + 0.5 * (nose_y - eye_y)
    rows = torch.arange(size, dtype=torch.float32) + 0.5
    return ((rows - y0) / (y1 - y0)).clamp(0.0, 1.0).view(1, 1, size, 1)


def blend_map(
    lr: torch.Tensor, denoised: torch.Tensor, low: float, high: float, ramp: torch.Tensor
) -> torch.Tensor:
    """[B,1,h,w] in [0, 1]: where a JDSR denoiser changed the face (module docstring).

    Mean absolute change over the colour channels, smoothed over 3x3, mapped linearly from ``low``
    (0) to ``high`` (1), limited to the lower face by ``ramp`` and grown by one pixel.
    """
    change = (denoised - lr).abs().mean(1, keepdim=True)
    change = F.avg_pool2d(change, 3, stride=1, padding=1, count_include_pad=False)
    m = ((change - low) / (high - low)).clamp(0.0, 1.0) * ramp
    return F.max_pool2d(m, 3, stride=1, padding=1)


def _check_thresholds(low: float, high: float) -> None:
    if not 0.0 <= low < high:
        raise ValueError(f"blend thresholds must satisfy 0 <= low < high (got {low}, {high})")


class JDSRFastX2Mix(nn.Module):
    """64 px face -> 128: ``x2`` part everywhere, the ``x4`` part (on the face halved) where a mask is.

    ``forward(lr01)`` returns ``sr`` (the blend), ``blend`` (the map, 128 px, gate included), ``gate`` (one
    value per face), ``sr_x2``, ``sr_x4`` and ``denoised`` (the x4 denoiser's 32 px output), so that the
    parts can be looked at one by one.
    """

    def __init__(
        self,
        x2: JDSRFast,
        x4: JDSRFast,
        low: float = 0.015,
        high: float = 0.06,
        gate_low: float = GATE_LOW,
        gate_high: float = GATE_HIGH,
    ) -> None:
        super().__init__()
        if x2.scale != 2 or x4.scale != 4:
            raise ValueError(f"jdsr_fast_x2_mix needs an x2 and an x4 part (got x{x2.scale}, x{x4.scale})")
        _check_thresholds(low, high)
        _check_thresholds(gate_low, gate_high)
        self.gate_low, self.gate_high = float(gate_low), float(gate_high)
        self.x2, self.x4 = x2, x4
        self.scale, self.lr_size = 2, LR_SIZE
        self.low, self.high = float(low), float(high)
        self.register_buffer("shrink", half_matrix(), persistent=False)
        self.register_buffer("ramp", lower_face_ramp(), persistent=False)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        small = torch.matmul(torch.matmul(self.shrink, lr), self.shrink.T)
        inner = self.x4(small)
        gate = face_gate(
            lower_face_score(small, inner["denoised"], INNER_SIZE), self.gate_low, self.gate_high
        )
        m = F.interpolate(
            blend_map(small, inner["denoised"], self.low, self.high, self.ramp) * gate,
            size=(HR, HR),
            mode="bilinear",
            align_corners=False,
        )
        sr2 = self.x2(lr)["sr"]
        return {
            "sr": sr2 + m * (inner["sr"] - sr2),
            "blend": m,
            "gate": gate.view(-1),
            "sr_x2": sr2,
            "sr_x4": inner["sr"],
            "denoised": inner["denoised"],
        }


@register_arch("jdsr_fast_x2_mix")
def build_jdsr_fast_x2_mix(
    x2: dict[str, Any] | None = None,
    x4: dict[str, Any] | None = None,
    low: float = 0.015,
    high: float = 0.06,
    gate_low: float = GATE_LOW,
    gate_high: float = GATE_HIGH,
) -> JDSRFastX2Mix:
    """Zoo builder (output key ``"sr"``): ``x2`` / ``x4`` are the parts' own ``jdsr_fast`` args."""
    a2 = {**(x2 or {}), "scale": 2}
    a4 = {**(x4 or {}), "scale": 4}
    return JDSRFastX2Mix(
        build_jdsr_fast(**a2),
        build_jdsr_fast(**a4),
        low=low,
        high=high,
        gate_low=gate_low,
        gate_high=gate_high,
    )


class JDSRFastX4Mix(nn.Module):
    """32 px face -> 128: an SR module trained on clean LR alone everywhere, the joint x4 model where
    its denoiser removes a mask.

    Why (docs/jdsr-fast.md, "Session 8"): the joint model's SR module also repaints masks and pays for
    it on unmasked faces; the same network trained on clean LR alone scores 0.7 dB higher on them.
    The cost is a second SR pass per face. ``forward`` returns ``sr``, ``blend``, ``sr_clean``,
    ``sr_joint`` and ``denoised``.
    """

    def __init__(self, clean: nn.Module, joint: JDSRFast, low: float = 0.015, high: float = 0.06) -> None:
        super().__init__()
        if getattr(clean, "scale", None) != 4 or joint.scale != 4:
            raise ValueError("jdsr_fast_x4_mix needs two x4 parts")
        _check_thresholds(low, high)
        self.clean, self.joint = clean, joint
        self.scale, self.lr_size = 4, INNER_SIZE
        self.low, self.high = float(low), float(high)
        self.register_buffer("ramp", lower_face_ramp(), persistent=False)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        joint = self.joint(lr)
        m = F.interpolate(
            blend_map(lr, joint["denoised"], self.low, self.high, self.ramp),
            size=(HR, HR),
            mode="bilinear",
            align_corners=False,
        )
        sr_clean = self.clean(lr)["sr"]
        return {
            "sr": sr_clean + m * (joint["sr"] - sr_clean),
            "blend": m,
            "sr_clean": sr_clean,
            "sr_joint": joint["sr"],
            "denoised": joint["denoised"],
        }


@register_arch("jdsr_fast_x4_mix")
def build_jdsr_fast_x4_mix(
    clean: dict[str, Any] | None = None,
    joint: dict[str, Any] | None = None,
    low: float = 0.015,
    high: float = 0.06,
) -> JDSRFastX4Mix:
    """Zoo builder (output key ``"sr"``): ``clean`` holds ``jdsr_fast_sr_only`` args, ``joint``
    ``jdsr_fast`` args."""
    ac = {**(clean or {}), "scale": 4}
    aj = {**(joint or {}), "scale": 4}
    return JDSRFastX4Mix(build_sr_only_fast(**ac), build_jdsr_fast(**aj), low=low, high=high)
