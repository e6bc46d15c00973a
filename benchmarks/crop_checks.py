"""Two checks ``facesr restore`` makes on crops, measured on real faces (docs/restore.md).

``aligned``: the ``--aligned`` framing check (:data:`facesr.restoration.api.MAX_ALIGNED_ERROR`). Every
face with a template frame of at least 72 px in the sample of ``benchmarks/detect_precision.py`` is
aligned to the template at 80 and 128 px (a crop a user's aligner would make), and also framed 12 %
of the frame off centre and 1.3x zoomed out; prints how many of each the check calls not
template-framed at several tolerances.

``border``: the border rule (:attr:`facesr.restoration.detect.DetectOptions.max_outside`) on tight
crops. Every k-th ``web_unmasked/`` crop (the sample of ``benchmarks/mask_detect.py`` at 60), at
its own size and reduced (box filter) to a long side of 32, 48 and 64 px: the share of the best
face's box outside the crop, and how many faces the rule skips.

    python benchmarks/crop_checks.py aligned --json-out results/restore/crop_checks_aligned.json
    python benchmarks/crop_checks.py border --json-out results/restore/crop_checks_border.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def aligned(tolerances: list[float]) -> dict:
    import torch
    from detect_precision import _rel, sample_files

    from facesr.io import read_image
    from facesr.paths import data_root
    from facesr.restoration import api
    from facesr.restoration.detect import detect_faces
    from facesr.restoration.pipeline import align_face, native_frame, to_tensor

    det, dev = api._cached_detector("cpu"), torch.device("cpu")
    errors: dict[str, list[float | None]] = {"aligned": [], "shift": [], "zoom": []}
    faces = 0
    for f in sample_files(data_root(), 40, 20):
        img = read_image(f)
        for face in detect_faces(img, det):
            native = native_frame(face.landmarks)
            if face.status != "ok" or native < 72:
                continue
            faces += 1
            lm = face.landmarks
            framings = {
                "aligned": lm,
                "shift": lm + np.array([0.12 * native, 0.0]),
                "zoom": lm.mean(0) + (lm - lm.mean(0)) / 1.3,
            }
            for size in (80, 128):
                for kind, points in framings.items():
                    crop = align_face(to_tensor(img), points, size)[0].permute(1, 2, 0).numpy()
                    errors[kind].append(api._framing_error((crop * 255).round().astype(np.uint8), dev, None))
            print(_rel(f), f"{native:.0f} px", flush=True)
    out: dict = {"faces": faces, "crops": {k: len(v) for k, v in errors.items()}}
    for kind, vals in errors.items():
        v = np.array([e for e in vals if e is not None])
        out[kind] = {
            "found": len(v),
            "percentiles_5_50_95_max": np.percentile(v, [5, 50, 95, 100]).round(3).tolist(),
            "over": {str(t): int((v > t).sum()) for t in tolerances},
        }
    out["tolerance_in_use"] = api.MAX_ALIGNED_ERROR
    return out


def border(sides: list[int]) -> dict:
    from PIL import Image

    from facesr.paths import data_root
    from facesr.restoration import api
    from facesr.restoration.detect import DetectOptions, detect_faces

    det, limit = api._cached_detector("cpu"), DetectOptions().max_outside
    files = sorted((data_root() / "web_unmasked").rglob("*.jpg"))
    files = files[:: max(1, len(files) // 60)][:60]
    out: dict = {"crops": len(files), "max_outside": limit}
    for side in [0, *sides]:
        found, cut, shares = 0, 0, []
        for f in files:
            im = Image.open(f).convert("RGB")
            if side:
                k = side / max(im.size)
                im = im.resize(
                    (max(1, round(im.size[0] * k)), max(1, round(im.size[1] * k))), Image.Resampling.BOX
                )
            faces = [x for x in detect_faces(np.asarray(im), det) if x.score >= DetectOptions().min_score]
            if not faces:
                continue
            best = max(faces, key=lambda x: x.score)
            found += 1
            shares.append(float(best.extra["outside"]))
            cut += best.reason.startswith("cut by")
        out[f"{side}px" if side else "own size"] = {
            "found": found,
            "skipped_as_cut": cut,
            "outside_percentiles_50_90_95_max": np.percentile(shares, [50, 90, 95, 100]).round(3).tolist(),
        }
        print(side or "own size", out[f"{side}px" if side else "own size"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["aligned", "border"])
    parser.add_argument("--tolerances", default="0.2,0.22,0.25,0.28")
    parser.add_argument("--sides", default="32,48,64")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.check == "aligned":
        out = aligned([float(t) for t in args.tolerances.split(",")])
    else:
        out = border([int(s) for s in args.sides.split(",")])
    from detect_precision import print_and_save

    print_and_save(out, args.json_out)


if __name__ == "__main__":
    main()
