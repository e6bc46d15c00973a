"""The background of an upscaled photo: bicubic, or a general SR network run tile by tile.

Why a module of its own: ``facesr restore --upscale N`` enlarges the whole photo, and only the
faces go through the face models; everything else is this step. Bicubic is Pillow's (C, uint8 in
and out, so memory is the output image and little else). A network from the zoo (any restorer
that maps an image up by an integer factor, e.g. the general-SR ``rlfn-x4``) runs on tiles of
``tile`` input px with ``overlap`` px of context on each side that are cut away again, so peak
memory is one tile's activations whatever the photo size, and no seam shows at tile borders.
When the network's factor is not N, each tile's output is resized to N (antialiased when reducing)
before its context is cut away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from facesr.errors import ModelError
from facesr.pixels import quantise

BICUBIC = "bicubic"
TILE = 256
OVERLAP = 16


#: Output rows (bicubic) or tile rows (network) made at a time: temporaries are one band, not one photo.
BAND_ROWS = 256


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pillow bicubic resize of a uint8 RGB array (antialiased when reducing).

    Made band by band (Pillow's ``box`` resize reads the filter's support outside the box, so the
    bands are bit-identical to one whole resize), into one output array: no full-size Pillow copy
    of the output beside it.
    """
    h, w = image.shape[:2]
    if w == width and h == height:
        return image.copy()
    src = Image.fromarray(image)
    out = np.empty((height, width, 3), np.uint8)
    for y0 in range(0, height, BAND_ROWS):
        y1 = min(height, y0 + BAND_ROWS)
        box = (0.0, y0 * h / height, float(w), y1 * h / height)
        out[y0:y1] = np.asarray(src.resize((width, y1 - y0), Image.Resampling.BICUBIC, box=box))
    return out


@dataclass
class BackgroundUpsampler:
    """``up(image, n)`` -> the photo ``n`` times larger; ``name`` is recorded in the report."""

    name: str = BICUBIC
    net: Any = None  # a torch module mapping N x 3 x h x w in [0, 1] to N x 3 x fh x fw
    factor: int = 1  # the network's own factor
    device: str = "cpu"
    tile: int = TILE
    overlap: int = OVERLAP

    def __call__(self, image: np.ndarray, n: int) -> np.ndarray:
        h, w = image.shape[:2]
        if n == 1:
            return image.copy()
        if self.net is None:
            return resize(image, w * n, h * n)
        return self._tiled(image, n)

    @torch.inference_mode()
    def _tiled(self, image: np.ndarray, n: int | None = None) -> np.ndarray:
        """Run the network over ``tile`` px tiles with ``overlap`` px context (cut away after).

        When the network's factor ``f`` is not ``n``, each tile's output (context included) is resized
        to ``n`` before the context is cut away, so the photo is never held at ``f`` times its size
        (x4 network, ``--upscale 2``: 16 times the input's pixels instead of 4).
        """
        h, w = image.shape[:2]
        f, t, o = self.factor, self.tile, self.overlap
        n = f if n is None else n
        out = np.empty((h * n, w * n, 3), np.uint8)
        for y in range(0, h, t):
            for x in range(0, w, t):
                y0, x0 = max(0, y - o), max(0, x - o)
                y1, x1 = min(h, y + t + o), min(w, x + t + o)
                patch = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).to(self.device)
                inp = patch.permute(2, 0, 1)[None].float() / 255.0
                res = self.net(inp)
                if isinstance(res, dict):
                    res = res.get("sr", next(iter(res.values())))
                if not torch.isfinite(res).all():  # quantise would make NaN a black tile
                    raise ModelError(
                        f"background upsampler {self.name} gave NaN or inf (tile at x={x}, y={y}); "
                        "use --bg-upsampler bicubic"
                    )
                res = quantise(res)[0]
                if n != f:
                    res = resize(res, (x1 - x0) * n, (y1 - y0) * n)
                ty, tx = min(t, h - y), min(t, w - x)
                cy, cx = (y - y0) * n, (x - x0) * n
                out[y * n : (y + ty) * n, x * n : (x + tx) * n] = res[cy : cy + ty * n, cx : cx + tx * n]
        return out


def network_factor(net: Any, device: str = "cpu") -> int:
    """The integer factor by which ``net`` enlarges an image, probed on a 28x20 input.

    Non-square on purpose: a face restorer that always returns its 128 px frame (JDSR) fails the
    probe instead of passing for an x8 image upsampler.
    """
    with torch.inference_mode():
        out = net(torch.full((1, 3, 20, 28), 0.5, device=device))
    if isinstance(out, dict):
        out = out.get("sr", next(iter(out.values())))
    fh, fw = out.shape[-2] / 20, out.shape[-1] / 28
    if fh != fw or fh < 1 or not math.isclose(fh, round(fh)):
        raise ValueError(f"maps 28x20 to {out.shape[-1]}x{out.shape[-2]}, not an integer upscale")
    return round(fh)


__all__ = ["BICUBIC", "BackgroundUpsampler", "network_factor", "resize"]
