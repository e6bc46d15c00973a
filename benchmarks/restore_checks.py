"""Calibrate the do-no-harm check: how much do restored real faces and non-faces disagree with their input?

Real faces: every face ``facesr.restore`` (default models, ``upscale=1``) restores or keeps for
disagreement in a deterministic sample of ``rwmfd/`` and ``web_unmasked/`` photos. Non-faces:
in the same photos, template-shaped landmark sets of the photo's median face size placed at
random where no face was detected (background, clothes, hair), put through the same align ->
restore -> colour match -> disagreement steps. Wrong restorations: every restored face's output
checked against another face of the same photo and model (a restoration that does not belong to
its input, what the check is for). Prints percentiles of all three and, for
:data:`facesr.restoration.api.MAX_DISAGREEMENT`, the share of real faces kept and of non-faces and
wrong restorations caught.

    python benchmarks/restore_checks.py --rwmfd 30 --web 15 --json-out /tmp/restore_checks.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rwmfd", type=int, default=30)
    parser.add_argument("--web", type=int, default=15)
    parser.add_argument("--probes", type=int, default=3, help="non-face probes per photo")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)

    from detect_precision import sample_files

    from facesr.geometry import template
    from facesr.io import read_image
    from facesr.paths import data_root
    from facesr.restoration import api
    from facesr.restoration.pipeline import align_face, choose_lr_size, colour_match, run_model, to_tensor

    rng = np.random.default_rng(0)
    real, probes, swapped = [], [], []
    for f in sample_files(data_root(), args.rwmfd, args.web):
        img = read_image(f)
        res = api.restore(img, device="cpu", upscale=1, keep_faces=True)
        tried = [r for r in res.faces if r.disagreement is not None]
        real += [r.disagreement for r in tried]
        for i, a in enumerate(tried):  # a's input against the output of the next face of the same model
            b = next((t for t in tried[i + 1 :] + tried[:i] if t.model == a.model and t is not a), None)
            if b is not None and a.lr is not None and b.sr is not None:
                lr_a, sr_b = to_tensor(a.lr), to_tensor(b.sr)
                swapped.append(float(api._disagreement(colour_match(sr_b, lr_a), lr_a, [a.mask])[0]))
        if not tried:
            continue
        side = float(np.median([r.native for r in tried]))
        picker = api.ModelPicker(None, torch.device("cpu"), "ort" if api_ort() else "torch")
        cands = picker.candidates()
        size = choose_lr_size(side, sorted(cands))
        if size is None:
            continue
        net = picker.get(*cands[size])
        h, w = img.shape[:2]
        boxes = np.array([r.face.box for r in res.faces])
        for _ in range(args.probes * 10):
            if sum(p["file"] == str(f) for p in probes) >= args.probes:
                break
            x, y = rng.uniform(0, max(1, w - side)), rng.uniform(0, max(1, h - side))
            if (
                (boxes[:, 0] < x + side) & (boxes[:, 2] > x) & (boxes[:, 1] < y + side) & (boxes[:, 3] > y)
            ).any():
                continue
            lm = template(128) * side / 128 + [x, y]
            lr = align_face(to_tensor(img), lm, size)
            sr, _ = run_model(net, lr, "fp32", 1)
            d = float(api._disagreement(colour_match(sr, lr), lr, [None])[0])
            probes.append({"file": str(f), "disagreement": d})
    real_a = np.array(real)
    probe_a = np.array([p["disagreement"] for p in probes])
    t = api.MAX_DISAGREEMENT
    pct = [50, 90, 95, 99]
    out = {
        "threshold": t,
        "real_faces": len(real_a),
        "real_percentiles": dict(
            zip(map(str, pct), np.percentile(real_a, pct).round(4).tolist(), strict=True)
        ),
        "real_kept_share": round(float((real_a > t).mean()), 4),
        "non_face_probes": len(probe_a),
        "probe_percentiles": dict(
            zip(map(str, pct), np.percentile(probe_a, pct).round(4).tolist(), strict=True)
        ),
        "probes_caught_share": round(float((probe_a > t).mean()), 4),
        "wrong_restorations": len(swapped),
        "wrong_percentiles": dict(
            zip(
                map(str, [1, 5, 10, 50]),
                np.percentile(swapped, [1, 5, 10, 50]).round(4).tolist(),
                strict=True,
            )
        )
        if swapped
        else {},
        "wrong_caught_share": round(float((np.array(swapped) > t).mean()), 4) if swapped else None,
        "command": "python " + " ".join(sys.argv),
    }
    print(json.dumps(out, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(
            json.dumps({**out, "real": real, "probes": probes, "wrong": swapped}, indent=2) + "\n"
        )


def api_ort() -> bool:
    from facesr.restoration.engine import ort_available

    return ort_available()


if __name__ == "__main__":
    main()
