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


def print_and_save(out: dict, path: Path | None) -> None:
    """Print a benchmark's JSON with the command that made it, and write it to ``path`` (atomically)."""
    import sys

    text = json.dumps({**out, "command": "python " + " ".join(sys.argv)}, indent=2)
    print(text)
    if path:
        from facesr.io import atomic_write_text

        atomic_write_text(path, text + "\n")


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
    parser.add_argument(
        "--write-labels", type=Path, default=None, help="start a labels file (every detection a face)"
    )
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
        print(json.dumps(precision(rows, json.loads(args.labels.read_text())), indent=2))
    if args.write_labels:
        write_labels(rows, args.write_labels, args)


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / max(union, 1e-9)


def _rel(path: Path) -> str:
    return (
        "/".join(Path(path).parts[-3:])
        if Path(path).parts[-3] == "rwmfd"
        else "/".join(Path(path).parts[-2:])
    )


def label_of(row: dict, labels: list[dict]) -> str | None:
    """The hand label ("face", "not_face", "uncertain") of the labelled box this detection matches.

    Why by file and box (IoU >= 0.5) and not by position in the list: a change to the detector
    (pyramid, padding, filters) adds, drops or reorders detections, and index labels would then
    silently label the wrong crops. A detection no labelled box matches is ``None`` (unlabelled:
    look at it and add it).
    """
    rel = _rel(row["file"])
    best, lab = 0.5, None
    for e in labels:
        if e["file"] == rel and (v := _iou(row["face"].box, e["box"])) >= best:
            best, lab = v, e["label"]
    return lab


def precision(rows: list[dict], labels: dict) -> dict:
    """Precision of all detections and of those that pass the filters, from the hand labels."""
    entries = labels["labels"]
    lab = [label_of(r, entries) for r in rows]
    passed = [i for i, r in enumerate(rows) if r["face"].status == "ok"]

    def count(idx: list[int], kind: str) -> int:
        return sum(1 for i in idx if lab[i] == kind)

    every = list(range(len(rows)))
    out: dict = {
        "photos": len({str(r["file"]) for r in rows}),
        "detections": len(rows),
        "faces": count(every, "face"),
        "not_faces": count(every, "not_face"),
        "uncertain": count(every, "uncertain"),
        "unlabelled": [
            f"{_rel(rows[i]['file'])} {[round(v, 1) for v in rows[i]['face'].box]}"
            for i in every
            if lab[i] is None
        ],
        "passed_filters": len(passed),
        "not_faces_passed": count(passed, "not_face"),
        "uncertain_passed": count(passed, "uncertain"),
    }
    labelled = len(rows) - len(out["unlabelled"])
    out["precision_all"] = round(out["faces"] / max(1, labelled - out["uncertain"]), 4)
    out["precision_all_uncertain_as_wrong"] = round(out["faces"] / max(1, labelled), 4)
    lp = len(passed) - sum(1 for i in passed if lab[i] is None)
    out["precision_passed"] = round(count(passed, "face") / max(1, lp - out["uncertain_passed"]), 4)
    out["precision_passed_uncertain_as_wrong"] = round(count(passed, "face") / max(1, lp), 4)
    by: dict[str, dict[str, int]] = {"not_faces_caught_by": {}, "faces_skipped_by": {}}
    for i, r in enumerate(rows):
        if r["face"].status == "skipped" and lab[i] in ("face", "not_face"):
            key = "faces_skipped_by" if lab[i] == "face" else "not_faces_caught_by"
            kind = r["face"].reason.split(" (")[0]
            by[key][kind] = by[key].get(kind, 0) + 1
    return {**out, **by}


def write_labels(rows: list[dict], path: Path, args: argparse.Namespace) -> None:
    """A labels file with every detection marked "face": edit the ones a person saw otherwise."""
    entries = [
        {"n": i, "file": _rel(r["file"]), "box": [round(v, 1) for v in r["face"].box], "label": "face"}
        for i, r in enumerate(rows)
    ]
    path.write_text(
        json.dumps({"sample": {"rwmfd": args.rwmfd, "web": args.web}, "labels": entries}, indent=1) + "\n"
    )
    print(
        f"{len(entries)} detections written to {path}; set label to not_face / uncertain where the sheet shows one"
    )


if __name__ == "__main__":
    main()
