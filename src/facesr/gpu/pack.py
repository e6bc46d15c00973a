"""Pack what a GPU session needs into ``.gpu/`` (git-ignored) for the device tool's ``carry``.

The device tool sends the working tree plus carried folders, 64 MiB in all. The decoded prepared
arrays (``faces128.npy`` is ~450 MB) cannot travel, so this packs the *original* UTKFace JPEGs plus what
re-creates the aligned faces exactly on the GPU machine without dlib (``facesr gpu unpack``):

* ``.gpu/utkface/<path>``: the original JPEG bytes: every test face (the frozen ``utk-mask-x4/x8``
  benchmarks are rebuilt from them on the device) and as many train faces as fit the budget, drawn
  in a seeded random order (UTKFace file names start with the age, so a name-ordered prefix would be
  age-biased); byte-identical copies of one photo are packed once;
* ``.gpu/utkface_meta.npz``: per face its path, sha256, original row and split, the 2x3 source->128 and
  source->64 alignment matrices, the source landmarks (``landmarks128 = apply_affine(m128, src)``),
  fingerprints of the prepared arrays (an 8-byte hash per face, and a few faces in full) so the device
  can prove it re-created them, and the prepared report fields the benchmarks' meta.json quotes;
* ``.gpu/bench_fingerprints.npz``: per-image pixel hashes of the frozen ``utk-mask-x4/x8`` built here
  (when present), so the device can prove its rebuilt benchmarks are the same images;
* ``.gpu/masktheface/masks/``: ``masks.cfg``, the templates, and the textures already cropped and
  resized to the synthesiser's resolution (same pixels, smaller files; names and order kept);
* ``.gpu/wheels/``: pydantic and its compiled core for CPython 3.12 (the GPU image lacks them),
  with ``--wheels`` (pip download).

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
META_BYTES_PER_FACE = 340  # compressed meta per face (path, hash, matrices, landmarks): 330 on 200 real faces
WHEELS_BYTES = 2_790_000  # the four wheels for pydantic 2.14.3 (measured); used by --plan when absent


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
    """pydantic and friends for CPython 3.12 manylinux x86-64, the versions installed here."""
    from importlib.metadata import version

    specs = [f"{name}=={version(name)}" for name in WHEELS]
    plats = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(out / "wheels")]
    for p in plats:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)


def bench_fingerprints(bench_root: Path) -> dict[str, np.ndarray]:
    """Per-image pixel hashes of the frozen utk-mask benchmarks here (PNG bytes may differ by zlib)."""
    from facesr.io import read_image

    out: dict[str, np.ndarray] = {}
    for name in ("utk-mask-x4", "utk-mask-x8"):
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
        size = (src_root / unique[i]["path"]).stat().st_size + META_BYTES_PER_FACE
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

    for sub in ("utkface", "wheels"):
        if not args.plan and (out / sub).exists() and (sub == "utkface" or args.wheels):
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    pack_masks(data, out)
    if args.wheels and not args.plan:
        download_wheels(out)
    wheels_est = 0 if (out / "wheels").is_dir() or not (args.wheels or args.plan) else WHEELS_BYTES
    fps = bench_fingerprints(Path(args.benchmarks))
    np.savez_compressed(out / "bench_fingerprints.npz", **fps)

    test = [r for r in records if r["split"] == "test"][: args.test]
    tree = args.tree_bytes if args.tree_bytes is not None else tree_size()
    fixed = folder_size(out) + sum((src_root / r["path"]).stat().st_size for r in test)
    fixed += META_BYTES_PER_FACE * len(test) + 400_000 + wheels_est  # + the reference faces in the meta
    budget = int(args.budget_mib * MIB) - tree - fixed
    train = choose_train(
        [r for r in records if r["split"] == "train"], src_root, budget, args.limit, args.seed
    )
    chosen = sorted(train + test, key=lambda r: r["row"])  # original row order: test order kept
    if args.plan:
        jpeg = sum((src_root / r["path"]).stat().st_size for r in chosen)
        est = folder_size(out) + wheels_est + jpeg + META_BYTES_PER_FACE * len(chosen) + 400_000
        plan = {
            "plan": True,
            "train": len(train),
            "train_available": sum(r["split"] == "train" for r in records),
            "test": len(test),
            "alignment_recorded": have_geometry,
            "jpeg_MiB": round(jpeg / MIB, 2),
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
    for rec in chosen:
        dst = out / "utkface" / rec["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / rec["path"], dst)
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
        sha256=np.array([r["sha256"] for r in chosen]),
        rows=rows,
        split=np.array([1 if r["split"] == "test" else 0 for r in chosen], np.uint8),
        m128=m128,
        m64=m64,
        lm_src=lm_src.astype(np.int16) if integral else lm_src,
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
        for i in np.linspace(0, n - 1, args.check).astype(int):
            img = read_image((out / "utkface" / chosen[i]["path"]).read_bytes())
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


def landmarks128_from(m128: np.ndarray, lm_src: np.ndarray) -> np.ndarray:
    """``landmarks128`` per face exactly as ``facesr.data.align.align_face`` computes them
    (the same code is in :mod:`facesr.gpu.unpack`)."""
    from facesr.geometry import apply_affine

    pts = lm_src.astype(np.float64)
    return np.stack([apply_affine(m128[i], pts[i]).astype(np.float32) for i in range(len(m128))])
