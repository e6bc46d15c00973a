"""Characteristic Regularisation (CR) networks: consistifier G_C, SR net G_S, discriminators.

The CR paper's method section could not be read (papers.md section 2), so every architecture here
is our PROPOSAL built around what its abstract states: a *consistifier* maps genuine LR faces to
artificial-LR-like LR faces of the same size, and a separate SR network trained on artificial
pairs super-resolves them. Inference is ``G_S(G_C(x))``. Sizes follow the Bulat et al. protocol
the paper compares with: 16x16 LR -> 64x64 HR (x4).

Registered architectures (:func:`facesr.nets.registry.register_arch`):

* ``"cr"``: inference model ``G_S(G_C(x))``.
* ``"cr_sr_only"``: ``G_S`` alone (the SR-only baseline: artificial-LR training, genuine input).
* ``"cycle_sr"``: the cycle-style baseline's inference path (genuine LR -> HR generator).

Output size. The restore pipeline frames every face at 128x128. CR is learned 16 -> 64, so these
inference models take ``out_size`` (default 128) and, when it is larger than 64, finish with an
antialiased bicubic x2. Weights are saved with their sizes (``facesr.lr_size=16``,
``facesr.hr_size=128``, so ``facesr.scale=8`` is the overall ratio) and ``facesr.learned_scale=4``.
Pass ``out_size=64`` to get the network's native output (the genuine-LR evaluation does).

G_S comes in two forms (``gs_arch``): ``"srresnet"`` (:class:`SRNet`, trained from scratch; the first
CPU runs and the shipped ``cr-x4``) and ``"rlfn"`` (:class:`facesr.nets.fast.FastSRModule` at x4: the
LR-space RLFN body of ``jdsr_fast``, 16x16 -> 64x64, which starts from the shared general-SR weights
``../shared/pretrained/rlfn_prune_x4_div2k.safetensors``; ``gs_width`` / ``gs_blocks`` / ``gs_kernel`` /
``bicubic_skip`` do not apply to it: its shape is fixed by the pretrained weights). [OURS]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from facesr.geometry import CR_LR_SIZE, HR_SIZE
from facesr.geometry import CR_SCALE as SCALE
from facesr.nets.registry import register_arch


class ResBlock(nn.Module):
    """conv3x3-ReLU-conv3x3 + identity, no BatchNorm (EDSR-style; BN hurts SR). [PROPOSAL]"""

    def __init__(self, width: int, act: str = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.PReLU(width) if act == "prelu" else nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Consistifier(nn.Module):
    """G_C: genuine LR -> artificial-LR-like LR, same size (papers.md 2.2). [PROPOSAL]

    Head conv3x3, ``blocks`` residual blocks, tail conv3x3 -> 3 channels, global residual
    ``x + tail``: the network starts as (near) identity, which is what the content-preservation
    loss asks for, so it only has to learn the *characteristic* change (blur, noise, JPEG).
    The tail is zero-initialised for exactly that reason.

    ``luma=True`` [OURS, session 7]: the tail has one output channel, added equally to R, G and B, so
    G_C can change brightness detail (blur, noise, blocks) but never colour. On real photos the
    unconstrained G_C painted coloured fringes around the eyes that G_S then enlarged (docs/cr.md 6).
    """

    def __init__(self, width: int = 64, blocks: int = 8, luma: bool = False) -> None:
        super().__init__()
        self.luma = bool(luma)
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, 1 if self.luma else 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return x + self.tail(self.body(h) + h)


class SRNet(nn.Module):
    """G_S: x4 SRResNet-style super-resolver, 16x16 -> 64x64 (papers.md 2.2). [PROPOSAL]

    Head conv9x9 + PReLU, ``blocks`` residual blocks (no BatchNorm), conv + long skip,
    two [conv -> PixelShuffle(2) -> PReLU] stages, conv9x9 -> 3. With ``bicubic_skip`` the output
    is added to the bicubic up-sampled input (residual learning; our addition so that short CPU
    trainings start at bicubic quality instead of grey; off = plain SRResNet). ``kernel`` is the
    head/tail kernel (SRResNet: 9; 3 makes CPU runs ~2x faster, the 9x9 tail at 64x64 dominates).
    """

    def __init__(self, width: int = 64, blocks: int = 16, bicubic_skip: bool = True, kernel: int = 9) -> None:
        super().__init__()
        self.bicubic_skip = bool(bicubic_skip)
        pad = kernel // 2
        self.head = nn.Sequential(nn.Conv2d(3, width, kernel, padding=pad), nn.PReLU(width))
        self.body = nn.Sequential(*[ResBlock(width, act="prelu") for _ in range(blocks)])
        self.body_tail = nn.Conv2d(width, width, 3, padding=1)
        ups: list[nn.Module] = []
        for _ in range(2):
            ups += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, 3, kernel, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        out = self.tail(self.up(h + self.body_tail(self.body(h))))
        if self.bicubic_skip:
            out = out + F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)
        return out


GS_ARCHS = ("srresnet", "rlfn")


def make_gs(
    gs_arch: str = "srresnet", width: int = 64, blocks: int = 16, bicubic_skip: bool = True, kernel: int = 9
) -> nn.Module:
    """G_S of the given family (see the module docstring): SRResNet-style or the pretrained-shape RLFN."""
    if gs_arch == "srresnet":
        return SRNet(width, blocks, bicubic_skip, kernel)
    if gs_arch == "rlfn":
        from facesr.nets.fast import FastSRModule

        return FastSRModule(SCALE)
    raise ValueError(f"gs_arch must be one of {GS_ARCHS}, got {gs_arch!r}")


class Downsampler(nn.Module):
    """Learned HR -> genuine-LR generator of the cycle-style baseline (64 -> 16). [PROPOSAL]

    Antialiased bicubic x1/4 plus a small residual CNN on the LR, so it starts as the artificial
    degradation and learns the genuine one (the shape of Bulat et al.'s High-to-Low network,
    much smaller).
    """

    def __init__(self, width: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.refine = Consistifier(width, blocks)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(y, scale_factor=1.0 / SCALE, mode="bicubic", align_corners=False, antialias=True)
        return self.refine(x)


class PatchDiscriminator(nn.Module):
    """Spectrally normalised conv discriminator with LeakyReLU(0.2), patch logits. [PROPOSAL]

    ``size=16`` gives D_LR (4 convs: 16 -> 8 -> 4, logits 4x4); ``size=64`` gives the optional
    SRGAN-like D_HR (two more stride-2 stages).
    """

    def __init__(self, size: int = CR_LR_SIZE, width: int = 64) -> None:
        super().__init__()
        extra = {16: 0, 32: 1, 64: 2, 128: 3}.get(int(size))
        if extra is None:
            raise ValueError(f"PatchDiscriminator: unsupported size {size}")
        chans = [3, width, width * 2, width * 4] + [width * 4] * extra
        layers: list[nn.Module] = []
        for i in range(len(chans) - 1):
            stride = 1 if i == 0 else 2
            layers += [
                spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 3, stride, 1)),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(spectral_norm(nn.Conv2d(chans[-1], 1, 3, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Inference(nn.Module):
    """Shared output handling: native 64 px, or bicubic x2 to the Restorer's 128 px."""

    out_size: int

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.out_size:
            y = F.interpolate(
                y,
                size=(self.out_size, self.out_size),
                mode="bicubic",
                align_corners=False,
                antialias=self.out_size < y.shape[-1],
            )
        return y


class CRModel(_Inference):
    """Inference ``G_S(G_C(x))`` (papers.md 2.4). ``gc=None`` gives the SR-only baseline."""

    def __init__(self, gc: Consistifier | None, gs: nn.Module, out_size: int = HR_SIZE) -> None:
        super().__init__()
        self.gc = gc
        self.gs = gs
        self.out_size = int(out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gc is not None:
            x = self.gc(x)
        return self._finish(self.gs(x))


class CycleSR(_Inference):
    """Cycle-style baseline generator: two concatenated CNNs (LR->LR, then x4), trained end to end."""

    def __init__(
        self,
        gc_width: int = 64,
        gc_blocks: int = 8,
        gs_width: int = 64,
        gs_blocks: int = 16,
        bicubic_skip: bool = True,
        out_size: int = HR_SIZE,
        gs_kernel: int = 9,
        gs_arch: str = "srresnet",
    ) -> None:
        super().__init__()
        self.gc = Consistifier(gc_width, gc_blocks)
        self.gs = make_gs(gs_arch, gs_width, gs_blocks, bicubic_skip, gs_kernel)
        self.out_size = int(out_size)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.gs(self.gc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(self.forward_native(x))


@register_arch("cr")
def build_cr(
    gc_width: int = 64,
    gc_blocks: int = 8,
    gs_width: int = 64,
    gs_blocks: int = 16,
    bicubic_skip: bool = True,
    out_size: int = HR_SIZE,
    gs_kernel: int = 9,
    gs_arch: str = "srresnet",
    gc_luma: bool = False,
) -> CRModel:
    """CR inference model G_S(G_C(x)), 16x16 -> ``out_size`` (``gc_luma``: see :class:`Consistifier`)."""
    gs = make_gs(gs_arch, gs_width, gs_blocks, bicubic_skip, gs_kernel)
    return CRModel(Consistifier(gc_width, gc_blocks, gc_luma), gs, out_size)


@register_arch("cr_sr_only")
def build_cr_sr_only(
    gs_width: int = 64,
    gs_blocks: int = 16,
    bicubic_skip: bool = True,
    out_size: int = HR_SIZE,
    gs_kernel: int = 9,
    gs_arch: str = "srresnet",
) -> CRModel:
    """SR-only baseline: G_S trained on artificial pairs, applied to genuine LR directly."""
    return CRModel(None, make_gs(gs_arch, gs_width, gs_blocks, bicubic_skip, gs_kernel), out_size)


@register_arch("cycle_sr")
def build_cycle_sr(
    gc_width: int = 64,
    gc_blocks: int = 8,
    gs_width: int = 64,
    gs_blocks: int = 16,
    bicubic_skip: bool = True,
    out_size: int = HR_SIZE,
    gs_kernel: int = 9,
    gs_arch: str = "srresnet",
) -> CycleSR:
    """Cycle-style baseline's inference path (genuine LR -> HR)."""
    return CycleSR(gc_width, gc_blocks, gs_width, gs_blocks, bicubic_skip, out_size, gs_kernel, gs_arch)
