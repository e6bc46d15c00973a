"""docs/img/restore_before_after.jpg: a bundled sample photo before and after ``facesr restore --upscale 2``.

Left: the input enlarged 2x by bicubic (what the background upsampler does everywhere); right:
the output of ``facesr.restore(photo, upscale=2)`` with the default models. Each row is a region
of the photo with small faces, so the faces are seen at the size a viewer sees them.

    python scripts/restore_figure.py --out docs/img/restore_before_after.jpg

The format follows the suffix of ``--out``: JPEG (quality 92, 4:4:4, ``facesr.io.FIGURE_JPEG``) or PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
#: (sample, x0, y0, x1, y1) regions of the input photo with small faces.
REGIONS = (("rwmfd_0002_0078.jpg", 0, 40, 256, 167), ("rwmfd_0006_0036.jpg", 0, 20, 256, 170))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/restore_before_after.jpg"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    from facesr.io import read_image, write_figure
    from facesr.restoration.api import restore
    from facesr.restoration.background import resize

    rows = []
    for name, x0, y0, x1, y1 in REGIONS:
        img = read_image(SAMPLES / name)
        res = restore(img, device="cpu", upscale=2, keep_faces=False)
        before = resize(img, img.shape[1] * 2, img.shape[0] * 2)[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
        after = res.image[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
        gap = np.full((before.shape[0], 6, 3), 255, np.uint8)
        rows.append(np.concatenate([before, gap, after], 1))
        counts = {s: sum(f.status == s for f in res.faces) for s in ("restored", "kept", "skipped")}
        print(name, counts, [f.model for f in res.restored][:3])
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = Image.fromarray(np.concatenate(rows, 0))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), "input, bicubic x2", fill="white")
    draw.text((rows[0].shape[1] // 2 + 8, 2), "facesr restore --upscale 2", fill="white")
    write_figure(args.out, np.asarray(sheet))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
