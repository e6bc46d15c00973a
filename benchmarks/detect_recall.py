"""Recall of ``facesr restore``'s face detection on small real faces, for detector settings side by side.

Why: making detection cheaper (a coarser image pyramid, a larger smallest face, detecting on a
reduced copy) must not lose the small faces the restorer exists for. There are no box labels for
the real photos, so the faces are made small on purpose: every face the *reference* setting
(``DetectOptions(min_size=10)``, the pyramid before the speed work) finds and passes in a
deterministic sample of ``rwmfd/`` and ``web_unmasked/`` photos with a box of at least
``--min-box`` px is the ground truth; the whole photo is then reduced (box filter, as a camera
or a web resize would) so that this face's box is ``s`` px, for each ``s`` of ``--sizes``, and
each setting detects on it. A face counts as found when a detection that passes the filters
overlaps its reduced box with IoU >= 0.4. The photo keeps its real context (other people,
clothes, text), which is what makes small faces hard.

    python benchmarks/detect_recall.py --rwmfd 120 --web 40 --json-out results/restore/detect_recall.json

Settings: ``name=min_size:factor`` pairs (``--settings ref=10:0.709,new=12:0.709``); the
default compares the reference with the shipped ``DetectOptions()``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / max(union, 1e-9)


def parse_settings(text: str | None) -> dict[str, dict[str, float]]:
    from facesr.restoration.detect import DetectOptions

    d = DetectOptions()
    if not text:
        return {
            "reference": {"min_size": 10.0, "factor": 0.709},
            "default": {"min_size": d.min_size, "factor": d.factor},
        }
    out = {}
    for item in text.split(","):
        name, spec = item.split("=")
        ms, fac = spec.split(":")
        out[name] = {"min_size": float(ms), "factor": float(fac)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rwmfd", type=int, default=120)
    parser.add_argument("--web", type=int, default=40)
    parser.add_argument("--min-box", type=float, default=24.0, help="ground-truth faces at least this large")
    parser.add_argument("--sizes", default="8,10,12,14,16,20")
    parser.add_argument("--settings", default=None, help="name=min_size:factor,...")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)

    from detect_precision import sample_files

    from facesr.io import read_image
    from facesr.paths import data_root
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import DetectOptions, detect_faces

    det = _cached_detector("cpu")
    settings = parse_settings(args.settings)
    sizes = [float(s) for s in args.sizes.split(",")]
    ref = DetectOptions(min_size=10.0, factor=0.709)
    gt = []
    for f in sample_files(data_root(), args.rwmfd, args.web):
        img = read_image(f)
        for face in detect_faces(img, det, ref):
            side = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
            if face.status == "ok" and side >= args.min_box:
                gt.append((f, img, face.box, side))
    found = {name: {s: 0 for s in sizes} for name in settings}
    seconds = {name: 0.0 for name in settings}
    for _f, img, box, side in gt:
        h, w = img.shape[:2]
        for s in sizes:
            k = s / side
            nw, nh = max(1, round(w * k)), max(1, round(h * k))
            small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BOX))
            fx, fy = nw / w, nh / h
            target = [box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy]
            for name, st in settings.items():
                t = time.perf_counter()
                faces = detect_faces(small, det, DetectOptions(min_size=st["min_size"], factor=st["factor"]))
                seconds[name] += time.perf_counter() - t
                if any(fc.status == "ok" and iou(fc.box, target) >= 0.4 for fc in faces):
                    found[name][s] += 1
    out = {
        "command": "python " + " ".join(sys.argv),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "ground_truth_faces": len(gt),
        "settings": settings,
        "recall": {
            name: {f"{s:g}px": round(found[name][s] / max(1, len(gt)), 4) for s in sizes} for name in settings
        },
        "found": {name: {f"{s:g}px": found[name][s] for s in sizes} for name in settings},
        "detect_seconds_busy_machine": {name: round(v, 2) for name, v in seconds.items()},
    }
    print(json.dumps(out, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
