"""Pixel loss (papers.md 1.4).

[PAPER figure] both the denoising and the SR module have a pixel loss. [UNSTATED -> PROPOSAL] its form:
mean absolute error (FCSR-GAN uses L1; CBDNet used L2). L1 keeps edges sharper than L2 and is less
dominated by the large errors inside the mask region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between two image batches (any shape, same shape)."""
    return F.l1_loss(pred, target)
