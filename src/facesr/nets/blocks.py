"""Building blocks of the JDSR-GAN generator: CAB, RCAB and the hourglass.

The paper draws two attention blocks (papers.md 1.2.1 / 1.2.2, [PAPER figure via J3]):

* **CAB** (denoising module): Conv3x3 -> ReLU -> channel attention, **no identity skip**. It replaces
  every plain conv+ReLU of CBDNet, so it may change the channel count like that conv did.
* **RCAB** (SR module, RCAN-style): Conv3x3 -> ReLU -> Conv3x3 -> channel attention -> + input.

The hourglass of the prior branch is the paper's "Hourglass block" with FSRNet's recursive layout
([UNSTATED -> PROPOSAL]); its residual units are RCABs without BatchNorm, so the whole generator has a
single block type and no normalisation layer (which also keeps ONNX export and tiny batches simple).
No block has data-dependent control flow, so everything traces to a static ONNX graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding (the default conv of every block)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: GAP -> 1x1 -> ReLU -> 1x1 -> sigmoid, then rescale channels.

    ``reduction`` is the bottleneck ratio (16 for 64+ channels, 8 for CNN_E's 32; PROPOSAL); the
    bottleneck never drops below 4 channels so that narrow ``lite`` widths still have a usable gate.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        # A positive squeeze bias makes every bottleneck unit start active: with only 4-16 ReLU units, a
        # unit that is negative for every input gets no gradient, and at default init some gates start
        # fully dead (seen as zero gradients in tests). PROPOSAL; the paper does not say.
        nn.init.constant_(self.gate[1].bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class CAB(nn.Module):
    """Channel attention block as drawn in the paper: Conv3x3 -> ReLU -> channel attention (no skip)."""

    def __init__(self, cin: int, cout: int, reduction: int = 16, residual: bool = False) -> None:
        super().__init__()
        self.conv = conv3x3(cin, cout)
        self.act = nn.ReLU(inplace=True)
        self.attention = ChannelAttention(cout, reduction)
        # PROPOSAL (jdsr_fast): add the input when the shapes allow. Without a skip, a stack of CABs shrinks
        # its activations block by block (each is gated by a sigmoid < 1) and its ReLUs die: the shipped
        # session-4 CNN_D had 10 % of its last stage active and changed its input by 4e-4 on average,
        # i.e. it had learnt nothing while the SR module did the mask removal (docs/jdsr-fast.md, session 5).
        self.residual = residual and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.act(self.conv(x)))
        return x + out if self.residual else out


class RCAB(nn.Module):
    """Residual channel attention block (RCAN): Conv -> ReLU -> Conv -> attention, plus the input."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels),
            nn.ReLU(inplace=True),
            conv3x3(channels, channels),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def rcab_stack(channels: int, n: int, reduction: int = 16) -> nn.Sequential:
    """``n`` RCABs in a row (an empty stack is the identity)."""
    return nn.Sequential(*[RCAB(channels, reduction) for _ in range(n)])


class Hourglass(nn.Module):
    """Recursive hourglass (Newell et al., as used by FSRNet's prior branch), RCAB residual units.

    At each level: a skip branch of ``blocks`` RCABs at full resolution, and a low branch that
    max-pools by 2, applies ``blocks`` RCABs, recurses (or ``blocks`` RCABs at the bottom), applies
    ``blocks`` RCABs and is nearest-upsampled back; the two are added. ``depth`` levels need the
    input side to be divisible by ``2**depth`` (64 -> 4 at depth 4).
    """

    def __init__(self, channels: int, depth: int = 4, blocks: int = 1, reduction: int = 16) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("hourglass depth must be >= 1")
        self.depth = depth
        self.skip = rcab_stack(channels, blocks, reduction)
        self.down = rcab_stack(channels, blocks, reduction)
        self.inner: nn.Module = (
            Hourglass(channels, depth - 1, blocks, reduction)
            if depth > 1
            else rcab_stack(channels, blocks, reduction)
        )
        self.up = rcab_stack(channels, blocks, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")
