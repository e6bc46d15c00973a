"""``facesr preview``: a contact sheet to *look at* what the models will be trained on.

One row per face; columns: HR, masked HR, masked LR, clean LR (both nearest-upscaled to 128 so
the pixels are visible), occlusion mask, landmark heatmaps (max over the 68 channels, over the
HR) and landmark-derived parsing (colour per class, see :mod:`facesr.data.priors`). Faces are
spread evenly over the chosen split; masks come from a seeded generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facesr.io import write_figure
from facesr.pixels import quantise_half_up

COLUMNS = ("HR", "masked HR", "masked LR", "clean LR", "mask", "heatmaps", "parsing")
#: One colour per parsing class (background, skin, brows, eyes, nose, lips, mouth, hair-or-other).
PALETTE = (
    torch.tensor(
        [
            [0, 0, 0],
            [230, 190, 160],
            [120, 60, 20],
            [160, 80, 30],
            [0, 120, 255],
            [0, 200, 255],
            [255, 140, 0],
            [220, 30, 60],
            [170, 0, 90],
            [90, 0, 30],
            [80, 160, 80],
        ],
        dtype=torch.float32,
    )
    / 255.0
)


def contact_sheet(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """Render a batch dict (as from MaskedFaceBatcher) to an ``H x W x 3`` uint8 sheet."""
    hr = batch["hr"]
    size = hr.shape[-1]
    up = lambda x: F.interpolate(x, size=(size, size), mode="nearest")  # noqa: E731
    heat = up(batch["heatmaps"].amax(1, keepdim=True))
    heat_rgb = hr * 0.4 + heat * torch.tensor([1.0, 0.2, 0.2])[None, :, None, None]
    parse = batch["parsing"].argmax(1)
    parse_rgb = up(PALETTE.to(parse.device)[parse].permute(0, 3, 1, 2))
    cols = [
        hr,
        batch["hr_masked"],
        up(batch["lr_masked"]),
        up(batch["lr_clean"]),
        batch["occlusion"].expand(-1, 3, -1, -1),
        heat_rgb.clamp(0, 1),
        parse_rgb,
    ]
    grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2)  # rows stacked vertically per column
    return quantise_half_up(grid.permute(1, 2, 0)).cpu().numpy()


def write_preview(
    prepared: Path,
    output: Path,
    *,
    n: int = 8,
    split: str = "test",
    scale: int = 4,
    seed: int = 0,
    data: Path | None = None,
) -> Path:
    """Write the contact sheet for ``n`` faces of ``prepared`` and return its path.

    PNG, or JPEG for a ``.jpg`` path (:func:`facesr.io.write_figure`: quality 92, 4:4:4).
    """
    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.data.prepared import PreparedSet

    prep = PreparedSet.load(prepared)
    batcher = MaskedFaceBatcher(prep, split, scale, "cpu", n, seed, data=data, flip=False, shuffle=False)
    pos = np.linspace(0, len(batcher) - 1, num=min(n, len(batcher))).round().astype(np.int64)
    batch = batcher.make_batch(torch.from_numpy(pos))
    write_figure(output, contact_sheet(batch))
    return Path(output)
