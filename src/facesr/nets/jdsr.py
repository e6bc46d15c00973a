"""JDSR-GAN generator: denoising module (CBDNet + CAB) followed by the face SR module (FSRNet + RCAB).

Layout follows papers.md section 1.2 (the paper's two module figures, via the J3 thesis); every width,
depth, activation and the bicubic step are tagged there as [UNSTATED -> PROPOSAL] or [INFERRED]:

* :class:`Denoiser` (1.2.1): CNN_E (conv, CAB x3, conv, softplus -> 3-channel noise map) and CNN_D (a U-Net
  of CAB stages 2/3/6/3/2 with average-pool down, transposed-conv up, additive skips, a 1x1 output
  and a global residual onto the masked input) -> the denoised ("unmasked") LR image.
* :class:`SRModule` (1.2.2): bicubic up-sampling of the denoised LR to 128x128 (the only x4/x8 step),
  coarse SR (conv, RCAB x3, conv), fine-SR encoder (stride-2 conv, RCAB x12, conv), prior branch on
  the coarse image (7x7 stride-2 conv, RCAB x3, hourglass, 1x1 heads for 68 landmark heatmaps and 11
  parsing maps at 64x64), fusion by concatenating encoder and hourglass features (FSRNet), and the
  decoder (conv, x2 deconv, RCAB x3, conv) -> the SR image.

Images are RGB in [0, 1] outside the network. The denoiser works in [0, 1] (so its noise map is in the
same units as the ``|x - y_LR|`` target); the SR module works in [-1, 1] internally with tanh outputs
(FSRNet's convention) and returns [0, 1]. ``paper`` and ``lite`` are the same code with different
widths/depths (:data:`SIZES`); x4 and x8 differ only in the input size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facesr.geometry import HR_SIZE, input_size
from facesr.nets.blocks import CAB, Hourglass, conv3x3, rcab_stack
from facesr.nets.registry import register_arch

PRIOR_SIZE = 64
N_HEATMAPS = 68
N_PARSING = 11


@dataclass(frozen=True)
class JDSRSize:
    """Width/depth settings of the generator. Field comments give the papers.md status."""

    est_width: int = 32  # CNN_E width (PROPOSAL, CBDNet)
    est_blocks: int = 3  # CABs in CNN_E (PAPER figure)
    est_reduction: int = 8  # channel-attention ratio in CNN_E (PROPOSAL)
    unet_widths: tuple[int, int, int] = (64, 128, 256)  # CNN_D stage widths (PROPOSAL, CBDNet)
    unet_blocks: tuple[int, int, int, int, int] = (2, 3, 6, 3, 2)  # CABs per CNN_D stage (PAPER figure)
    trunk: int = 64  # coarse/encoder/decoder width (PROPOSAL, FSRNet)
    prior_width: int = 128  # prior-branch width (PROPOSAL, FSRNet)
    coarse_blocks: int = 3  # RCABs in the coarse SR net (PAPER figure)
    encoder_blocks: int = 12  # RCABs in the encoder (PAPER figure)
    prior_blocks: int = 3  # RCABs before the hourglass (PAPER figure)
    hourglass_count: int = 1  # hourglasses in the prior branch (figure shows one; FSRNet stacks 2)
    hourglass_depth: int = 4  # 64 -> 4 (PROPOSAL, FSRNet)
    hourglass_blocks: int = 1  # RCABs per hourglass branch (PROPOSAL)
    decoder_blocks: int = 3  # RCABs in the decoder (PAPER figure)
    reduction: int = 16  # channel-attention ratio elsewhere (PROPOSAL, RCAN)
    sr_residual: bool = False  # PROPOSAL switch: add the bicubic image to coarse/SR instead of tanh
    # CNN_D's up-sampling: "transpose" (2x2 stride-2 transposed conv, PROPOSAL after CBDNet) or "bilinear"
    # (bilinear x2, then a 1x1 conv; PROPOSAL for jdsr_fast): a stride-2 2x2 kernel paints the same 2x2
    # pattern under every input pixel, which showed as a dotted grid on real masks (docs/jdsr-fast.md)
    unet_up: str = "transpose"
    # PROPOSAL (jdsr_fast, session 5): channels of a learned positional face prior (one [C, lr, lr] tensor)
    # fed to CNN_D beside the input and the noise map. Faces are aligned to one template, so "where is the
    # mouth" is a fixed position; a conv net with small kernels sees only mask pixels inside a large mask and
    # paints the mean skin there. 0 = off (the paper's CNN_D).
    prior_channels: int = 0
    # PROPOSAL (jdsr_fast, session 5): CNN_D's CABs add their input where the channel counts match (the
    # paper draws CAB without a skip; see facesr.nets.blocks.CAB for why this matters). False = the paper.
    cab_residual: bool = False


#: ``paper``: widths/depths as in papers.md 1.2; ``lite``: same layout, narrower, <= 5M parameters.
SIZES: dict[str, JDSRSize] = {
    "paper": JDSRSize(),
    "lite": JDSRSize(
        est_width=16, unet_widths=(32, 64, 128), trunk=32, prior_width=64, reduction=8, est_reduction=4
    ),
}


def resolve_size(size: str | JDSRSize, overrides: dict[str, Any] | None = None) -> JDSRSize:
    """A named size with optional field overrides (unknown names/fields are ValueErrors)."""
    if isinstance(size, JDSRSize):
        base = size
    elif size in SIZES:
        base = SIZES[size]
    else:
        raise ValueError(f"unknown JDSR size {size!r}; choose from {', '.join(SIZES)}")
    overrides = dict(overrides or {})
    known = {f.name for f in fields(JDSRSize)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"unknown JDSR size setting(s) {bad}; known: {sorted(known)}")
    for key in ("unet_widths", "unet_blocks"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return replace(base, **overrides)


class NoiseEstimator(nn.Module):
    """CNN_E: Conv3x3 -> CAB x n -> Conv3x3 -> softplus, a non-negative 3-channel noise map at LR size.

    CBDNet (and papers.md's proposal) ends in a ReLU. At initialisation the last conv is often negative
    everywhere, so a ReLU map is all zeros and CNN_E gets no gradient at all (measured: dead for some
    seeds). Softplus is also non-negative but never dead; a deviation, written down in docs/jdsr.md.
    """

    def __init__(self, width: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.head = nn.Sequential(conv3x3(3, width), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[CAB(width, width, reduction) for _ in range(blocks)])
        self.tail = conv3x3(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.tail(self.body(self.head(x))))


UNET_UP = ("transpose", "bilinear")


class BilinearUp(nn.Module):
    """x2 bilinear up-sampling, then a 1x1 conv: no sub-pixel pattern can be learnt (cf. transposed conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


def up_layer(cin: int, cout: int, mode: str) -> nn.Module:
    """CNN_D's x2 up-sampling layer of the given :data:`UNET_UP` mode."""
    if mode == "transpose":
        return nn.ConvTranspose2d(cin, cout, 2, stride=2)
    if mode == "bilinear":
        return BilinearUp(cin, cout)
    raise ValueError(f"unet_up must be one of {UNET_UP}, got {mode!r}")


def transpose_to_bilinear(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``transpose`` CNN_D's up-sampling weights onto the ``bilinear`` layout (for a warm start).

    The 1x1 projection gets the mean of each 2x2 transposed kernel: the part of the old layer that is the
    same under every output pixel. The sub-pixel (dotted) part is what the new layout drops on purpose.
    """
    out = dict(state)
    for key in [k for k in state if re.search(r"(^|\.)up[12]\.weight$", k)]:
        w = state[key]
        if w.dim() == 4 and w.shape[-2:] == (2, 2):  # ConvTranspose2d weight: [cin, cout, 2, 2]
            base = key[: -len("weight")]
            out.pop(key)
            out[base + "proj.weight"] = w.mean(dim=(2, 3)).t().contiguous()[:, :, None, None]
            out[base + "proj.bias"] = out.pop(base + "bias")
    return out


class UNetDenoiser(nn.Module):
    """CNN_D: non-blind CAB U-Net (stages 2/3/6/3/2), additive skips, 1x1 out, global residual."""

    def __init__(
        self,
        widths: tuple[int, int, int],
        blocks: tuple[int, int, int, int, int],
        reduction: int,
        up: str = "transpose",
        extra_in: int = 0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        b1, b2, b3, b4, b5 = blocks

        def stage(cin: int, cout: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[CAB(cin if i == 0 else cout, cout, reduction, residual) for i in range(n)])

        self.enc1 = stage(6 + extra_in, w1, b1)
        self.enc2 = stage(w1, w2, b2)
        self.mid = stage(w2, w3, b3)
        self.up2 = up_layer(w3, w2, up)
        self.dec2 = stage(w2, w2, b4)
        self.up1 = up_layer(w2, w1, up)
        self.dec1 = stage(w1, w1, b5)
        self.out = nn.Conv2d(w1, 3, 1)

    def forward(
        self, x: torch.Tensor, noise_map: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [x, noise_map] if extra is None else [x, noise_map, extra]
        s1 = self.enc1(torch.cat(parts, dim=1))
        s2 = self.enc2(F.avg_pool2d(s1, 2))
        m = self.mid(F.avg_pool2d(s2, 2))
        d2 = self.dec2(self.up2(m) + s2)
        d1 = self.dec1(self.up1(d2) + s1)
        return x + self.out(d1)


class Denoiser(nn.Module):
    """Denoising module (papers.md 1.2.1): masked LR in [0, 1] -> (noise map, denoised LR)."""

    def __init__(self, size: JDSRSize, lr_size: int | None = None) -> None:
        super().__init__()
        self.estimator = NoiseEstimator(size.est_width, size.est_blocks, size.est_reduction)
        self.unet = UNetDenoiser(
            size.unet_widths,
            size.unet_blocks,
            size.reduction,
            size.unet_up,
            size.prior_channels,
            size.cab_residual,
        )
        self.face_prior: nn.Parameter | None = None
        if size.prior_channels:
            if lr_size is None:
                raise ValueError("prior_channels needs the model's input size (jdsr_fast only)")
            # small random start: CNN_D's weights for these channels start at zero on a warm start
            # (facesr.train.warmstart), so the prior changes nothing until training gives it a use
            self.face_prior = nn.Parameter(0.1 * torch.randn(1, size.prior_channels, lr_size, lr_size))

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise_map = self.estimator(lr)
        extra = None if self.face_prior is None else self.face_prior.expand(lr.shape[0], -1, -1, -1)
        return noise_map, self.unet(lr, noise_map, extra)


class SRModule(nn.Module):
    """Face SR module (papers.md 1.2.2): LR image in [0, 1] -> coarse, priors and SR at 128x128.

    Usable alone (the SR-only baseline feeds it the masked LR directly).
    """

    def __init__(self, size: JDSRSize) -> None:
        super().__init__()
        t, p, r = size.trunk, size.prior_width, size.reduction
        self.residual = size.sr_residual
        self.coarse = nn.Sequential(
            conv3x3(3, t), nn.ReLU(inplace=True), rcab_stack(t, size.coarse_blocks, r), conv3x3(t, 3)
        )
        self.encoder = nn.Sequential(
            conv3x3(3, t, stride=2),
            nn.ReLU(inplace=True),
            rcab_stack(t, size.encoder_blocks, r),
            conv3x3(t, t),
        )
        self.prior = nn.Sequential(
            nn.Conv2d(3, p, 7, stride=2, padding=3),
            nn.ReLU(inplace=True),
            rcab_stack(p, size.prior_blocks, r),
            *[
                Hourglass(p, size.hourglass_depth, size.hourglass_blocks, r)
                for _ in range(size.hourglass_count)
            ],
        )
        self.heatmap_head = nn.Conv2d(p, N_HEATMAPS, 1)
        self.parsing_head = nn.Conv2d(p, N_PARSING, 1)
        self.decoder = nn.Sequential(
            conv3x3(t + p, t),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(t, t, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
            rcab_stack(t, size.decoder_blocks, r),
            conv3x3(t, 3),
        )

    def _image(self, residual: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        # tanh keeps the image in [-1, 1] (FSRNet); the residual variant is a training-speed PROPOSAL.
        return base + residual if self.residual else torch.tanh(residual)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        # Upsampling needs no antialias; plain bicubic exports to ONNX Resize(cubic, a=-0.75).
        up = F.interpolate(lr, size=(HR_SIZE, HR_SIZE), mode="bicubic", align_corners=False) * 2.0 - 1.0
        coarse = self._image(self.coarse(up), up)
        feats = self.encoder(coarse)
        prior = self.prior(coarse)
        sr = self._image(self.decoder(torch.cat([feats, prior], dim=1)), up)
        return {
            "coarse": (coarse + 1.0) * 0.5,
            "heatmaps": self.heatmap_head(prior),
            "parsing": self.parsing_head(prior),
            "sr": (sr + 1.0) * 0.5,
        }


class JDSRGenerator(nn.Module):
    """Denoiser then SR module, trained jointly. ``forward(lr01)`` returns every intermediate:

    ``noise_map`` [B,3,h,w], ``denoised`` [B,3,h,w], ``coarse`` [B,3,128,128], ``heatmaps`` [B,68,64,64],
    ``parsing`` [B,11,64,64], ``sr`` [B,3,128,128]. ``coarse`` and ``sr`` lie in [0, 1] by construction
    (tanh); ``denoised`` is the unclamped global-residual output (clamp it for display only, so the
    pixel loss keeps its gradient outside the range).
    """

    def __init__(self, size: str | JDSRSize = "lite", scale: int = 4, **overrides: Any) -> None:
        super().__init__()
        if scale not in (4, 8):
            raise ValueError(f"JDSR scale must be 4 or 8, got {scale}")
        self.settings = resolve_size(size, overrides)
        self.size_name = size if isinstance(size, str) else "custom"
        self.scale = scale
        self.lr_size = input_size(scale)
        self.denoiser = Denoiser(self.settings)
        self.sr_module = SRModule(self.settings)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        noise_map, denoised = self.denoiser(lr)
        out = self.sr_module(denoised)
        return {"noise_map": noise_map, "denoised": denoised, **out}


@register_arch("jdsr")
def build_jdsr(size: str = "lite", scale: int = 4, **overrides: Any) -> JDSRGenerator:
    """Zoo builder for the JDSR-GAN generator (output key ``"sr"``)."""
    return JDSRGenerator(size=size, scale=scale, **overrides)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
