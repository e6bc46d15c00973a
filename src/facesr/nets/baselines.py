"""Baselines built from the JDSR-GAN modules, so that comparisons change one thing at a time.

* ``jdsr_sr_only``: the SR module applied directly to the masked LR (no denoising module). It shows
  what the denoiser adds. [PROPOSAL: our ablation, not in the paper]
* ``jdsr_two_stage``: the denoiser followed by the SR module, i.e. the same networks as ``jdsr``, but
  trained separately (the denoiser alone on masked -> clean LR; the SR module alone on clean LR -> HR;
  chained only at test time by ``facesr combine-two-stage``), which is the CBDNet -> FSRNet shape of the
  paper's baselines (papers.md 1.7). The architecture is identical to the joint model on purpose; only
  the training recipe differs.

Both return the same dict keys as the SR module / JDSR generator, with output key ``"sr"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facesr.geometry import input_size
from facesr.nets.jdsr import JDSRGenerator, SRModule, resolve_size
from facesr.nets.registry import register_arch


class SROnly(nn.Module):
    """SR module alone: masked LR in [0, 1] -> coarse, heatmaps, parsing, sr."""

    def __init__(self, size: str = "lite", scale: int = 4, **overrides: Any) -> None:
        super().__init__()
        if scale not in (4, 8):
            raise ValueError(f"scale must be 4 or 8, got {scale}")
        self.settings = resolve_size(size, overrides)
        self.scale = scale
        self.lr_size = input_size(scale)
        self.sr_module = SRModule(self.settings)

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.sr_module(lr)


@register_arch("jdsr_sr_only")
def build_sr_only(size: str = "lite", scale: int = 4, **overrides: Any) -> SROnly:
    """Zoo builder for the SR-only baseline (output key ``"sr"``)."""
    return SROnly(size=size, scale=scale, **overrides)


@register_arch("jdsr_two_stage")
def build_two_stage(size: str = "lite", scale: int = 4, **overrides: Any) -> JDSRGenerator:
    """Zoo builder for the two-stage baseline: same modules as ``jdsr``, trained stage by stage."""
    return JDSRGenerator(size=size, scale=scale, **overrides)
