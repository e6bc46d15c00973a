"""Face prior loss (papers.md 1.4).

[PAPER figure] a "face prior loss" on the estimated prior I_p. [UNSTATED -> PROPOSAL] its form:
alpha * MSE(heatmaps) + beta * MSE(parsing maps), alpha = beta = 1 (FCSR-GAN / FSRNet). The ground truth
is rendered from the clean HR face's 68 landmarks (Gaussian heatmaps and landmark-polygon parsing maps at
64x64; see facesr.data.priors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prior_loss(
    heatmaps: torch.Tensor,
    heatmaps_gt: torch.Tensor,
    parsing: torch.Tensor,
    parsing_gt: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> torch.Tensor:
    """alpha * MSE(heatmaps, GT) + beta * MSE(parsing, GT)."""
    return alpha * F.mse_loss(heatmaps, heatmaps_gt) + beta * F.mse_loss(parsing, parsing_gt)
