"""Rebuild ``workspace/prepared/utkface`` on the GPU machine from what ``facesr gpu pack`` packed.

Each packed JPEG (read back from ``utkface_jpegs.xz``) is warped with its recorded alignment matrices by the same function ``facesr
prepare`` uses (:func:`facesr.data.align.warp`), and its 128-frame landmarks are computed from the
recorded source landmarks with the same float operations, so no dlib is needed. The result is then
*checked* against fingerprints taken from the prepared arrays where they were packed: an 8-byte hash
per face (exact equality) and a few faces in full (largest pixel difference, which must stay within
1/255 if a different Pillow build rounds differently). A larger difference stops here with a one-line
error, so no training runs on faces that differ from the prepared set.

Rows are renumbered 0..N-1 in the original row order (so the test faces keep their order and the
frozen benchmarks rebuild the same); the manifest keeps each face's original row as ``source_row``.
Uses every CPU core.

    facesr gpu unpack [--packed .gpu] [--out workspace/prepared/utkface]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facesr.gpu.pack import (  # one fingerprint function and one pack format for both ends
    JPEGS,
    face_hash,
    landmarks_from_diffs,
    m64_from_residual,
    read_jpegs,
)

REPO = Path(__file__).resolve().parents[3]


def _align(job: tuple[bytes, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    from facesr.data.align import warp
    from facesr.io import read_image

    jpeg, m128, m64 = job
    img = read_image(jpeg)
    return warp(img, m128, 128), warp(img, m64, 64)


def unpack(packed: Path, out: Path, workers: int | None = None) -> dict:
    """Re-create the prepared set under ``out``; returns the report (also written as report.json)."""
    from facesr.geometry import apply_affine
    from facesr.io import atomic_write_text

    meta = np.load(packed / "utkface_meta.npz")
    t0 = time.time()
    jpegs = read_jpegs(packed / JPEGS)
    if len(jpegs) != len(meta["paths"]):
        raise SystemExit(f"facesr gpu unpack: {len(jpegs)} JPEGs packed for {len(meta['paths'])} faces")
    m128 = meta["m128"]
    m64 = m64_from_residual(m128, meta["m64_xor"])
    jobs = list(zip(jpegs, m128, m64, strict=True))
    if (workers or os.cpu_count() or 1) > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            faces = list(pool.map(_align, jobs, chunksize=64))
    else:
        faces = [_align(j) for j in jobs]
    f128 = np.stack([f[0] for f in faces])
    f64 = np.stack([f[1] for f in faces])
    lm_src = landmarks_from_diffs(meta["lm_src_diff"])
    pts = lm_src.astype(np.float64)
    lm128 = np.stack([apply_affine(m, p).astype(np.float32) for m, p in zip(m128, pts, strict=True)])

    exact128 = np.array([face_hash(f) for f in f128], np.uint64) == meta["hash128"]
    exact64 = np.array([face_hash(f) for f in f64], np.uint64) == meta["hash64"]
    exact_lm = np.array([face_hash(x) for x in lm128], np.uint64) == meta["hash_lm"]
    ref = meta["ref_idx"]
    ref_diff = int(np.abs(f128[ref].astype(np.int16) - meta["ref128"].astype(np.int16)).max())
    lm_diff = float(np.abs(lm128[ref] - meta["ref_lm128"]).max()) if "ref_lm128" in meta else 0.0
    check = {
        "faces128_exact": f"{int(exact128.sum())}/{len(f128)}",
        "faces64_exact": f"{int(exact64.sum())}/{len(f64)}",
        "landmarks128_exact": f"{int(exact_lm.sum())}/{len(lm128)}",
        "reference_faces_max_abs_diff": ref_diff,
        "reference_landmarks_max_abs_diff_px": lm_diff,
    }
    # Exact is expected (same code, same numbers); another Pillow or BLAS build may round a pixel or
    # the last bit of a landmark differently. Within 1/255 and 1e-3 px the set is the prepared one.
    if ref_diff > 1 or lm_diff > 1e-3:
        raise SystemExit(
            f"facesr gpu unpack: re-created faces differ from the prepared set: {json.dumps(check)}"
        )

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "faces128.npy", f128)
    np.save(out / "faces64.npy", f64)
    np.save(out / "landmarks128.npy", lm128)
    np.save(out / "landmarks_src.npy", lm_src)
    np.save(out / "split.npy", meta["split"].astype(np.uint8))
    lines = []
    for i, (p, h, r, s) in enumerate(
        zip(meta["paths"], meta["sha256"], meta["rows"], meta["split"], strict=True)
    ):
        rec = {
            "path": str(p),
            "sha256": bytes(h).hex(),
            "status": "ok",
            "reason": None,
            "split": "test" if s else "train",
            "row": i,
            "source_row": int(r),
            "matrix": m128[i].tolist(),
            "matrix64": m64[i].tolist(),
        }
        lines.append(json.dumps(rec, sort_keys=True) + "\n")
    atomic_write_text(out / "manifest.jsonl", "".join(lines))
    report = json.loads(str(meta["report"])) if "report" in meta else {"source": "utkface"}
    report.update(
        {
            "unpacked_by": "facesr gpu unpack (from facesr gpu pack: original JPEGs + recorded alignment)",
            "train": int((meta["split"] == 0).sum()),
            "test": int((meta["split"] == 1).sum()),
            "check": check,
            "seconds": round(time.time() - t0, 1),
        }
    )
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    """``facesr gpu unpack [options]`` (``-h`` lists them)."""
    ap = argparse.ArgumentParser(prog="facesr gpu unpack", description=__doc__.splitlines()[0])
    ap.add_argument("--packed", default=str(REPO / ".gpu"))
    ap.add_argument("--out", default=str(REPO / "workspace" / "prepared" / "utkface"))
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    report = unpack(Path(args.packed), Path(args.out), args.workers)
    print(json.dumps({k: report[k] for k in ("train", "test", "check", "seconds")}))
