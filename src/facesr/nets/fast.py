"""``jdsr_fast``: the production JDSR variant, the paper's structure on an LR-space SR module.

Structure kept from JDSR-GAN (papers.md 1.2): a **denoising module** that removes the mask (and, here, the
LR degradations) at the LR size and outputs a noise map and a denoised LR face, then a **face SR module**,
trained jointly end to end. What changes, and why (PROPOSAL, docs/jdsr.md "jdsr-fast"):

* The SR module is :mod:`facesr.nets.rlfn`'s RLFN body working on the LR grid, with a pixel-shuffle
  upsampler at the end, instead of FSRNet on a bicubic-upsampled 128x128 grid: 16x fewer pixels per layer,
  and it starts from general-SR weights (``../shared/pretrained``) instead of from noise.
* x4 uses the pretrained x4 upsampler as is; x2 (64 -> 128) starts its upsampler from the x4 one by
  averaging sub-pixel filters (:func:`facesr.nets.rlfn.shrink_upsampler`); x8 (16 -> 128) runs the x4
  upsampler to 64 px and adds a small x2 stage whose last conv starts at zero on top of a bicubic x2 skip,
  so an untrained x8 model is exactly "pretrained x4, then bicubic x2".
* The denoiser is the paper's CNN_E + CNN_D (:class:`facesr.nets.jdsr.Denoiser`) at a small width; its
  output conv starts at zero, so at initialisation the denoiser is the identity and the whole model is the
  pretrained general-SR network: training only has to learn what is face- and mask-specific.
* No face-prior branch (landmark heatmaps and parsing maps): it lives on the 128 grid and is the largest
  cost of the paper's SR module; the pretrained body has no place for it. Not ablated yet (docs/jdsr.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ModelError
from facesr.geometry import face_boxes, input_size
from facesr.nets.jdsr import Denoiser, JDSRSize, resolve_size
from facesr.nets.registry import register_arch
from facesr.nets.rlfn import (
    PIXEL_RANGE,
    RLFNBody,
    body_state,
    load_strict,
    pixel_shuffle_head,
    read_pretrained_rlfn,
    shrink_upsampler,
)

#: denoiser widths of ``jdsr_fast`` (PROPOSAL): the lite CNN_E / CNN_D at half the U-Net depth budget
FAST_DENOISER = JDSRSize(
    est_width=16, est_reduction=4, unet_widths=(32, 48, 64), unet_blocks=(1, 2, 2, 2, 1), reduction=8
)
SCALES = (2, 4, 8)


class X2Stage(nn.Module):
    """x8's last step: 64 -> 128 with a bicubic skip; the residual branch starts at exactly zero."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.LeakyReLU(0.05, inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.05, inplace=True),
            nn.Conv2d(width, 3 * 4, 3, padding=1),
            nn.PixelShuffle(2),
        )
        nn.init.zeros_(self.body[4].weight)
        nn.init.zeros_(self.body[4].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return up + self.body(x)


class FastSRModule(nn.Module):
    """LR-space face SR module: RLFN body at the input size, pixel-shuffle to 128 (x2 / x4 / x8)."""

    def __init__(self, scale: int, channels: int = 46, mid: int = 48, blocks: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.body = RLFNBody(channels, mid, blocks)
        self.upsampler = pixel_shuffle_head(channels, 2 if scale == 2 else 4)
        self.x2 = X2Stage() if scale == 8 else None

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        out = self.upsampler(self.body(lr * PIXEL_RANGE)) / PIXEL_RANGE
        return self.x2(out) if self.x2 is not None else out

    def load_general_sr(self, original: dict[str, torch.Tensor]) -> None:
        """Start from the general x4 RLFN weights (every key used; shapes checked)."""
        body, up = body_state(original)
        load_strict(self.body, body, "pretrained RLFN body")
        if self.scale == 2:
            w, b = shrink_upsampler(up["0.weight"], up["0.bias"], 4, 2)
            up = {"0.weight": w, "0.bias": b}
        load_strict(self.upsampler, up, "pretrained RLFN upsampler")


#: Face-level gate (:func:`face_gate` of :func:`lower_face_score`, 8-bit levels squared, on a 32 px face):
#: the denoiser's change is used not at all up to GATE_LOW and fully from GATE_HIGH. Chosen on real photos
#: (docs/jdsr-fast.md, "Session 9"): above the three unmasked faces the session-8 x4 denoiser repainted
#: in the x2 composite (scores 474, 587, 683), below most real masks (above 1,000). Used by the x2
#: composite and, where a file's args set it, by ``jdsr_fast`` itself.
GATE_LOW, GATE_HIGH = 750.0, 1100.0


def lower_face_score(lr: torch.Tensor, denoised: torch.Tensor, size: int) -> torch.Tensor:
    """``[B]``: mean squared change ``denoised - lr`` over the lower-face box of a ``size`` px face, in
    8-bit levels squared.

    The same number as ``facesr.restoration.mask.face_scores`` (the mask detector of ``restore``), so
    that the gate and the detector's threshold are on one scale. ``size`` is a Python int (not read from
    the tensor) so that the box is a constant in an ONNX export.
    """
    (y0, y1, x0, x1), _ = face_boxes(size)
    change = (denoised - lr).pow(2).mean(1) * 255.0**2
    return change[:, y0:y1, x0:x1].mean((1, 2))


def face_gate(score: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``[B, 1, 1, 1]`` in [0, 1]: 0 up to ``low``, 1 from ``high``, linear between."""
    return ((score - low) / (high - low)).clamp(0.0, 1.0).view(-1, 1, 1, 1)


class JDSRFast(nn.Module):
    """Denoiser (LR) then LR-space SR module. ``forward(lr01)`` -> ``noise_map``, ``denoised``, ``sr``.

    ``sr`` is [B,3,128,128] in [0, 1] up to small overshoot (clamped by the zoo's Restorer), ``denoised``
    and ``noise_map`` are at the input size (the noise map also tells the restore pipeline where the
    network saw a mask).

    ``gate=(low, high)`` (an inference option, set in a file's args; never in training): the SR module
    gets ``lr + g * (denoised - lr)`` with ``g`` the face's :func:`face_gate`, so a face whose lower face
    the denoiser hardly changes overall (an unmasked face where it repaints a moustache or a cheek) is
    super-resolved from its own pixels. The SR module was also trained on clean LR alone
    (``loss.sr_clean_pixel``), which is what it then sees.
    """

    def __init__(
        self,
        scale: int = 4,
        denoiser: JDSRSize | None = None,
        sr_blocks: int = 4,
        gate: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"jdsr_fast scale must be one of {SCALES}, got {scale}")
        if gate is not None and not 0.0 <= gate[0] < gate[1]:
            raise ValueError(f"jdsr_fast gate must satisfy 0 <= low < high (got {gate})")
        self.gate = None if gate is None else (float(gate[0]), float(gate[1]))
        self.scale = scale
        self.lr_size = input_size(scale)
        self.settings = denoiser or FAST_DENOISER
        self.denoiser = Denoiser(self.settings, self.lr_size)
        nn.init.zeros_(self.denoiser.unet.out.weight)  # identity at start: the model is the pretrained SR
        nn.init.zeros_(self.denoiser.unet.out.bias)
        self.sr_module = FastSRModule(scale, blocks=sr_blocks)

    def forward(self, lr: torch.Tensor, lr_clean: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``lr_clean`` (training only, ``loss.sr_clean_pixel``): the same faces' clean LR, also passed
        through the SR module alone (``sr_clean``), inside this one forward so that DDP sees every use."""
        noise_map, denoised = self.denoiser(lr)
        if self.gate is not None:  # inference option (module docstring of facesr.nets.fast_mix, GATE_LOW)
            g = face_gate(lower_face_score(lr, denoised, self.lr_size), *self.gate)
            denoised = lr + g * (denoised - lr)
        out = {"noise_map": noise_map, "denoised": denoised, "sr": self.sr_module(denoised)}
        if lr_clean is not None:
            out["sr_clean"] = self.sr_module(lr_clean)
        return out

    def load_general_sr(self, original: dict[str, torch.Tensor]) -> None:
        """Initialise the SR module from an original RLFN_Prune x4 state dict."""
        self.sr_module.load_general_sr(original)


class SROnlyFast(nn.Module):
    """The SR-only ablation of ``jdsr_fast``: the same LR-space SR module fed the masked LR directly."""

    def __init__(self, scale: int = 4, sr_blocks: int = 4) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        self.scale = scale
        self.lr_size = input_size(scale)
        self.sr_module = FastSRModule(scale, blocks=sr_blocks)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"denoised": lr, "sr": self.sr_module(lr)}

    def load_general_sr(self, original: dict[str, torch.Tensor]) -> None:
        self.sr_module.load_general_sr(original)


def _denoiser_size(overrides: dict[str, Any]) -> JDSRSize:
    return resolve_size(FAST_DENOISER, overrides) if overrides else FAST_DENOISER


@register_arch("jdsr_fast")
def build_jdsr_fast(
    size: str = "fast",
    scale: int = 4,
    sr_blocks: int = 4,
    gate_low: float | None = None,
    gate_high: float | None = None,
    **overrides: Any,
) -> JDSRFast:
    """Zoo builder (output key ``"sr"``); ``overrides`` are denoiser :class:`JDSRSize` fields; ``gate_low``
    and ``gate_high`` (both or neither) switch the face-level gate on (:class:`JDSRFast`)."""
    if size != "fast":
        raise ValueError(f"jdsr_fast has one size, 'fast' (got {size!r})")
    if (gate_low is None) != (gate_high is None):
        raise ValueError("jdsr_fast: give gate_low and gate_high together")
    gate = None if gate_low is None or gate_high is None else (gate_low, gate_high)
    return JDSRFast(scale=scale, denoiser=_denoiser_size(overrides), sr_blocks=sr_blocks, gate=gate)


@register_arch("jdsr_fast_sr_only")
def build_sr_only_fast(
    size: str = "fast", scale: int = 4, sr_blocks: int = 4, **denoiser_overrides: Any
) -> SROnlyFast:
    """Zoo builder for the SR-only ablation of ``jdsr_fast`` (output key ``"sr"``).

    ``denoiser_overrides`` are the joint model's CNN_D settings: checked (a typo is still an error) and
    not used, so that an SR-only or two-stage SR part trained from the joint config carries the same
    args as its denoiser part and the two chain into one ``jdsr_fast`` file.
    """
    if size != "fast":
        raise ValueError(f"jdsr_fast_sr_only has one size, 'fast' (got {size!r})")
    _denoiser_size(denoiser_overrides)
    return SROnlyFast(scale=scale, sr_blocks=sr_blocks)


@register_arch("rlfn")
def build_rlfn(scale: int = 4) -> nn.Module:
    """General-SR RLFN (the background upsampler of ``facesr restore``); output is the image itself."""
    from facesr.nets.rlfn import RLFN

    return RLFN(scale=scale)


def init_from_general_sr(net: nn.Module, path: str | None = None) -> None:
    """Load the shared RLFN x4 weights into ``net``'s SR module (a ModelError if it has none)."""
    loader = getattr(net, "load_general_sr", None)
    if loader is None:
        raise ModelError(f"{type(net).__name__} cannot start from general-SR weights")
    loader(read_pretrained_rlfn(path))
