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


def masked_l1(pred: torch.Tensor, target: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Mean absolute error inside a region: ``coverage`` [N,1,h,w] in [0, 1] (any h, w: area-resized to the
    images' size), averaged over the covered pixels of the whole batch (zero when nothing is covered).

    Why batch-wide: per-face means would give a face with a sliver of mask the same weight as a full mask.
    """
    if coverage.shape[-2:] != pred.shape[-2:]:
        coverage = F.adaptive_avg_pool2d(coverage, pred.shape[-2:])
    weight = coverage.to(pred.dtype)
    covered = weight.sum() * pred.shape[1]
    return (weight * (pred - target).abs()).sum() / covered.clamp_min(1.0)
