"""RLFN: a Residual Local Feature Network that works at the input resolution and upsamples at the end.

Our own implementation of the architecture of Kong et al., "Residual Local Feature Network for Efficient
Super-Resolution" (CVPRW 2022), pruned form ``RLFN_Prune`` (46 feature / 48 mid channels, 4 blocks),
written so that the general-SR weights in ``../shared/pretrained/rlfn_prune_x4_div2k.safetensors``
(trained on DIV2K + LSDIR, bicubic x4, by the NTIRE 2024 ESR organisers; MIT) load with every key used.
Parameter names follow the original state dict (``conv_1``, ``block_N.c1_r``, ``block_N.esa.conv1``,
``upsampler.0``) for exactly that reason.

Why this network: it does all of its work on the LR grid (32x32 for a x4 face), 16x cheaper per layer than
the paper's SR module on a bicubic-upsampled 128x128 grid, and general-SR weights give it a large head
start on a 2-core CPU (``../shared/pretrained/README.md``).

The pretrained weights expect RGB in 0-255; :class:`RLFN` takes and returns [0, 1] and rescales inside.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ModelError

#: pixel range of the pretrained weights (the NTIRE 2024 ESR code feeds 0-255 images)
PIXEL_RANGE = 255.0
PRETRAINED_RLFN = "rlfn_prune_x4_div2k.safetensors"


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet), RLFN's light form: a strided, pooled branch gates the features.

    The 7x7/3 max-pool needs a map of at least 7 px after the stride-2 conv, i.e. an input of 16 px or
    more: the smallest face input (x8) is exactly 16 px.
    """

    def __init__(self, channels: int, esa_channels: int = 16) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        pooled = F.max_pool2d(c1, kernel_size=7, stride=3)
        c3 = F.interpolate(self.conv3(pooled), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convs with a local skip, a 1x1 conv, then ESA."""

    def __init__(self, channels: int, mid: int, esa_channels: int = 16) -> None:
        super().__init__()
        self.c1_r = nn.Conv2d(channels, mid, 3, padding=1)
        self.c2_r = nn.Conv2d(mid, mid, 3, padding=1)
        self.c3_r = nn.Conv2d(mid, channels, 3, padding=1)
        self.c5 = nn.Conv2d(channels, channels, 1)
        self.esa = ESA(channels, esa_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), 0.05)
        out = F.leaky_relu(self.c2_r(out), 0.05)
        out = F.leaky_relu(self.c3_r(out), 0.05)
        return self.esa(self.c5(out + x))


class RLFNBody(nn.Module):
    """Everything before the upsampler: head conv, RLFBs, tail conv and the long skip (LR-space features)."""

    def __init__(self, channels: int = 46, mid: int = 48, blocks: int = 4, esa_channels: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.conv_1 = nn.Conv2d(3, channels, 3, padding=1)
        for i in range(blocks):
            self.add_module(f"block_{i + 1}", RLFB(channels, mid, esa_channels))
        self.blocks = blocks
        self.conv_2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x255: torch.Tensor) -> torch.Tensor:
        feat = self.conv_1(x255)
        out = feat
        for i in range(self.blocks):
            out = getattr(self, f"block_{i + 1}")(out)
        return self.conv_2(out) + feat


def pixel_shuffle_head(channels: int, scale: int) -> nn.Sequential:
    """conv3x3 to 3*scale^2 channels, then pixel shuffle (RLFN's upsampler; key ``upsampler.0``)."""
    return nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))


class RLFN(nn.Module):
    """General-purpose RLFN x``scale``: RGB [0, 1] in, RGB [0, 1] out (unclamped), ``scale`` times larger."""

    def __init__(
        self, scale: int = 4, channels: int = 46, mid: int = 48, blocks: int = 4, esa_channels: int = 16
    ) -> None:
        super().__init__()
        self.scale = int(scale)
        self.body = RLFNBody(channels, mid, blocks, esa_channels)
        self.upsampler = pixel_shuffle_head(channels, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.body(x * PIXEL_RANGE)) / PIXEL_RANGE


def pretrained_path(name: str = PRETRAINED_RLFN) -> Path:
    """The shared general-SR weights (``FACESR_PRETRAINED`` or ``<data root>/../pretrained``)."""
    env = os.environ.get("FACESR_PRETRAINED")
    if env:
        return Path(env).expanduser() / name
    from facesr.paths import data_root

    return data_root(must_exist=False).parent / "pretrained" / name


def read_pretrained_rlfn(path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The original RLFN_Prune state dict (float32) from a safetensors file, keys as the authors wrote them.

    A file named ``rlfn_prune_x4_div2k.safetensors`` (the shared one, wherever it lives) is checked
    against the sha256 that ``../shared/pretrained/README.md`` records
    (:func:`facesr.checksums.verify_pretrained`; a one-line ModelError if it differs). A file under any
    other name (the user's own RLFN_Prune weights, a renamed copy) has no known hash and is loaded
    unchecked; its keys and shapes are still checked where it is loaded (:func:`load_strict`).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from facesr.checksums import verify_pretrained

    p = Path(path) if path is not None else pretrained_path()
    if not p.is_file():
        raise ModelError(
            f"pretrained RLFN weights {str(p)!r} not found (set FACESR_PRETRAINED to their folder)"
        )
    verify_pretrained(p)  # issue 17: every loaded weights file is hash-checked where a hash is known
    try:
        return {k: v.float() for k, v in load_file(str(p)).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{p}: not a readable safetensors file ({exc})") from None


def body_state(original: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split an original RLFN state dict into (body keys, upsampler keys) in our module's names."""
    body = {k: v for k, v in original.items() if not k.startswith("upsampler.")}
    up = {k[len("upsampler.") :]: v for k, v in original.items() if k.startswith("upsampler.")}
    return body, up


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line ModelError naming what does not fit."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "shape mismatch"
        raise ModelError(f"{what}: weights do not fit ({first})") from None


def shrink_upsampler(
    weight: torch.Tensor, bias: torch.Tensor, src: int, dst: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initialise a x``dst`` pixel-shuffle conv from a x``src`` one (``src`` a multiple of ``dst``).

    Output sub-pixel (a, b) of the x``dst`` grid covers a ``k x k`` block (k = src/dst) of the x``src``
    grid; averaging those filters makes the x``dst`` head start as the box-downsampled x``src`` output,
    so a x2 face model starts from the x4 general-SR weights instead of from noise.
    """
    k = src // dst
    cin = weight.shape[1]
    w = weight.view(3, src, src, cin, *weight.shape[2:])
    b = bias.view(3, src, src)
    w = w.view(3, dst, k, dst, k, cin, *weight.shape[2:]).mean(dim=(2, 4))
    b = b.view(3, dst, k, dst, k).mean(dim=(2, 4))
    return w.reshape(3 * dst * dst, cin, *weight.shape[2:]).contiguous(), b.reshape(-1).contiguous()
