#!/usr/bin/env python
"""Fit the fixed map from dlib's 150x150 face chip to the facesr 128x128 template frame.

dlib's face-recognition ResNet expects ``dlib.get_face_chip(img, shape5, size=150, padding=0.25)``,
which aligns the 5 points of ``shape_predictor_5_face_landmarks`` (eye corners + nose base). facesr
aligns faces to :data:`facesr.geometry.TEMPLATE_128` from 68-point landmarks (eye centres, nose tip,
mouth corners). The two point sets differ, so there is no closed form between the frames; we measure
it on real faces instead:

1. detect with dlib HOG, fit sp5 and sp68 on the original image;
2. extract dlib's chip of a coordinate-ramp image with the same chip details -> the exact
   chip-pixel -> image-pixel affine dlib uses (least squares over all chip pixels);
3. compose with the image -> template alignment that `facesr prepare` uses (geometry.alignment_transform);
4. average the per-face chip -> template affines.

The printed matrix is ``CHIP_TO_TEMPLATE`` in ``src/facesr/nets/face_id.py``. Run::

    python scripts/fit_face_chip.py --data ../shared/data --step 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def chip_to_image(img: np.ndarray, details: object) -> np.ndarray:
    """dlib's chip-pixel -> image-pixel affine (2x3), measured with a coordinate-ramp image."""
    import dlib

    h, w = img.shape[:2]
    if max(h, w) > 255:
        raise ValueError("ramp encoding needs images <= 255 px")
    xx, yy = np.meshgrid(np.arange(w), np.arange(h))
    ramp = np.stack([xx, yy, np.full_like(xx, 7)], -1).astype(np.uint8)
    chip = dlib.extract_image_chip(ramp, details).astype(np.float64)
    inside = chip[..., 2] == 7  # pixels sampled from inside the image (outside is zero-filled)
    v, u = np.nonzero(inside)
    design = np.stack([u, v, np.ones_like(u)], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, chip[inside][:, :2], rcond=None)
    return coef.T


def main(argv: list[str] | None = None) -> int:
    import dlib
    import face_recognition_models as frm

    from facesr.geometry import alignment_transform, five_from_68
    from facesr.io import list_images, read_image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--step", type=int, default=20, help="use every STEP-th UTKFace image")
    args = ap.parse_args(argv)
    files = list_images(args.data / "utkface")[:: args.step]
    if not files:
        print(f"fit_face_chip: no images under {args.data / 'utkface'}", file=sys.stderr)
        return 2
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    sp68 = dlib.shape_predictor(frm.pose_predictor_model_location())
    mats = []
    for f in files:
        img = read_image(f)
        dets = detector(img, 1)
        if len(dets) != 1:
            continue
        details = dlib.get_face_chip_details(sp5(img, dets[0]), 150, 0.25)
        a = chip_to_image(img, details)
        pts = five_from_68(np.array([[p.x, p.y] for p in sp68(img, dets[0]).parts()], dtype=np.float64))
        s = alignment_transform(pts)  # exactly how `facesr prepare` aligns faces
        mats.append(np.hstack([s[:, :2] @ a[:, :2], (s[:, :2] @ a[:, 2] + s[:, 2])[:, None]]))
    m = np.mean(mats, 0)
    print(f"faces used: {len(mats)} of {len(files)}")
    print("CHIP_TO_TEMPLATE = (")
    for row in m:
        print(f"    ({row[0]:.6f}, {row[1]:.6f}, {row[2]:.4f}),")
    print(")")
    print("per-face std:", np.array2string(np.std(mats, 0), precision=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
