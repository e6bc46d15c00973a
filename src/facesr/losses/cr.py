"""Loss terms of Characteristic Regularisation and of the cycle-style baseline.

Every term is our PROPOSAL (papers.md 2.3): the CR paper's loss definitions could not be read.
One small function per term; the weights live in the training configs (``configs/cr_*.yaml``).

Notation: ``x_g`` genuine LR (unpaired), ``(x_a, y)`` artificial LR / HR pair with
``x_a = down4(y)``, ``G_C`` consistifier, ``G_S`` SR network, ``down`` the antialiased bicubic
down-sampler that made ``x_a``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Differentiable version of the artificial degradation (Pillow-style antialiased bicubic 1/scale).

    Uses the float path of :func:`facesr.resample.resize` (the same kernel that made ``x_a``;
    the data pipeline's ``downsample`` also rounds to 8 bits between passes, which has no gradient),
    or torch's antialiased bicubic when that module is absent. No clamping, for the same reason.
    """
    h, w = x.shape[-2:]
    try:
        from facesr.resample import resize
    except ImportError:
        return F.interpolate(x, scale_factor=1.0 / scale, mode="bicubic", align_corners=False, antialias=True)
    return resize(x, (h // scale, w // scale))


def lsgan_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: real -> 1, fake -> 0 (0.5 * each mean square). [PROPOSAL]

    For D_LR, ``real`` is D_LR(x_a) (artificial LR) and ``fake`` is D_LR(G_C(x_g)).
    """
    return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()


def lsgan_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: push D(fake) towards 1 (the CC adversarial term for G_C). [PROPOSAL]"""
    return ((fake_logits - 1.0) ** 2).mean()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding); ``sigma <= 0`` returns ``x`` unchanged."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(2.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2.0 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:  # tiny images: fall back to replicate padding of the full radius
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def content_preservation(
    consistified: torch.Tensor, genuine: torch.Tensor, blur_sigma: float = 0.0
) -> torch.Tensor:
    """CC content preservation ``||G_C(x_g) - x_g||_1``. [PROPOSAL]

    With ``blur_sigma > 0`` both sides are Gaussian-blurred first, so only low-frequency content
    (identity, pose, colour) is tied and G_C stays free to change the high-frequency
    *characteristics* (noise, JPEG blocks, sharpness) that make genuine LR different.
    """
    return (gaussian_blur(consistified, blur_sigma) - gaussian_blur(genuine, blur_sigma)).abs().mean()


@contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """Temporarily set ``requires_grad=False`` on ``net``'s parameters (restored afterwards).

    Gradients still flow *through* the network to its input; none reach its parameters.
    """
    saved = [p.requires_grad for p in net.parameters()]
    try:
        for p in net.parameters():
            p.requires_grad_(False)
        yield net
    finally:
        for p, flag in zip(net.parameters(), saved, strict=True):
            p.requires_grad_(flag)


def characteristic_regularisation(consistified: torch.Tensor, gs: nn.Module, scale: int = 4) -> torch.Tensor:
    """The CR term: degradation consistency through the FROZEN SR net. [PROPOSAL, our interpretation]

    ``L_CR = || down(G_S(G_C(x_g))) - G_C(x_g) ||_1``. G_S was trained on artificial pairs, where
    ``down(G_S(x_a)) ~= x_a`` holds; requiring the same of consistified genuine LR asks G_C to
    produce LR that G_S treats as artificial. G_S's parameters get no gradient (it is frozen
    inside this call); the gradient reaches G_C through both occurrences of ``G_C(x_g)``.
    """
    with frozen(gs):
        sr = gs(consistified)
    return (downsample(sr, scale) - consistified).abs().mean()


def sr_pixel(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """SR pixel loss ``||G_S(x_a) - y||_1`` on artificial pairs. [PROPOSAL]"""
    return (sr - hr).abs().mean()


def cycle_l1(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Cycle reconstruction ``||F(G(x)) - x||_1`` for the cycle-style baseline. [PROPOSAL, CycleGAN shape]"""
    return (reconstruction - original).abs().mean()
