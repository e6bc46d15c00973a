"""8-bit pixels <-> float tensors: the one quantisation step every score and saved image goes through.

Why one module: a face is scored "as if saved to PNG" (rounded to 8 bits) by every benchmark runner and
speed check; if each wrote its own ``clamp / * 255 / round`` the rounding could drift apart (round half
to even here, ``floor(x + 0.5)`` elsewhere) and two numbers of the same model would disagree. Only torch
and numpy are imported.

Two roundings, each written once: :func:`quantise` / :func:`round8` (half to even, as ``torch.round``)
for scores and restored faces, and :func:`quantise_half_up` (``floor(255 x + 0.5)``) for the data
pipeline and the preview grids: the frozen benchmark PNGs were made with it, so it stays. They differ
only where ``255 x`` is exactly halfway between two levels.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(batch_u8: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(batch_u8)).permute(0, 3, 1, 2).float().div_(255.0)


def quantise(img01: torch.Tensor) -> np.ndarray:
    """float [B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3], rounded (half to even) as PNG saving does."""
    return (
        img01.detach()
        .float()
        .clamp(0, 1)
        .mul(255.0)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


def quantise_half_up(img01: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 tensor of the same shape, ``floor(255 x + 0.5)`` (round half up).

    The data pipeline's rounding (frozen benchmark PNGs, the degradation pipeline's 8-bit faces) and the
    preview grids'; scores use :func:`quantise`.
    """
    return (img01.clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8)


def round8(img01: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> the same tensor rounded to the nearest of the 256 8-bit levels (stays float).

    Equal to ``to_tensor(quantise(x))`` but without leaving the device; used where scoring happens on
    float tensors (the CR benchmarks, the speed levers' PSNR check).
    """
    return img01.float().clamp(0, 1).mul(255).round().div(255)
