"""Do no harm, lower face: which restorations paint skin where there is no mask, and does the rule catch them?

``facesr.restore`` (``upscale=1``, default models) is run on three fixed samples: the bundled sample
photos (crowds: the heads seen from above in ``docs/img/restore_before_after.jpg``), the sample of
``benchmarks/detect_precision.py`` (every k-th of 40 ``rwmfd/`` and 20 ``web_unmasked/`` photos) and
that of ``benchmarks/mask_detect.py`` at 60 per class. For every face that reaches the do-no-harm
check it records the mask score, the disagreement and the lower-face brightening (the restored
lower face, reduced back to the input frame, minus the input's: mean luma, 0-1; see
:data:`facesr.restoration.api.MAX_LOWER_BRIGHTENING`), and keeps the aligned input and the
restored face in ``--cache`` (an ``.npz`` per photo), so a contact sheet can be drawn and the
numbers re-read without restoring again.

``--labels`` (``benchmarks/restore_harm_labels.json``: faces looked at by eye, by file and box)
then gives, for thresholds around the one in use, how many harmful restorations (a skin patch
painted over hair, another head, an unmasked chin) are pasted without the rule and with it, and
what the rule keeps that was not harm (dark masks it stops being removed, other faces).

    python benchmarks/restore_harm.py --cache workspace/restore_harm --labels benchmarks/restore_harm_labels.json
    python benchmarks/restore_harm.py --cache workspace/restore_harm --sheet /tmp/lower_faces.png  # to label
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"


def sample_photos(root: Path) -> list[tuple[str, Path]]:
    """(label-file name, path) of every photo of the three samples, each once."""
    from detect_precision import _rel, sample_files

    out = {f"samples/{p.name}": p for p in sorted(SAMPLES.glob("*.jpg"))}
    for p in sample_files(root, 40, 20):
        out.setdefault(_rel(p), p)
    for folder in ("rwmfd", "web_unmasked"):  # benchmarks/mask_detect.py --per-class 60
        files = sorted((root / folder).rglob("*.jpg"))
        for p in files[:: max(1, len(files) // 60)][:60]:
            out.setdefault(_rel(p), p)
    return list(out.items())


def run(cache: Path) -> list[dict]:
    """Restore every sample photo not yet in ``cache``; return one row per face that was checked."""
    import torch

    from facesr.io import read_image
    from facesr.paths import data_root
    from facesr.restoration import api

    torch.set_num_threads(2)
    cache.mkdir(parents=True, exist_ok=True)
    index = cache / "faces.jsonl"
    done = {json.loads(line)["file"] for line in index.open()} if index.is_file() else set()
    for name, path in sample_photos(data_root()):
        if name in done:
            continue
        res = api.restore(read_image(path), device="cpu", upscale=1, keep_faces=True)
        crops = {}
        for r in res.faces:
            if r.lr is not None and r.sr is not None:
                crops[f"lr{r.face.index}"], crops[f"sr{r.face.index}"] = r.lr, r.sr
        if crops:
            np.savez_compressed(cache / (name.replace("/", "__") + ".npz"), **crops)
        with index.open("a") as fh:
            fh.write(json.dumps({"file": name, "faces": [r.to_json() for r in res.faces]}) + "\n")
    rows = []
    for line in index.open():
        photo = json.loads(line)
        rows += [
            {"file": photo["file"], **f} for f in photo["faces"] if f.get("lower_brightening") is not None
        ]
    return rows


def label_of(row: dict, labels: list[dict]) -> str:
    """The hand label of the labelled box this face matches (IoU >= 0.5), else ``fine``."""
    from detect_precision import _iou

    best, lab = 0.5, "fine"
    for e in labels:
        if e["file"] == row["file"] and (v := _iou(row["box"], e["box"])) >= best:
            best, lab = v, e["label"]
    return lab


def evaluate(rows: list[dict], labels: list[dict], thresholds: list[float]) -> dict:
    """Harmful restorations pasted without and with the brightening rule, per threshold."""
    from facesr.restoration.api import MAX_DISAGREEMENT

    # the faces the disagreement check lets through: the ones the lower-face rule decides on
    passing = [r for r in rows if r["disagreement"] <= MAX_DISAGREEMENT]
    lab = [label_of(r, labels) for r in passing]
    harm = sum(1 for v in lab if v == "harm")
    out: dict = {
        "faces_checked": len(rows),
        "faces_passing_disagreement": len(passing),
        "by_label": {k: lab.count(k) for k in ("harm", "dark_mask", "other", "fine")},
        "harm_pasted_without_rule": harm,
        # could the mask detector's score tell a head in front (harm) from a dark mask? (min, median, max)
        "mask_score_by_label": {
            k: [round(float(q), 1) for q in np.percentile(v, [0, 50, 100])]
            for k in ("harm", "dark_mask")
            if (
                v := [
                    r["mask_score"]
                    for r, x in zip(passing, lab, strict=True)
                    if x == k and r.get("mask_score")
                ]
            )
        },
        "thresholds": {},
    }
    for t in thresholds:
        flagged = [v for r, v in zip(passing, lab, strict=True) if r["lower_brightening"] > t]
        caught = flagged.count("harm")
        out["thresholds"][str(t)] = {
            "kept_by_rule": len(flagged),
            "harm_caught": caught,
            "harm_still_pasted": harm - caught,
            "recall": round(caught / max(1, harm), 3),
            "precision": round(caught / max(1, len(flagged)), 3),
            "dark_masks_kept": flagged.count("dark_mask"),
            "other_kept": flagged.count("other"),
            "fine_kept": flagged.count("fine"),
        }
    return out


def sheet(rows: list[dict], cache: Path, out: Path, above: float) -> None:
    """Aligned input beside restored face, for every face brightened by more than ``above``."""
    from PIL import Image, ImageDraw

    sel = [r for r in rows if r["lower_brightening"] > above]
    s, cols = 112, 5
    img = Image.new("RGB", (cols * (2 * s + 6), max(1, (len(sel) + cols - 1) // cols) * (s + 14)), "white")
    draw = ImageDraw.Draw(img)
    for j, r in enumerate(sel):
        z = np.load(cache / (r["file"].replace("/", "__") + ".npz"))
        x, y = (j % cols) * (2 * s + 6), (j // cols) * (s + 14)
        for k, key in enumerate(("lr", "sr")):
            face = Image.fromarray(z[f"{key}{r['index']}"]).resize((s, s), Image.Resampling.BICUBIC)
            img.paste(face, (x + k * s, y))
        draw.text(
            (x + 1, y + s), f"{r['file'][-16:]} #{r['index']} +{r['lower_brightening']:.2f}", fill="black"
        )
    img.save(out)
    print(f"{len(sel)} faces in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("workspace/restore_harm"))
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--thresholds", default="0.05,0.075,0.1,0.15")
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--sheet-above", type=float, default=0.04)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    rows = run(args.cache)
    if args.sheet:
        sheet(rows, args.cache, args.sheet, args.sheet_above)
    if args.labels:
        labels = json.loads(args.labels.read_text())["labels"]
        from detect_precision import print_and_save

        print_and_save(evaluate(rows, labels, [float(t) for t in args.thresholds.split(",")]), args.json_out)


if __name__ == "__main__":
    main()
