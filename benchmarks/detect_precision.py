"""Detection precision of ``facesr restore`` on real photos, against hand labels.

Two steps. ``--sheet OUT.png`` detects faces (exactly as ``facesr.restore`` does: padded copy,
then the quality filters) in a deterministic sample of ``rwmfd/`` and ``web_unmasked/`` photos and
writes a contact sheet with every detection numbered, to be looked at by a person. The person
writes the numbers that are not faces into a labels JSON (``{"not_face": [..], "sample": ..}``;
``benchmarks/detect_labels.json``). ``--labels FILE`` then prints precision: of all detections,
and of the detections that pass the filters (the ones restore would paste), and how many of the
labelled non-faces each filter catches.

    python benchmarks/detect_precision.py --sheet /tmp/detections.png
    python benchmarks/detect_precision.py --labels benchmarks/detect_labels.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def sample_files(root: Path, rwmfd: int, web: int) -> list[Path]:
    """Every k-th file (sorted) of each folder: the same sample on every machine."""
    out = []
    for folder, n in (("rwmfd", rwmfd), ("web_unmasked", web)):
        files = sorted((root / folder).rglob("*.jpg"))
        step = max(1, len(files) // max(n, 1))
        out += files[::step][:n]
    return out


def detections(files: list[Path]) -> list[dict]:
    from facesr.io import read_image
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import detect_faces

    det = _cached_detector("cpu")
    rows = []
    for f in files:
        img = read_image(f)
        for face in detect_faces(img, det):
            rows.append({"file": f, "image": img, "face": face})
    return rows


def crop(img: np.ndarray, box: list[float], size: int = 64) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 0.75
    pil = Image.fromarray(img)
    return np.asarray(
        pil.crop((round(cx - s), round(cy - s), round(cx + s), round(cy + s))).resize((size, size))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rwmfd", type=int, default=40)
    parser.add_argument("--web", type=int, default=20)
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--labels", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    from facesr.paths import data_root

    rows = detections(sample_files(data_root(), args.rwmfd, args.web))
    if args.sheet:
        cols, size = 16, 64
        nrow = (len(rows) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * size, nrow * (size + 12)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, r in enumerate(rows):
            x, y = (i % cols) * size, (i // cols) * (size + 12)
            sheet.paste(Image.fromarray(crop(r["image"], r["face"].box, size)), (x, y))
            tag = {"ok": "", "skipped": "s"}.get(r["face"].status, "?")
            draw.text((x + 2, y + size), f"{i}{tag}", fill="black")
        sheet.save(args.sheet)
        print(f"{len(rows)} detections in {args.sheet}")
    if args.labels:
        labels = json.loads(args.labels.read_text())
        bad = set(labels["not_face"])
        n = len(rows)
        passed = [i for i, r in enumerate(rows) if r["face"].status == "ok"]
        kinds: dict[str, int] = {}
        for i in bad:
            if i < n and rows[i]["face"].status == "skipped":
                k = rows[i]["face"].reason.split(" (")[0]
                kinds[k] = kinds.get(k, 0) + 1
        out = {
            "photos": len({str(r["file"]) for r in rows}),
            "detections": n,
            "not_faces": len(bad),
            "precision_all": round(1 - len(bad) / n, 4),
            "passed_filters": len(passed),
            "not_faces_passed": len(bad & set(passed)),
            "precision_passed": round(1 - len(bad & set(passed)) / max(1, len(passed)), 4),
            "not_faces_caught_by": kinds,
            "faces_skipped_by": {},
        }
        for i, r in enumerate(rows):
            if i not in bad and r["face"].status == "skipped":
                k = r["face"].reason.split(" (")[0]
                out["faces_skipped_by"][k] = out["faces_skipped_by"].get(k, 0) + 1
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
