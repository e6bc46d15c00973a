"""Before/after grid of real faces from ../shared/data: one row per face, one column per model.

Why: the frozen benchmark is synthetic (UTKFace, MaskTheFace masks, bicubic LR); real photos are the test
(a model that wins there and erases mouths on real photos has failed). Faces are found and aligned by the
same pipeline as ``facesr restore`` and every model gets the same aligned LR input, so the columns differ
only by the model. Each photo is first shrunk so that its largest face is 128/scale px (see
:func:`small_version`). Columns: the aligned LR input (nearest, as the model sees it), then each model's
128x128 output. Each model gets every face (``restore(model=NAME)``), at its own input size: an x4
model in an ``--scale 2`` grid sees the face halved.

    python benchmarks/real_photo_grid.py --models bicubic-x4 jdsr-lite-x4 jdsr-fast-x4 \
        --out docs/img/real_grid_x4.jpg

The format follows the suffix of ``--out``: JPEG (quality 92, 4:4:4, ``facesr.io.FIGURE_JPEG``) or PNG.
"""

from __future__ import annotations

import argparse
import glob
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facesr.io import write_figure
from facesr.paths import data_root

SETS = {
    "rwmfd": "rwmfd/*/*.jpg",  # real photos of people wearing masks
    "web_unmasked": "web_unmasked/*.jpg",  # genuine low-quality unmasked web face crops
    "celeba": "celeba10k/images/*.jpg",  # aligned celebrity faces (never trained on)
}


def pick(per_set: int, seed: int) -> list[tuple[str, Path]]:
    root = data_root()
    rng = random.Random(seed)
    out = []
    for name, pattern in SETS.items():
        files = sorted(glob.glob(str(root / pattern)))
        out += [(name, Path(f)) for f in rng.sample(files, min(per_set, len(files)))]
    return out


def small_version(path: Path, scale: int) -> np.ndarray | None:
    """The photo shrunk (antialiased) so that its largest face's 128-template frame is 128/scale px.

    The photos in ../shared/data hold faces of 60-400 px; the task is a 16-32 px face. Shrinking a real
    photo keeps its real content (real masks, lighting, JPEG history) and makes the face small, as in a
    crowd shot; the models then see what a user's small face gives them.
    """
    from facesr import restore
    from facesr.io import read_image

    img = read_image(path)
    # skipped faces (not frontal, not a face) carry native 0: size the photo by the faces that are restored
    natives = [f.native for f in restore(img, model="bicubic-x4", upscale=1).faces if f.native > 0]
    if not natives:
        return None
    native = max(natives)
    factor = (128 / scale) / native
    if factor >= 1:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC, reducing_gap=None))


def faces_of(img: np.ndarray, model: str) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """(aligned LR input, restored 128 face) per detected face of ``img`` with ``model``, in detection
    order (the same for every model); None where the face was not restored (kept, skipped)."""
    from facesr import restore

    res = restore(img, model=model, upscale=1)
    return [(f.lr, f.sr) if f.status == "restored" and f.sr is not None else None for f in res.faces]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--labels", nargs="*", default=None, help="column titles (default: the model names)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--per-set", type=int, default=4, help="photos drawn from each set")
    ap.add_argument("--max-rows", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    labels = args.labels or args.models
    rows: list[tuple[str, list[np.ndarray]]] = []
    for set_name, path in pick(args.per_set, args.seed):
        img = small_version(path, args.scale)
        if img is None:
            continue
        per_model = [faces_of(img, m) for m in args.models]
        n = min(len(p) for p in per_model)
        # faces every model restored (a model may keep a face that another restores), at most two
        shared = [k for k in range(n) if all(p[k] is not None for p in per_model)][:2]
        for k in shared:
            lr = per_model[0][k][0]  # type: ignore[index]
            lr_up = np.asarray(Image.fromarray(lr).resize((128, 128), Image.Resampling.NEAREST))
            tiles = [lr_up] + [p[k][1] for p in per_model]  # type: ignore[index]
            rows.append((f"{set_name}/{path.parent.name}/{path.name}", tiles))
        if len(rows) >= args.max_rows:
            break
    if not rows:
        raise SystemExit("real_photo_grid: no face was restored")
    cols = 1 + len(args.models)
    head = 18
    grid = Image.new("RGB", (cols * 128, head + len(rows) * 128), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(["input (LR)", *labels]):
        draw.text((c * 128 + 4, 3), title, fill="black")
    for r, (_, tiles) in enumerate(rows):
        for c, tile in enumerate(tiles):
            grid.paste(Image.fromarray(tile), (c * 128, head + r * 128))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_figure(args.out, np.asarray(grid))
    print(f"wrote {args.out}: {len(rows)} faces x {cols} columns")
    for name, _ in rows:
        print("  ", name)


if __name__ == "__main__":
    main()
