"""WGAN-GP critic for 128x128 faces (papers.md 1.3).

[SECONDARY J3] the discriminator follows WGAN-GP and judges the SR output against real HR faces.
[UNSTATED -> PROPOSAL] its layers: conv3x3(64) + LeakyReLU(0.2), then pairs [conv3x3 s1, conv4x4 s2]
with LeakyReLU(0.2) going 64 -> 128 -> 256 -> 512 channels and 128 -> 8 pixels, then a linear layer to
one unbounded score. There is no BatchNorm: the gradient penalty is defined per sample, and batch
statistics would couple the samples (Gulrajani et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn


class WGANCritic(nn.Module):
    """Critic ``D(x)`` on RGB images in [0, 1] (mapped to [-1, 1] inside) -> one score per image."""

    def __init__(
        self, width: int = 64, image_size: int = 128, widths: tuple[int, ...] = (1, 2, 4, 8)
    ) -> None:
        super().__init__()
        chans = [width * m for m in widths]
        layers: list[nn.Module] = [nn.Conv2d(3, chans[0], 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        cin = chans[0]
        for c in chans:
            layers += [
                nn.Conv2d(cin, c, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c, c, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = c
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(chans)
        self.head = nn.Linear(cin * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2.0 - 1.0).flatten(1)).squeeze(1)
