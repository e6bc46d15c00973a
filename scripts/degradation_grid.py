"""docs/img/degradations.png: eight prepared UTKFace faces, clean bicubic LR above the real-world degradation.

python scripts/degradation_grid.py   # needs `facesr prepare utkface`
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facesr.data.realistic import RealDegradation
from facesr.paths import prepared_dir
from facesr.resample import downsample


def main() -> None:
    faces = np.load(prepared_dir("utkface") / "faces128.npy", mmap_mode="r")[:8]
    hr = torch.from_numpy(np.array(faces)).permute(0, 3, 1, 2).float() / 255
    g = torch.Generator().manual_seed(0)
    rows = []
    for scale in (4, 8):
        lr = RealDegradation()(hr, scale, g)
        for img in (downsample(hr, scale), lr):
            up = F.interpolate(img, size=(128, 128), mode="nearest")
            rows.append(torch.cat(list(up), dim=2))
    grid = torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0).numpy()
    Image.fromarray((grid * 255 + 0.5).astype(np.uint8)).save("docs/img/degradations.png")
    print("wrote docs/img/degradations.png (rows: x4 clean, x4 degraded, x8 clean, x8 degraded)")


if __name__ == "__main__":
    main()
