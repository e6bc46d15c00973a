"""Pack what a GPU training run needs into ``.gpu/`` (git-ignored) for the device tool's ``carry``.

The device tool sends the working tree plus carried folders, 64 MiB in all. The decoded prepared
arrays (``faces128.npy`` is ~430 MB) cannot travel, so this packs the *original* UTKFace JPEGs of the
faces to train on plus what re-aligns them exactly on the GPU machine (``scripts/gpu_unpack.py``):

* ``.gpu/utkface/<path>``: the original JPEG bytes (train split, plus ``--test`` held-out faces);
* ``.gpu/utkface_meta.npz``: per face its path, sha256, prepared row, split, the 2x3 source->128 and
  source->64 alignment matrices and the 68 landmarks in the 128 frame;
* ``.gpu/masktheface/masks/``: ``masks.cfg``, the templates as they are, and the textures already
  cropped and resized to the synthesiser's resolution (same pixels as it would compute, smaller files;
  each keeps its file name so the synthesiser lists them in the same order);
* ``.gpu/wheels/``: pydantic and its compiled core for Python 3.12 (the GPU image lacks them), with
  ``--wheels`` (uses pip download).

The alignment matrices come from the prepared manifest when it records them (``matrix``); otherwise the
landmarks are detected again with the same dlib code as ``facesr prepare`` (a few minutes on CPU).
``--check N`` re-aligns N faces here from the packed files and compares them with the prepared arrays.

    python scripts/gpu_pack.py --check 20 --wheels
"""

from __future__ import annotations

import argparse
import configparser
import inspect
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")


def matrices_for(rec: dict, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source->128 and source->64 alignment matrices of one face (manifest, else dlib again)."""
    from facesr.data.align import alignment_matrix
    from facesr.data.landmarks import detect_landmarks

    if "matrix" in rec and "matrix64" in rec:
        return np.asarray(rec["matrix"], np.float64), np.asarray(rec["matrix64"], np.float64)
    det = detect_landmarks(image)
    if det is None:
        raise SystemExit(f"{rec['path']}: dlib finds no face now, but prepare did; cannot pack")
    lm = det.landmarks.astype(np.float64)
    return alignment_matrix(lm, 128), alignment_matrix(lm, 64)


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
    """masks.cfg + the templates it names + pre-sized textures."""
    from facesr.data.masks import MaskSynthesizer

    src = data / "masktheface"
    dst = out / "masktheface"
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "masks" / "masks.cfg", dst / "masks" / "masks.cfg")
    cfg = configparser.ConfigParser()
    cfg.read(src / "masks" / "masks.cfg")
    for sec in cfg.sections():
        if "template" in cfg[sec]:
            rel = cfg[sec]["template"].strip()
            if (src / rel).is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
    res = inspect.signature(MaskSynthesizer).parameters["res"].default  # the batcher uses the default
    pack_textures(src / "masks" / "textures", dst / "masks" / "textures", int(res))


def download_wheels(out: Path) -> None:
    """pydantic and friends for CPython 3.12 manylinux x86-64, the versions installed here."""
    from importlib.metadata import version

    specs = [f"{name}=={version(name)}" for name in WHEELS]
    plats = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "-d",
        str(out / "wheels"),
    ]
    for p in plats:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)


def tree_size() -> int:
    """Bytes of the working tree that the device tool sends (tracked + untracked, not ignored)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default=str(REPO / "workspace" / "prepared" / "utkface"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--source", default=None, help="the folder prepare read (default: DATA/utkface)")
    ap.add_argument("--out", default=str(REPO / ".gpu"))
    ap.add_argument("--test", type=int, default=200, help="held-out test faces for the quick check")
    ap.add_argument("--limit", type=int, default=None, help="pack only the first N train faces (smoke tests)")
    ap.add_argument("--check", type=int, default=0, help="re-align N faces here and compare")
    ap.add_argument("--wheels", action="store_true", help="download the pydantic wheels (pip download)")
    args = ap.parse_args()

    from facesr.data.align import warp
    from facesr.data.prepared import PreparedSet
    from facesr.io import read_image

    prepared = PreparedSet.load(args.prepared)
    data, out = Path(args.data), Path(args.out)
    src_root = Path(args.source or prepared.report.get("source_path") or data / "utkface")
    records = [r for r in prepared.manifest() if r.get("status") == "ok"]
    train = [r for r in records if r["split"] == "train"][: args.limit]
    test = [r for r in records if r["split"] == "test"][: args.test]
    chosen = train + test
    out.mkdir(parents=True, exist_ok=True)
    m128 = np.zeros((len(chosen), 2, 3))
    m64 = np.zeros((len(chosen), 2, 3))
    for i, rec in enumerate(chosen):
        raw = (src_root / rec["path"]).read_bytes()
        dst = out / "utkface" / rec["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(raw)
        m128[i], m64[i] = matrices_for(rec, read_image(raw))
        if i % 500 == 0:
            print(f"packed {i}/{len(chosen)}", flush=True)
    rows = np.array([r["row"] for r in chosen])
    np.savez_compressed(
        out / "utkface_meta.npz",
        paths=np.array([r["path"] for r in chosen]),
        sha256=np.array([r["sha256"] for r in chosen]),
        rows=rows,
        split=np.array([1 if r["split"] == "test" else 0 for r in chosen], np.uint8),
        m128=m128,
        m64=m64,
        landmarks128=np.asarray(prepared.landmarks128[rows], np.float32),
    )
    pack_masks(data, out)
    if args.wheels:
        download_wheels(out)
    if args.check:
        bad = 0
        for i in np.linspace(0, len(chosen) - 1, args.check).astype(int):
            img = read_image((out / "utkface" / chosen[i]["path"]).read_bytes())
            ok128 = np.array_equal(warp(img, m128[i], 128), prepared.faces128[rows[i]])
            ok64 = np.array_equal(warp(img, m64[i], 64), prepared.faces64[rows[i]])
            bad += not (ok128 and ok64)
        print(f"check: {args.check - bad}/{args.check} faces re-align bit-exactly")
    packed = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    total = packed + tree_size()
    print(
        json.dumps(
            {
                "faces": len(chosen),
                "train": len(train),
                "test": len(test),
                "packed_MiB": round(packed / 2**20, 1),
                "with_tree_MiB": round(total / 2**20, 1),
            }
        )
    )
    if total > LIMIT:
        print(
            f"warning: {total / 2**20:.1f} MiB exceeds the device tool's 64 MiB; use --test 0 or fewer faces"
        )


if __name__ == "__main__":
    main()
