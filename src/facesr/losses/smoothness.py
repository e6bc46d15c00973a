"""Smoothness loss: anisotropic total variation, L1 (papers.md 1.4).

[PAPER figure] a "smooth loss" on the denoised LR and on the SR output. [UNSTATED -> PROPOSAL] its form is
FCSR-GAN's TV-L1, sum |I(i,j+1) - I(i,j)| + |I(i+1,j) - I(i,j)|. We average instead of summing so that
the weight does not depend on the image size (LR vs HR).
"""

from __future__ import annotations

import torch


def tv_l1(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute horizontal plus mean absolute vertical neighbour difference of ``[B, C, H, W]``."""
    dh = (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
    dv = (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
    return dh + dv
