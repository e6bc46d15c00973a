"""Pack what a GPU session needs into ``.gpu/`` (git-ignored) for the device tool's ``carry``.

The device tool sends the working tree plus carried folders, 64 MiB in all. The decoded prepared
arrays (``faces128.npy`` is ~450 MB) cannot travel, so this packs the *original* UTKFace JPEGs plus what
re-creates the aligned faces exactly on the GPU machine without dlib (``facesr gpu unpack``):

* ``.gpu/utkface_jpegs.xz``: the original JPEG bytes, byte for byte, of every test face (the frozen
  ``utk-mask-x2/x4/x8`` benchmarks are rebuilt from them on the device) and of as many train faces as fit
  the budget, drawn in a seeded random order (UTKFace file names start with the age, so a name-ordered
  prefix would be age-biased); byte-identical copies of one photo are packed once. One xz stream of the
  concatenated files (:func:`write_jpegs` / :func:`read_jpegs`, standard library ``lzma``): the JPEGs
  share their headers and tables, so it is ~5 % smaller than the files (:data:`XZ_RATIO`);
* ``.gpu/utkface_meta.npz``: per face its path, sha256 (32 raw bytes), original row and split, the 2x3
  source->128 and source->64 alignment matrices, the source landmarks (``landmarks128 =
  apply_affine(m128, src)``; stored as differences between consecutive points, which compress better),
  fingerprints of the prepared arrays (an 8-byte hash per face, and a few faces in full) so the device
  can prove it re-created them, and the prepared report fields the benchmarks' meta.json quotes;
* ``.gpu/bench_fingerprints.npz``: per-image pixel hashes of the frozen ``utk-mask-x2/x4/x8`` built
  here (when present; 40 KB per set), so the device can prove its rebuilt benchmarks are the same images;
* ``.gpu/masktheface/masks/``: ``masks.cfg``, the templates, and the textures already cropped and
  resized to the synthesiser's resolution (same pixels, smaller files; names and order kept);
* ``.gpu/wheels.tar.xz``: pydantic and its compiled core for CPython 3.12 (the GPU image lacks them),
  with ``--wheels`` (pip download): the wheels' contents, unzipped and xz-compressed (2.0 MB instead of
  the wheels' 2.8 MB); a wheel unzipped into a folder is that package installed there, so the GPU
  scripts extract it into ``/tmp/site`` (their ``PYTHONPATH``).

The matrices and source landmarks come from the prepared set when ``facesr prepare`` recorded them
(PIPELINE_VERSION 2: manifest ``matrix``/``matrix64`` and ``landmarks_src.npy``): packing then takes
seconds. For an older prepared set they are detected again with the same dlib code (CPU minutes for
thousands of faces, ``--workers`` processes). ``--check N`` re-aligns N packed faces here and compares
them with the prepared arrays.

    facesr gpu pack --wheels --check 50          # budget: 63 MiB with the working tree
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import inspect
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
MIB = 2**20
LIMIT = 64 * MIB  # the device tool's working-tree limit (tree + carried folders)
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")
BENCH_FOLDERS = ("hr", "hr_masked", "mask", "lr", "lr_clean")
REPORT_KEYS = ("source", "files", "aligned", "aligned_fraction", "split_rule", "template_128")
#: Compressed meta per face (path, hash, matrices, landmarks, fingerprints): 189.5 measured on a real
#: pack of 4,999 faces (1,203,799 bytes, of which 256,262 the reference faces); and the reference faces'
#: bytes (6 faces of 128x128x3 and their landmarks: 244,840-256,262 measured on three packs).
META_BYTES_PER_FACE = 200
REF_BYTES = 270_000
#: Size of the xz stream over the summed JPEG sizes: 0.948 measured on real packs of 5,260 and 4,999
#: faces (25,380,359 -> 24,060,344 and 24,106,629 -> 22,853,148 bytes, preset 9); the plan uses 0.95.
XZ_RATIO = 0.95
JPEGS = "utkface_jpegs.xz"
WHEELS_BYTES = 2_000_000  # wheels.tar.xz for pydantic 2.14.4 (1,992,584 measured); --plan when absent
WHEELS_FILE = "wheels.tar.xz"


def write_jpegs(path: Path, blobs: list[bytes]) -> None:
    """One xz stream: face count, each file's length (uint32 little-endian), then the files' bytes."""
    import lzma

    head = np.array([len(blobs), *map(len, blobs)], dtype="<u4").tobytes()
    path.write_bytes(lzma.compress(head + b"".join(blobs), preset=9))


def read_jpegs(path: Path) -> list[bytes]:
    """The files :func:`write_jpegs` packed, in its order."""
    import lzma

    data = lzma.decompress(path.read_bytes())
    n = int(np.frombuffer(data, "<u4", 1)[0])
    ends = 4 * (n + 1) + np.cumsum(np.frombuffer(data, "<u4", n, 4), dtype=np.int64)
    return [data[int(a) : int(b)] for a, b in zip([4 * (n + 1), *ends[:-1]], ends, strict=True)]


def face_hash(arr: np.ndarray) -> int:
    """An 8-byte fingerprint of a uint8/float32 array (shape and bytes)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(arr.shape).encode() + str(arr.dtype).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return int.from_bytes(h.digest(), "little")


def geometry_for(
    rec: dict, src_root: Path, lm_src: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source->128 and source->64 matrices and the source landmarks (prepared set, else dlib again)."""
    from facesr.data.align import alignment_matrix
    from facesr.data.landmarks import detect_landmarks
    from facesr.io import read_image

    if "matrix" in rec and "matrix64" in rec and lm_src is not None:
        return np.asarray(rec["matrix"], np.float64), np.asarray(rec["matrix64"], np.float64), lm_src
    det = detect_landmarks(read_image(src_root / rec["path"]))
    if det is None:
        raise SystemExit(f"{rec['path']}: dlib finds no face now, but prepare did; cannot pack")
    lm = det.landmarks.astype(np.float64)
    return alignment_matrix(lm, 128), alignment_matrix(lm, 64), det.landmarks.astype(np.float32)


def pack_textures(src: Path, dst: Path, res: int) -> None:
    """Textures cropped/resized as facesr.data.masks.load_textures does, saved losslessly (PNG bytes)."""
    from PIL import Image

    for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        with Image.open(path) as im:
            img = im.convert("RGB")
        s = min(img.size)
        left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((res, res), Image.Resampling.BICUBIC)
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, format="PNG")  # PNG bytes under the original name: same listing order, exact pixels
        out.write_bytes(buf.getvalue())


def pack_masks(data: Path, out: Path) -> None:
    """masks.cfg + templates + textures, each pre-sized to the synthesiser's resolution (same pixels).

    ``MaskSynthesizer`` resizes every template so that its longer side is ``res`` and rescales the six
    anchors by ``(a + 0.5) * (new / old) - 0.5``. Packed here: the template already at that size (its
    second resize is then the identity: Pillow returns a copy for an unchanged size) and the anchors
    ``b - 0.5`` with ``b = (a + 0.5) * ratio`` (exact in float64, so the device's ``(a' + 0.5) * 1 - 0.5``
    gives the same float). Textures likewise. 7 MB of full-size templates become ~0.5 MB.
    """
    from PIL import Image

    from facesr.data.masks import MaskSynthesizer

    src = data / "masktheface"
    dst = out / "masktheface"
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    res = int(inspect.signature(MaskSynthesizer).parameters["res"].default)  # what every caller uses
    cfg = configparser.ConfigParser()
    cfg.read(src / "masks" / "masks.cfg")
    for sec in cfg.sections():
        item = cfg[sec]
        if "template" not in item or not (src / item["template"].strip()).is_file():
            continue
        rel = item["template"].strip()
        with Image.open(src / rel) as im:
            rgba = np.asarray(im.convert("RGBA"))
        h, w = rgba.shape[:2]
        f = res / max(h, w)
        nw, nh = max(1, round(w * f)), max(1, round(h * f))
        small = Image.fromarray(rgba).resize((nw, nh), Image.Resampling.BICUBIC)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        small.save(dst / rel, format="PNG")
        if all(f"mask_{k}" in item for k in "abcdef"):
            for k in "abcdef":
                a = np.array([float(v) for v in item[f"mask_{k}"].split(",")])
                b = (a + 0.5) * np.array([nw / w, nh / h])
                item[f"mask_{k}"] = ", ".join(repr(float(x)) for x in b - 0.5)
    with open(dst / "masks" / "masks.cfg", "w", encoding="utf-8") as fh:
        cfg.write(fh)
    if (src / "masks" / "textures").is_dir():
        pack_textures(src / "masks" / "textures", dst / "masks" / "textures", res)


def download_wheels(out: Path) -> None:
    """pydantic and friends for CPython 3.12 manylinux x86-64, the versions installed here, as
    ``wheels.tar.xz``: the wheels' files, unzipped (pure and platform libraries, no ``.data``)."""
    import tarfile
    import tempfile
    import zipfile
    from importlib.metadata import version

    specs = [f"{name}=={version(name)}" for name in WHEELS]
    plats = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(Path(tmp) / "whl")]
        for p in plats:
            cmd += ["--platform", p]
        subprocess.run(cmd + specs, check=True)
        site = Path(tmp) / "site"
        for whl in sorted((Path(tmp) / "whl").glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                if any(".data/" in n for n in z.namelist()):
                    raise SystemExit(f"{whl.name}: has a .data folder; unzipping it is not installing it")
                z.extractall(site)
        with tarfile.open(out / WHEELS_FILE, "w:xz", preset=9) as tar:
            for f in sorted(site.rglob("*")):
                tar.add(f, arcname=str(f.relative_to(site)), recursive=False)


def bench_fingerprints(bench_root: Path) -> dict[str, np.ndarray]:
    """Per-image pixel hashes of the frozen utk-mask benchmarks here (PNG bytes may differ by zlib)."""
    from facesr.io import read_image

    out: dict[str, np.ndarray] = {}
    for name in ("utk-mask-x2", "utk-mask-x4", "utk-mask-x8"):
        root = bench_root / name
        if not (root / "meta.json").is_file():
            continue
        for folder in BENCH_FOLDERS:
            files = sorted((root / folder).glob("*.png"))
            hashes = []
            for f in files:
                with open(f, "rb") as fh:
                    arr = read_image(fh.read())
                hashes.append(face_hash(arr[..., 0] if folder == "mask" else arr))
            out[f"{name}/{folder}"] = np.array(hashes, dtype=np.uint64)
        meta = json.loads((root / "meta.json").read_text())
        out[f"{name}/n"] = np.array(meta["n"])
    return out


def tree_size() -> int:
    """Bytes of the working tree that the device tool sends (tracked + untracked, not ignored)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def choose_train(
    records: list[dict], src_root: Path, budget: int, limit: int | None, seed: int
) -> list[dict]:
    """Train faces in a seeded random order, duplicates of one photo once, until the byte budget is used."""
    seen: set[str] = set()
    unique = []
    for r in records:
        if r["sha256"] not in seen:
            seen.add(r["sha256"])
            unique.append(r)
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen, used = [], 0
    for i in order:
        if limit is not None and len(chosen) >= limit:
            break
        size = (src_root / unique[i]["path"]).stat().st_size * XZ_RATIO + META_BYTES_PER_FACE
        if used + size > budget:
            continue  # a smaller file may still fit
        chosen.append(unique[i])
        used += size
    return sorted(chosen, key=lambda r: r["row"])


def main(argv: list[str] | None = None) -> None:
    """``facesr gpu pack [options]`` (``-h`` lists them)."""
    ap = argparse.ArgumentParser(prog="facesr gpu pack", description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default=str(REPO / "workspace" / "prepared" / "utkface"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="holds masktheface/")
    ap.add_argument("--source", default=None, help="the folder prepare read (default: from its report)")
    ap.add_argument("--benchmarks", default=str(REPO / "workspace" / "benchmarks"))
    ap.add_argument("--out", default=str(REPO / ".gpu"))
    ap.add_argument("--test", type=int, default=None, help="test faces to pack (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="at most N train faces")
    ap.add_argument("--budget-mib", type=float, default=63.0, help="tree + pack, MiB (device limit: 64)")
    ap.add_argument("--seed", type=int, default=0, help="order in which train faces are drawn")
    ap.add_argument("--check", type=int, default=0, help="re-align N packed faces here and compare")
    ap.add_argument("--wheels", action="store_true", help="download the pydantic wheels (pip download)")
    ap.add_argument("--tree-bytes", type=int, default=None, help="working-tree size (default: measured)")
    ap.add_argument("--plan", action="store_true", help="choose the faces and print the sizes; copy nothing")
    ap.add_argument("--workers", type=int, default=2, help="processes for the dlib fallback")
    args = ap.parse_args(argv)

    from facesr.data.align import warp
    from facesr.data.prepared import PreparedSet
    from facesr.io import read_image

    t0 = time.time()
    prepared = PreparedSet.load(args.prepared)
    data, out = Path(args.data), Path(args.out)
    src_root = Path(args.source or prepared.report.get("source_path") or data / "utkface")
    if not src_root.is_absolute() and not src_root.is_dir():
        src_root = REPO / src_root
    records = [r for r in prepared.manifest() if r.get("status") == "ok"]
    lm_path = Path(args.prepared) / "landmarks_src.npy"
    lm_src_all = np.load(lm_path, mmap_mode="r") if lm_path.is_file() else None
    have_geometry = lm_src_all is not None and all("matrix" in r for r in records)
    print(
        f"alignment: {'recorded by facesr prepare' if have_geometry else 'dlib again (older prepared set)'}"
    )

    if not args.plan and (out / "utkface").exists():  # the loose JPEGs of an older pack
        shutil.rmtree(out / "utkface")
    if not args.plan and (out / "wheels").exists():  # the loose wheels of an older pack
        shutil.rmtree(out / "wheels")
    if not args.plan:
        (out / JPEGS).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    pack_masks(data, out)
    if args.wheels and not args.plan:
        download_wheels(out)
    wheels_est = 0 if (out / WHEELS_FILE).is_file() or not (args.wheels or args.plan) else WHEELS_BYTES
    fps = bench_fingerprints(Path(args.benchmarks))
    np.savez_compressed(out / "bench_fingerprints.npz", **fps)

    test = [r for r in records if r["split"] == "test"][: args.test]
    tree = args.tree_bytes if args.tree_bytes is not None else tree_size()
    fixed = folder_size(out) + XZ_RATIO * sum((src_root / r["path"]).stat().st_size for r in test)
    fixed += META_BYTES_PER_FACE * len(test) + REF_BYTES + wheels_est
    budget = int(args.budget_mib * MIB - tree - fixed)
    train = choose_train(
        [r for r in records if r["split"] == "train"], src_root, budget, args.limit, args.seed
    )
    chosen = sorted(train + test, key=lambda r: r["row"])  # original row order: test order kept
    if args.plan:
        jpeg = sum((src_root / r["path"]).stat().st_size for r in chosen)
        est = folder_size(out) + wheels_est + jpeg * XZ_RATIO + META_BYTES_PER_FACE * len(chosen) + REF_BYTES
        plan = {
            "plan": True,
            "train": len(train),
            "train_available": sum(r["split"] == "train" for r in records),
            "test": len(test),
            "alignment_recorded": have_geometry,
            "jpeg_MiB": round(jpeg / MIB, 2),
            "jpeg_xz_MiB_est": round(jpeg * XZ_RATIO / MIB, 2),
            "packed_MiB_est": round(est / MIB, 2),
            "tree_MiB": round(tree / MIB, 2),
            "with_tree_MiB_est": round((est + tree) / MIB, 2),
        }
        print(json.dumps(plan))
        return

    n = len(chosen)
    m128, m64 = np.zeros((n, 2, 3)), np.zeros((n, 2, 3))
    lm_src = np.zeros((n, 68, 2), np.float32)
    jobs = []
    write_jpegs(out / JPEGS, [(src_root / rec["path"]).read_bytes() for rec in chosen])
    for rec in chosen:
        known = None if lm_src_all is None else np.asarray(lm_src_all[rec["row"]], np.float32)
        jobs.append((rec, src_root, known))
    if have_geometry or args.workers == 1:
        geometry = [geometry_for(*job) for job in jobs]
    else:  # dlib again: one process per core (each face is independent)
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.workers) as pool:
            geometry = pool.starmap(geometry_for, jobs, chunksize=32)
    for i, (a, b, c) in enumerate(geometry):
        m128[i], m64[i], lm_src[i] = a, b, c
    rows = np.array([r["row"] for r in chosen])
    lm128 = landmarks128_from(m128, lm_src)
    integral = bool(np.all(lm_src == np.round(lm_src))) and np.abs(lm_src).max() < 32767
    rng = np.random.default_rng(args.seed + 1)
    ref = np.sort(rng.choice(n, size=min(6, n), replace=False))
    np.savez_compressed(
        out / "utkface_meta.npz",
        paths=np.array([r["path"] for r in chosen]),
        sha256=np.array([np.frombuffer(bytes.fromhex(r["sha256"]), np.uint8) for r in chosen]),
        rows=rows,
        split=np.array([1 if r["split"] == "test" else 0 for r in chosen], np.uint8),
        m128=m128,
        m64_xor=m64_residual(m128, m64),
        lm_src_diff=landmark_diffs(lm_src.astype(np.int16) if integral else lm_src),
        hash128=np.array([face_hash(prepared.faces128[r]) for r in rows], np.uint64),
        hash64=np.array([face_hash(prepared.faces64[r]) for r in rows], np.uint64),
        hash_lm=np.array([face_hash(np.asarray(prepared.landmarks128[r])) for r in rows], np.uint64),
        ref_idx=ref,
        ref128=np.asarray(prepared.faces128[rows[ref]]),
        ref_lm128=np.asarray(prepared.landmarks128[rows[ref]], np.float32),
        report=np.array(json.dumps({k: prepared.report.get(k) for k in REPORT_KEYS})),
    )
    # The landmarks the device will compute must be the prepared ones (same float ops as align_face).
    lm_ok = int(sum(np.array_equal(lm128[i], prepared.landmarks128[r]) for i, r in enumerate(rows)))
    if args.check:
        bad = 0
        packed_jpegs = read_jpegs(out / JPEGS)  # what the device will read
        for i in np.linspace(0, n - 1, args.check).astype(int):
            img = read_image(packed_jpegs[i])
            ok128 = np.array_equal(warp(img, m128[i], 128), prepared.faces128[rows[i]])
            ok64 = np.array_equal(warp(img, m64[i], 64), prepared.faces64[rows[i]])
            bad += not (ok128 and ok64)
        print(f"check: {args.check - bad}/{args.check} faces re-align bit-exactly")
    packed = folder_size(out)
    total = packed + tree
    summary = {
        "faces": n,
        "train": len(train),
        "train_available": sum(r["split"] == "train" for r in records),
        "test": len(test),
        "landmarks128_exact": f"{lm_ok}/{n}",
        "benchmark_fingerprints": sorted({k.split("/")[0] for k in fps}),
        "packed_MiB": round(packed / MIB, 2),
        "tree_MiB": round(tree / MIB, 2),
        "with_tree_MiB": round(total / MIB, 2),
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary))
    if total > LIMIT:
        raise SystemExit(f"{total / MIB:.1f} MiB exceeds the device tool's 64 MiB; lower --budget-mib")


def _m64_guess(m128: np.ndarray) -> np.ndarray:
    """The source->64 matrix predicted from the source->128 one (half the scale, pixel centres kept)."""
    g = m128.astype(np.float64, copy=True)
    g[:, :, :2] *= 0.5
    g[:, :, 2] = (m128[:, :, 2] + 0.5) * 0.5 - 0.5
    return g


def m64_residual(m128: np.ndarray, m64: np.ndarray) -> np.ndarray:
    """``m64`` exactly, as the XOR of its float64 bits with :func:`_m64_guess`'s, in byte planes
    ``[8, 6, N]`` uint8: the guess agrees to ~1e-14, so most bytes are zero (187 -> 21 kB for 5,260 faces)."""
    x = np.ascontiguousarray(m64, np.float64).view(np.uint64) ^ _m64_guess(m128).view(np.uint64)
    return np.ascontiguousarray(x.view(np.uint8).reshape(len(m64), 6, 8).transpose(2, 1, 0))


def m64_from_residual(m128: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The inverse of :func:`m64_residual`: ``[N, 2, 3]`` float64."""
    x = np.ascontiguousarray(residual.transpose(2, 1, 0)).view(np.uint64).reshape(len(m128), 2, 3)
    return (x ^ _m64_guess(m128).view(np.uint64)).view(np.float64)


def landmark_diffs(lm: np.ndarray) -> np.ndarray:
    """``[N, 68, 2]`` source landmarks as ``[2, 68, N]`` differences between consecutive points (the first
    point as is), ~45 % smaller once compressed. Integer landmarks (dlib's) as int16; any others as the
    int32 bit patterns of their float32 values (wrapping integer differences: exact either way)."""
    ints = (
        lm.astype(np.int16) if lm.dtype.kind in "iu" else np.ascontiguousarray(lm, np.float32).view(np.int32)
    )
    return np.ascontiguousarray(np.diff(ints, axis=1, prepend=np.zeros_like(ints[:, :1])).transpose(2, 1, 0))


def landmarks_from_diffs(diffs: np.ndarray) -> np.ndarray:
    """The inverse of :func:`landmark_diffs`: ``[N, 68, 2]`` float32."""
    ints = np.cumsum(diffs.transpose(2, 1, 0), axis=1, dtype=diffs.dtype)
    return ints.view(np.float32) if diffs.dtype == np.int32 else ints.astype(np.float32)


def landmarks128_from(m128: np.ndarray, lm_src: np.ndarray) -> np.ndarray:
    """``landmarks128`` per face exactly as ``facesr.data.align.align_face`` computes them
    (the same code is in :mod:`facesr.gpu.unpack`)."""
    from facesr.geometry import apply_affine

    pts = lm_src.astype(np.float64)
    return np.stack([apply_affine(m128[i], pts[i]).astype(np.float32) for i in range(len(m128))])
