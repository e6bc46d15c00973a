"""``facesr prepare``: a folder of face photos -> an aligned, split, checksummed training set.

For every file under the source folder: read it safely (:func:`facesr.io.read_image`), hash its
bytes (SHA-256), find the largest face's 68 landmarks (dlib), and similarity-align it to the
fixed template at 128x128 and 64x64. Output (the contract in ``docs/data.md``)::

    manifest.jsonl    one JSON object per input file: path, sha256, status ok|failed, reason,
                      split, row (index into the arrays, ok faces only), outside (padding share),
                      matrix / matrix64 (ok faces: the 2x3 source->128 / source->64 alignment)
    faces128.npy      uint8 [N,128,128,3]
    faces64.npy       uint8 [N,64,64,3]
    landmarks128.npy  float32 [N,68,2] in the 128 frame
    landmarks_src.npy float32 [N,68,2] as detected, in the source image's pixel frame (version 2)
    split.npy         uint8 [N]: 0 train, 1 test
    report.json       counts, aligned fraction, failure reasons, timing

Why split by content hash: UTKFace holds byte-identical copies of one photo under different
names (and labels); splitting by file name would put copies on both sides. Here a face is test
only if its hash is among the first ``n_test`` *unique* hashes in sorted order (hashes that occur
more than once always go to train), so the test set has no internal duplicates either, and the
choice depends on content only (adding or renaming files elsewhere never moves a test face).

Why chunks: the work is split into fixed chunks of the sorted file list; each finished chunk is
saved atomically under ``<out>/chunks/``. An interrupted run resumes where it stopped; the chunk
plan is keyed by the file list, so a changed source folder starts over.

Why the matrices and source landmarks are recorded: with ``matrix`` and ``matrix64`` (exact float64
values; JSON round-trips them) the aligned faces can be re-created from the original files with
:func:`facesr.data.align.warp` alone, and ``landmarks128`` as ``apply_affine(matrix, landmarks_src)``,
without dlib (``facesr gpu unpack`` does this on a GPU machine that cannot carry the arrays).
Prepared folders written before version 2 lack them; readers must treat them as optional.

Nothing under the source folder is ever written.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesr.errors import DataError, FacesrError
from facesr.geometry import ALIGN_WEIGHTS, TEMPLATE_128
from facesr.io import IMAGE_EXTENSIONS, atomic_path, atomic_write_text, read_image

#: Bump when detection/alignment output changes, so that stale chunks are not resumed.
#: 2: records carry the alignment matrices (``matrix``, ``matrix64``); the arrays are unchanged.
PIPELINE_VERSION = 2
#: Files per resumable chunk.
CHUNK = 64
#: UTKFace test split size (DESIGN.md section 4).
N_TEST = 1000
#: Faces whose eye centres are closer than this (source pixels) are refused: too small to align.
MIN_EYE_DISTANCE = 8.0
#: Longest side / shortest side above which an input is refused before face detection.
MAX_ASPECT = 4.0

#: Source names resolved against the data root (``facesr prepare utkface``).
SOURCES = {
    "utkface": "utkface",
    "celeba10k": "celeba10k/images",
    "rwmfd": "rwmfd",
    "web_unmasked": "web_unmasked",
}


@dataclass(frozen=True)
class Entry:
    """One thing found under the source folder: a file to process or a folder that could not be read."""

    rel: str
    error: str | None = None


def scan(root: Path, scandir: Callable[[str], object] = os.scandir) -> list[Entry]:
    """All non-hidden files under ``root`` (sorted by relative path), plus unreadable folders.

    Unreadable folders become entries with an ``error`` so that they are listed, not skipped.
    """
    out: list[Entry] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        rel_folder = folder.relative_to(root).as_posix()
        try:
            with scandir(str(folder)) as it:  # type: ignore[attr-defined]
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            out.append(Entry(rel=rel_folder + "/", error=f"cannot read folder ({reason.lower()})"))
            continue
        for item in items:
            if item.name.startswith("."):
                continue
            path = folder / item.name
            if item.is_dir(follow_symlinks=False):
                stack.append(path)
            elif item.is_file():
                out.append(Entry(rel=path.relative_to(root).as_posix()))
    return sorted(out, key=lambda e: e.rel)


def process_file(
    root: Path, rel: str
) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]:
    """Read, hash, detect and align one file. Never raises for bad input: the reason goes in the record."""
    from facesr.data.align import align_face
    from facesr.data.landmarks import detect_landmarks

    rec: dict = {"path": rel, "sha256": None, "status": "failed", "reason": None}
    path = root / rel
    try:
        data = path.read_bytes()
    except OSError as exc:
        rec["reason"] = f"cannot read file ({(exc.strerror or type(exc).__name__).lower()})"
        return rec, None
    rec["sha256"] = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        rec["reason"] = f"not an image file type ({path.suffix or 'no extension'})"
        return rec, None
    try:
        image = read_image(data)
    except FacesrError as exc:
        rec["reason"] = str(exc).removeprefix("<bytes>: ")
        return rec, None
    rec["size"] = [int(image.shape[1]), int(image.shape[0])]
    h, w = image.shape[:2]
    if max(h, w) > MAX_ASPECT * min(h, w):
        # A face photo is never this elongated; detection would up-sample the short side into
        # gigabytes (found by fuzzing: a 160 x 40,040 header-corrupted TIFF).
        rec["reason"] = (
            f"aspect ratio {max(h, w) / min(h, w):.1f}:1 is not a face image (limit {MAX_ASPECT}:1)"
        )
        return rec, None
    try:
        det = detect_landmarks(image)
    except FacesrError as exc:
        rec["reason"] = str(exc)
        return rec, None
    if det is None:
        rec["reason"] = "no face found by the dlib HOG detector"
        return rec, None
    lm = det.landmarks.astype(np.float64)
    eye_d = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    if eye_d < MIN_EYE_DISTANCE:
        rec["reason"] = f"face too small to align (eye distance {eye_d:.1f} px)"
        return rec, None
    a128 = align_face(image, lm, 128)
    a64 = align_face(image, lm, 64)
    rec.update(status="ok", reason=None, outside=round(a128.outside, 4), score=round(det.score, 3))
    rec["matrix"] = a128.matrix.tolist()  # source -> 128 frame: re-creates the face without dlib
    rec["matrix64"] = a64.matrix.tolist()
    return rec, (a128.image, a64.image, a128.landmarks.astype(np.float32), det.landmarks.astype(np.float32))


def _run_chunk(args: tuple[str, list[Entry], str]) -> int:
    """Process one chunk in a worker and save it atomically; returns the chunk's file count."""
    root, entries, target = args
    records, f128, f64, lms, src = [], [], [], [], []
    for e in entries:
        if e.error is not None:
            records.append({"path": e.rel, "sha256": None, "status": "failed", "reason": e.error})
            continue
        rec, arrays = process_file(Path(root), e.rel)
        if arrays is not None:
            rec["chunk_row"] = len(f128)
            f128.append(arrays[0])
            f64.append(arrays[1])
            lms.append(arrays[2])
            src.append(arrays[3])
        records.append(rec)
    buf = io.BytesIO()
    np.savez(
        buf,
        records=np.frombuffer(json.dumps(records).encode(), dtype=np.uint8),
        faces128=np.stack(f128) if f128 else np.zeros((0, 128, 128, 3), np.uint8),
        faces64=np.stack(f64) if f64 else np.zeros((0, 64, 64, 3), np.uint8),
        landmarks128=np.stack(lms) if lms else np.zeros((0, 68, 2), np.float32),
        landmarks_src=np.stack(src) if src else np.zeros((0, 68, 2), np.float32),
    )
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.getvalue())
    return len(entries)


def _init_worker() -> None:
    # One BLAS/OpenMP thread per worker: the workers already use the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def choose_test(hashes: list[str], n_test: int | None) -> np.ndarray:
    """Boolean test mask over ``hashes`` (one per ok face); ``None`` means every face is test.

    Test = the first ``n_test`` hashes in sorted order among hashes that occur exactly once.
    """
    if n_test is None:
        return np.ones(len(hashes), dtype=bool)
    counts = Counter(hashes)
    unique = sorted(h for h, c in counts.items() if c == 1)
    if len(unique) < n_test:
        raise DataError(
            f"only {len(unique)} distinct faces aligned, cannot hold out {n_test} for test; re-run with "
            "--n-test N or --all-test (finished chunks are kept, so the re-run is quick)"
        )
    chosen = set(unique[:n_test])
    return np.array([h in chosen for h in hashes], dtype=bool)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)


def prepare(
    src: Path,
    out: Path,
    *,
    workers: int = 2,
    n_test: int | None = N_TEST,
    source_name: str | None = None,
    progress: bool = True,
) -> dict:
    """Build the prepared set for ``src`` under ``out``; returns the report (also written as report.json)."""
    from tqdm import tqdm

    src = Path(src)
    if not src.is_dir():
        raise DataError(f"source folder {str(src)!r} not found")
    out = Path(out)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DataError("the output folder must not be inside the source folder (inputs are never modified)")
    t0 = time.perf_counter()
    entries = scan(src)
    if not entries:
        raise DataError(f"no files found under {str(src)!r}")
    chunks = [entries[i : i + CHUNK] for i in range(0, len(entries), CHUNK)]
    # Chunks are only reused for the same file list *and* the same alignment (template, weights,
    # pipeline version): a resumed run never mixes faces aligned two different ways.
    plan = [[e.rel, e.error] for e in entries] + [
        CHUNK,
        PIPELINE_VERSION,
        TEMPLATE_128.tolist(),
        ALIGN_WEIGHTS.tolist(),
    ]
    plan_key = hashlib.sha256(json.dumps(plan).encode()).hexdigest()
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    plan_file = chunk_dir / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()).get("key") != plan_key:
        for f in chunk_dir.glob("chunk_*.npz"):
            f.unlink()
    atomic_write_text(plan_file, json.dumps({"key": plan_key, "chunks": len(chunks)}))
    targets = [chunk_dir / f"chunk_{i:05d}.npz" for i in range(len(chunks))]
    todo = [i for i, t in enumerate(targets) if not t.exists()]
    resumed = len(chunks) - len(todo)
    n_todo_files = sum(len(chunks[i]) for i in todo)
    t_work = time.perf_counter()
    jobs = [(str(src), chunks[i], str(targets[i])) for i in todo]
    with tqdm(
        total=len(entries),
        initial=len(entries) - n_todo_files,
        unit="img",
        desc=f"prepare {src.name}",
        disable=not progress,
        smoothing=0.05,
    ) as bar:
        if workers > 1 and len(jobs) > 1:
            ctx = mp.get_context("fork" if platform.system() == "Linux" else "spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for n in pool.imap_unordered(_run_chunk, jobs):
                    bar.update(n)
        else:
            for job in jobs:
                bar.update(_run_chunk(job))
    work_s = time.perf_counter() - t_work
    return _assemble(
        src,
        out,
        targets,
        n_test,
        source_name,
        resumed,
        n_todo_files,
        work_s,
        time.perf_counter() - t0,
        workers,
    )


def _assemble(
    src: Path,
    out: Path,
    targets: list[Path],
    n_test: int | None,
    source_name: str | None,
    resumed: int,
    n_processed: int,
    work_s: float,
    total_s: float,
    workers: int,
) -> dict:
    """Concatenate the chunks in order, assign the split, write the arrays, manifest and report."""
    records: list[dict] = []
    f128, f64, lms, lms_src = [], [], [], []
    row = 0
    for t in targets:
        with np.load(t) as z:
            recs = json.loads(z["records"].tobytes().decode())
            f128.append(z["faces128"])
            f64.append(z["faces64"])
            lms.append(z["landmarks128"])
            lms_src.append(z["landmarks_src"])
        for r in recs:
            if r["status"] == "ok":
                r["row"] = row + r.pop("chunk_row")
            records.append(r)
        row += len(f128[-1])
    faces128 = np.concatenate(f128)
    faces64 = np.concatenate(f64)
    landmarks = np.concatenate(lms).astype(np.float32)
    ok = [r for r in records if r["status"] == "ok"]
    ok.sort(key=lambda r: r["row"])
    test = choose_test([r["sha256"] for r in ok], n_test)
    split = test.astype(np.uint8)
    for r, is_test in zip(ok, test, strict=True):
        r["split"] = "test" if is_test else "train"
    for r in records:
        r.setdefault("split", None)
        r.setdefault("row", None)
    _save_npy(out / "faces128.npy", faces128)
    _save_npy(out / "faces64.npy", faces64)
    _save_npy(out / "landmarks128.npy", landmarks)
    _save_npy(out / "landmarks_src.npy", np.concatenate(lms_src).astype(np.float32))
    _save_npy(out / "split.npy", split)
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    failed = [r for r in records if r["status"] != "ok"]
    reasons = Counter(_reason_kind(r["reason"]) for r in failed)
    outside = np.array([r["outside"] for r in ok]) if ok else np.zeros(1)
    report = {
        "source": source_name or src.name,
        "source_path": str(src),
        "files": len(records),
        "aligned": len(ok),
        "failed": len(failed),
        "aligned_fraction": round(len(ok) / max(1, len(records)), 4),
        "train": int((split == 0).sum()),
        "test": int((split == 1).sum()),
        "split_rule": "all test"
        if n_test is None
        else f"test = first {n_test} sorted SHA-256 among hashes occurring once; duplicates -> train",
        "failure_reasons": dict(reasons.most_common()),
        "failures": [{"path": r["path"], "reason": r["reason"]} for r in failed],
        "outside_frame": {
            "mean": round(float(outside.mean()), 4),
            "p90": round(float(np.percentile(outside, 90)), 4),
            "max": round(float(outside.max()), 4),
        },
        "template_128": TEMPLATE_128.tolist(),
        "workers": workers,
        "resumed_chunks": resumed,
        "processed_files": n_processed,
        "work_seconds": round(work_s, 2),
        "total_seconds": round(total_s, 2),
        "files_per_second": round(n_processed / work_s, 2) if n_processed and work_s > 0 else None,
        "cpu": platform.processor() or platform.machine(),
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _reason_kind(reason: str | None) -> str:
    """Group failure reasons for the report (drop file-specific details)."""
    if not reason:
        return "unknown"
    return reason.split(" (")[0].split(":")[0]
