"""Rebuild ``workspace/prepared/utkface`` on the GPU machine from what ``scripts/gpu_pack.py`` packed.

Each packed JPEG is warped with its recorded alignment matrices by the same function ``facesr
prepare`` uses (:func:`facesr.data.align.warp`), so the faces are the prepared ones (``gpu_pack.py
--check`` verifies this bit for bit here). Rows are renumbered 0..N-1 in pack order; the manifest keeps
each face's original row as ``source_row``. Uses every CPU core.

    python scripts/gpu_unpack.py [--packed .gpu] [--out workspace/prepared/utkface]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _align(job: tuple[str, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    from facesr.data.align import warp
    from facesr.io import read_image

    path, m128, m64 = job
    img = read_image(path)
    return warp(img, m128, 128), warp(img, m64, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(REPO / ".gpu"))
    ap.add_argument("--out", default=str(REPO / "workspace" / "prepared" / "utkface"))
    args = ap.parse_args()
    packed, out = Path(args.packed), Path(args.out)
    meta = np.load(packed / "utkface_meta.npz")
    paths = [str(packed / "utkface" / p) for p in meta["paths"]]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        faces = list(pool.map(_align, zip(paths, meta["m128"], meta["m64"], strict=True), chunksize=64))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "faces128.npy", np.stack([f[0] for f in faces]))
    np.save(out / "faces64.npy", np.stack([f[1] for f in faces]))
    np.save(out / "landmarks128.npy", meta["landmarks128"].astype(np.float32))
    np.save(out / "split.npy", meta["split"].astype(np.uint8))
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for i, (p, h, r, s) in enumerate(
            zip(meta["paths"], meta["sha256"], meta["rows"], meta["split"], strict=True)
        ):
            rec = {
                "path": str(p),
                "sha256": str(h),
                "status": "ok",
                "reason": None,
                "split": "test" if s else "train",
                "row": i,
                "source_row": int(r),
            }
            fh.write(json.dumps(rec) + "\n")
    report = {
        "source": "utkface (gpu_pack)",
        "aligned": len(faces),
        "train": int((meta["split"] == 0).sum()),
        "test": int((meta["split"] == 1).sum()),
        "seconds": round(time.time() - t0, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
