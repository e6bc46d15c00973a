"""Paired-bootstrap FRD change between two CR result files (docs/cr.md section 6).

python scripts/cr_paired.py genuine-lr cr cycle      # -> "cr vs cycle: +0.3 % [-0.1, +0.7]"
"""

from __future__ import annotations

import json
import sys

import numpy as np


def doc(name: str, bench: str) -> dict:
    return json.load(open(f"results/{bench}__{name}.json", encoding="utf-8"))


def change(bench: str, name: str, ref: str) -> str:
    a, r = doc(name, bench), doc(ref, bench)
    rel = np.array(a["frd_bootstrap"]["values"]) / np.array(r["frd_bootstrap"]["values"]) - 1
    lo, hi = np.percentile(rel, [2.5, 97.5])
    point = a["metrics"]["frd"] / r["metrics"]["frd"] - 1
    return f"{name} vs {ref} ({bench}): FRD {a['metrics']['frd']:.4f} vs {r['metrics']['frd']:.4f}, {100 * point:+.1f} % [{100 * lo:+.1f}, {100 * hi:+.1f}]"


if __name__ == "__main__":
    bench, *names = sys.argv[1:]
    for ref in names[1:]:
        print(change(bench, names[0], ref))
