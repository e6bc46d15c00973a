"""Real-photo grid for the CR models (docs/cr.md section 6): every small face that `facesr restore` restores
in the given photos, as the bicubic input and each model's 128 px output side by side.

Why: FRD on the genuine sets can be lowered by invented detail (docs/cr.md), so every CR model choice is
also looked at on real photos. Runs `facesr restore --save-faces --upscale 1` once per model (the same
detections for every model: detection does not depend on the restorer), then tiles the face crops.

    python scripts/cr_real_grid.py --photo rwmfd/0002/0032.jpg --photo rwmfd/0006/0077.jpg \
        --model sr-only=workspace/runs/cr_rlfn_a_s7/weights.safetensors --model cr-x4=cr-x4 \
        -o docs/img/cr_real_photos.jpg
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

TILE = 96


def restore(photo: Path, model: str, out: Path) -> Path:
    """Restore one photo with one model; returns its ``<stem>_faces`` folder."""
    cmd = [sys.executable, "-m", "facesr.cli", "restore", str(photo), "-o", str(out), "--model", model]
    subprocess.run([*cmd, "--save-faces", "--upscale", "1"], check=True, capture_output=True)
    return out / f"{photo.stem}_faces"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data", help="face data folder the photo paths are under")
    ap.add_argument("--photo", action="append", required=True, help="photo path under --data (repeatable)")
    ap.add_argument("--model", action="append", required=True, help="LABEL=MODEL (zoo name or file)")
    ap.add_argument("-o", "--out", required=True, help="output image (.jpg written at quality 92)")
    args = ap.parse_args()
    models = [m.split("=", 1) for m in args.model]
    rows: list[list[Image.Image]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, rel in enumerate(args.photo):
            photo = Path(args.data) / rel
            dirs = [restore(photo, m, Path(tmp) / f"{i}_{j}") for j, (_, m) in enumerate(models)]
            for sr in sorted(dirs[0].glob("*_sr.png")):
                lr = Image.open(sr.with_name(sr.name.replace("_sr", "_lr"))).convert("RGB")
                row = [lr.resize((TILE, TILE), Image.BICUBIC)]
                for d in dirs:
                    p = d / sr.name
                    ok = p.is_file()  # a face the do-no-harm check refused for this model: grey tile
                    row.append(
                        Image.open(p).convert("RGB").resize((TILE, TILE))
                        if ok
                        else Image.new("RGB", (TILE, TILE), "gray")
                    )
                rows.append(row)
    labels = ["input (bicubic)", *(label for label, _ in models)]
    head = 16
    grid = Image.new("RGB", (TILE * len(labels), head + TILE * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for j, label in enumerate(labels):
        draw.text((TILE * j + 3, 2), label[:15], fill="black")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            grid.paste(im, (TILE * j, head + TILE * i))
    grid.save(args.out, quality=92, subsampling=0)
    print(f"wrote {args.out}: {len(rows)} faces x {len(models)} models")


if __name__ == "__main__":
    main()
