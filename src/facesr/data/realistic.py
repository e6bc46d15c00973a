"""Real-world LR degradations generated on the fly, seeded, batched: blur, resampling, noise, JPEG.

Why: a model trained only on clean antialiased bicubic LR learns one kernel. Small faces in real photos were
blurred by a lens and motion, resized by unknown software, carry sensor noise and JPEG blocks; a
bicubic-only model sharpens those artefacts instead of removing them. This is a first-order form of
Real-ESRGAN's pipeline (Wang et al., ICCVW 2021, "classical degradation model": blur -> resize -> noise ->
JPEG), applied between the 128 px (masked) face and the LR input, with ranges narrowed for faces of 16-64 px
(PROPOSAL; the JDSR-GAN paper uses clean bicubic only):

1. **blur** (p ``blur_prob``): isotropic or anisotropic Gaussian at the HR size, sigma scaled by the factor
   (sigma ~ U(``blur_sigma``) * scale / 4), one random kernel per face, one grouped convolution for the batch;
2. **resize** to the LR size with a random method (antialiased bicubic as in the benchmarks, antialiased
   bilinear, or area), and with p ``rescale_prob`` a detour through a smaller size (factor U(``rescale_range``))
   and back up with bilinear or bicubic: faces that were even smaller than the model input;
3. **noise** (p ``noise_prob``): Gaussian with sigma ~ U(``noise_sigma``)/255, grey (p ``gray_noise_prob``) or
   per channel;
4. **JPEG** (p ``jpeg_prob``): quality ~ U(``jpeg_quality``), encoded and decoded by Pillow at the LR size
   (faces are tiny, so the per-image codec is cheap).

Each face is left clean (plain antialiased bicubic, the benchmark's LR) with p ``clean_prob``, so the
frozen benchmark's distribution stays in the mix. Every random number comes from the caller's
``torch.Generator``, so a seed gives the same degradations on any machine (Pillow's JPEG codec is
deterministic for given bytes and quality).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facesr.pixels import quantise_half_up
from facesr.resample import downsample


@dataclass(frozen=True)
class DegradationSettings:
    """Probabilities and ranges of :class:`RealDegradation` (defaults: PROPOSAL, docs/data.md)."""

    clean_prob: float = 0.3
    blur_prob: float = 0.6
    blur_sigma: tuple[float, float] = (0.3, 1.6)
    aniso_prob: float = 0.3
    rescale_prob: float = 0.3
    rescale_range: tuple[float, float] = (0.6, 0.95)
    noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 10.0)
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def gaussian_kernels(sx: torch.Tensor, sy: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Per-face normalised 2-D Gaussian kernels ``[N, size, size]`` (anisotropic: sx, sy, rotation)."""
    r = (size - 1) / 2.0
    ax = torch.linspace(-r, r, size)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = c * xx + s * yy
    v = -s * xx + c * yy
    k = torch.exp(-0.5 * ((u / sx[:, None, None]) ** 2 + (v / sy[:, None, None]) ** 2))
    return k / k.sum(dim=(1, 2), keepdim=True)


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each face of ``x`` [N,C,H,W] with its own kernel (one grouped conv, reflect padding)."""
    n, ch, h, w = x.shape
    k = kernels.shape[-1]
    weight = kernels.to(x)[:, None].repeat_interleave(ch, dim=0)  # [N*C, 1, k, k]
    xp = F.pad(x.reshape(1, n * ch, h, w), (k // 2,) * 4, mode="reflect")
    return F.conv2d(xp, weight, groups=n * ch).reshape(n, ch, h, w)


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress each face of ``x`` [N,3,h,w] in [0, 1] at its quality (Pillow, 4:2:0 as cameras do)."""
    arr = quantise_half_up(x).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i in range(len(arr)):
        buf = io.BytesIO()
        Image.fromarray(arr[i]).save(buf, format="JPEG", quality=int(quality[i]))
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).float().div_(255.0)


class RealDegradation:
    """``degrade(hr [N,3,H,W] in [0,1], scale, generator) -> lr [N,3,H/scale,W/scale]`` in [0, 1]."""

    def __init__(self, settings: DegradationSettings | None = None) -> None:
        self.s = settings or DegradationSettings()

    @torch.no_grad()
    def __call__(self, hr: torch.Tensor, scale: int, g: torch.Generator) -> torch.Tensor:
        s = self.s
        n, _, h, w = hr.shape
        lh, lw = h // scale, w // scale
        dev = hr.device
        clean = torch.rand(n, generator=g) < s.clean_prob
        # 1. blur at HR (sigma in LR-relative units: scaled by the factor)
        do_blur = (torch.rand(n, generator=g) < s.blur_prob) & ~clean
        sx = _uniform(n, *s.blur_sigma, g) * scale / 4.0
        aniso = torch.rand(n, generator=g) < s.aniso_prob
        sy = torch.where(aniso, _uniform(n, *s.blur_sigma, g) * scale / 4.0, sx)
        theta = _uniform(n, 0.0, float(np.pi), g)
        x = hr
        if bool(do_blur.any()):
            size = 2 * int(np.ceil(3.0 * float(torch.maximum(sx, sy).max()))) + 1
            blurred = blur(hr, gaussian_kernels(sx, sy, theta, size))
            x = torch.where(do_blur.to(dev)[:, None, None, None], blurred, hr)
        # 2. resize with a random method, sometimes through a smaller size first
        method = torch.randint(0, 3, (n,), generator=g)
        method[clean] = 0
        rescale = (torch.rand(n, generator=g) < s.rescale_prob) & ~clean
        factor = _uniform(n, *s.rescale_range, g)
        up_cubic = torch.rand(n, generator=g) < 0.5
        lr = torch.empty(n, 3, lh, lw, device=dev)
        for m in range(3):
            sel = (method == m).nonzero().flatten()
            if len(sel) == 0:
                continue
            part = x[sel.to(dev)]
            if m == 0:
                out = downsample(part, scale)
            elif m == 1:
                out = F.interpolate(part, size=(lh, lw), mode="bilinear", antialias=True, align_corners=False)
            else:
                out = F.interpolate(part, size=(lh, lw), mode="area")
            lr[sel.to(dev)] = out
        for i in rescale.nonzero().flatten().tolist():
            sh = max(4, round(lh * float(factor[i])))
            sw = max(4, round(lw * float(factor[i])))
            small = F.interpolate(lr[i : i + 1], size=(sh, sw), mode="bilinear", antialias=True)
            mode = "bicubic" if bool(up_cubic[i]) else "bilinear"
            lr[i : i + 1] = F.interpolate(small, size=(lh, lw), mode=mode, align_corners=False)
        # 3. noise
        do_noise = (torch.rand(n, generator=g) < s.noise_prob) & ~clean
        sigma = _uniform(n, *s.noise_sigma, g) / 255.0
        gray = torch.rand(n, generator=g) < s.gray_noise_prob
        eps = torch.randn(n, 3, lh, lw, generator=g)
        eps = torch.where(gray[:, None, None, None], eps[:, :1].expand(-1, 3, -1, -1), eps)
        noise = (eps * (sigma * do_noise)[:, None, None, None]).to(dev)
        lr = (lr + noise).clamp_(0.0, 1.0)
        # 4. JPEG
        do_jpeg = (torch.rand(n, generator=g) < s.jpeg_prob) & ~clean
        quality = torch.randint(s.jpeg_quality[0], s.jpeg_quality[1] + 1, (n,), generator=g)
        idx = do_jpeg.nonzero().flatten()
        if len(idx):
            lr[idx.to(dev)] = jpeg(lr[idx.to(dev)], quality[idx])
        return lr
