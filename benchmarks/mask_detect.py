"""How well does the noise-map mask score separate masked from unmasked real faces?

Faces: the most confident detection (restorable by the detection filters) of each photo of a
deterministic sample of ``rwmfd/`` (masked, label 1) and ``web_unmasked/`` (label 0), aligned to
the mask detector's input frame exactly as ``facesr.restore`` aligns them. Prints the ROC AUC of
:func:`facesr.restoration.mask.mask_scores`, and the accuracy of :data:`~facesr.restoration.mask.THRESHOLD`
and of the best threshold chosen on the even-indexed half, measured on the odd-indexed half.

    python benchmarks/mask_detect.py --per-class 150 --json-out results/restore/mask_detect.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney probability that a positive outscores a negative (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest balanced accuracy (midpoints between sorted scores)."""
    s = np.sort(np.unique(scores))
    cands = np.concatenate([[s[0] - 1], (s[1:] + s[:-1]) / 2, [s[-1] + 1]])
    best, best_t = -1.0, float(cands[0])
    for t in cands:
        pred = scores > t
        bacc = 0.5 * (pred[labels == 1].mean() + (~pred[labels == 0]).mean())
        if bacc > best:
            best, best_t = bacc, float(t)
    return best_t


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    pred = scores > t
    return float(0.5 * (pred[labels == 1].mean() + (~pred[labels == 0]).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="reuse / write the aligned crops (.npz)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from facesr.geometry import face_boxes
    from facesr.io import read_image
    from facesr.paths import data_root
    from facesr.restoration import mask
    from facesr.restoration.api import _cached_detector, mask_model
    from facesr.restoration.detect import detect_faces
    from facesr.restoration.pipeline import align_face, to_tensor

    det = _cached_detector("cpu")
    model = mask_model("cpu")
    if model is None:
        sys.exit("no installed default model has a noise map (see facesr.restoration.api.DEFAULT_MODELS)")
    root = data_root()
    if args.cache and args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        crops, labels, names = z["crops"], z["labels"], list(z["names"])
    else:
        crops_l, labels_l, names = [], [], []
        for label, folder in ((1, "rwmfd"), (0, "web_unmasked")):
            files = sorted((root / folder).rglob("*.jpg"))
            step = max(1, len(files) // args.per_class)
            for f in files[::step][: args.per_class]:
                img = read_image(f)
                faces = [x for x in detect_faces(img, det) if x.status == "ok"]
                if not faces:
                    continue
                face = max(faces, key=lambda x: x.score)
                crops_l.append(align_face(to_tensor(img), face.landmarks, model.lr_size)[0].numpy())
                labels_l.append(label)
                names.append(str(f.relative_to(root)))
        crops, labels = np.stack(crops_l), np.array(labels_l)
        if args.cache:
            np.savez_compressed(args.cache, crops=crops, labels=labels, names=np.array(names))
    lr = torch.from_numpy(crops)
    with torch.inference_mode():
        nm = mask.noise_map(model, lr)
        denoised = model.net.denoiser(lr)[1].float()
    (ly0, ly1, lx0, lx1), (uy0, uy1, ux0, ux1) = face_boxes(lr.shape[-1])
    change = (denoised - lr).pow(2).mean(1)
    e = nm.pow(2).mean(1)
    variants = {
        "denoiser_change_lower_255sq (used)": mask.face_scores(model, lr),
        "noise_lower_over_upper": mask.mask_scores(nm),
        "noise_lower": e[:, ly0:ly1, lx0:lx1].mean((1, 2)),
        "denoiser_change_lower": change[:, ly0:ly1, lx0:lx1].mean((1, 2)),
        "denoiser_change_lower_over_upper": change[:, ly0:ly1, lx0:lx1].mean((1, 2))
        / change[:, uy0:uy1, ux0:ux1].mean((1, 2)).clamp(min=1e-6),
    }
    variant_auc = {k: round(auc(v.numpy(), labels), 4) for k, v in variants.items()}
    rows = [
        {"file": n, "label": int(lab), "score": float(s)}
        for n, lab, s in zip(names, labels, variants["denoiser_change_lower_255sq (used)"], strict=True)
    ]
    scores = np.array([r["score"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    even, odd = np.arange(len(rows)) % 2 == 0, np.arange(len(rows)) % 2 == 1
    t_half = best_threshold(scores[even], labels[even])
    out = {
        "model": model.name,
        "faces": {"masked": int(labels.sum()), "unmasked": int((1 - labels).sum())},
        "auc": round(auc(scores, labels), 4),
        "auc_by_variant": variant_auc,
        "threshold": mask.THRESHOLD,
        "balanced_accuracy_at_threshold": round(balanced_accuracy(scores, labels, mask.THRESHOLD), 4),
        "best_threshold_on_even_half": round(t_half, 4),
        "balanced_accuracy_odd_half_at_that": round(balanced_accuracy(scores[odd], labels[odd], t_half), 4),
        "best_threshold_all": round(best_threshold(scores, labels), 4),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
