#!/usr/bin/env python
"""How well the 128 px template fits a prepared set: out-of-frame share, chin/brow position, fit residuals.

Usage: ``python benchmarks/template_fit.py [workspace/prepared/utkface]`` (after ``facesr prepare``).
Prints the statistics quoted in ``facesr.geometry`` and ``docs/data.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from facesr.geometry import TEMPLATE_128, five_from_68


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "workspace/prepared/utkface")
    lm = np.load(root / "landmarks128.npy").astype(np.float64)
    recs = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    outside = np.array([r["outside"] for r in recs if r["status"] == "ok"])
    five = np.stack([five_from_68(x) for x in lm])
    eye_err = np.linalg.norm(five[:, :2] - TEMPLATE_128[:2], axis=-1)
    mouth_err = np.linalg.norm(five[:, 3:] - TEMPLATE_128[3:], axis=-1)
    chin = lm[:, 8, 1]
    brow = lm[:, 17:27, 1].min(1)
    print(f"faces: {len(lm)} ({root})")
    print(
        f"out-of-frame share (reflect-padded): mean {outside.mean():.3f}, p90 {np.percentile(outside, 90):.3f}, "
        f"max {outside.max():.3f}"
    )
    print(
        f"chin (landmark 8) y: median {np.median(chin):.1f}, p95 {np.percentile(chin, 95):.1f}; "
        f"inside the frame (y <= 127): {(chin <= 127).mean():.3f}"
    )
    print(f"highest brow point y: p5 {np.percentile(brow, 5):.1f}, median {np.median(brow):.1f}")
    print(f"eye centre to template: mean {eye_err.mean():.2f} px, within 2 px {(eye_err < 2).mean():.3f}")
    print(f"mouth corner to template: mean {mouth_err.mean():.2f} px")
    print(f"mean 5-point shape in this frame: {np.round(five.mean(0), 2).tolist()}")


if __name__ == "__main__":
    main()
