"""Frozen, checksummed test sets (DESIGN.md section 4).

* ``utk-mask-x2`` / ``utk-mask-x4`` / ``utk-mask-x8``: the 1,000 UTKFace test faces of the prepared
  ``utkface`` set, one seeded MaskTheFace mask each (the mask depends only on seed + index, so it is
  the same mask at every scale), down-sampled by antialiased bicubic (Pillow-equivalent,
  :mod:`facesr.resample`) to 64, 32 and 16 px.
* ``celeba10k``: every aligned CelebA-10k face (never trained on), masked the same way, with x4
  and x8 masked and clean LR, the 64 px face (``hr64/``, for CR) and the CelebA identity label of
  each face in ``meta.json`` (for genuine/impostor verification pairs). Note: the source images are
  89x109, so its 128 px HR faces are *upsampled* (about 2x), not true high resolution.

Layout of ``<benchmarks>/<name>/``: ``hr/``, ``hr_masked/``, ``lr/`` (the model input: masked
LR), ``lr_clean/``, ``mask/`` (occlusion coverage as 8-bit grey), files ``NNNNN.png``; for
celeba10k ``lr_x4/``, ``lr_x8/``, ``lr_clean_x4/``, ``lr_clean_x8/`` and ``hr64/`` instead of
``lr/`` and ``lr_clean/``. ``meta.json`` records the protocol, seed and per-face sources;
``SHA256SUMS`` (``sha256sum -c`` format) covers every other file.

Reproducibility: each face's mask comes from its own generator seeded with ``seed + index``, the
build runs on CPU in float32, PNGs are encoded deterministically and meta.json has no
timestamps, so building twice gives byte-identical folders (``tests/test_data_benchmarks.py``).
The folder is written under a temporary name and renamed when complete.

Order of the commands (each message that stops names the next one): ``facesr prepare utkface``
(UTK-Mask) and ``facesr prepare celeba10k --all-test`` (CelebA-10k), then ``facesr benchmarks
build``, which builds the benchmarks whose prepared set exists and lists the others with the
command that prepares them (:func:`unbuildable_reason`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facesr.errors import DataError
from facesr.io import atomic_write_text, encode_image
from facesr.pixels import quantise_half_up

NAMES = ("utk-mask-x2", "utk-mask-x4", "utk-mask-x8", "celeba10k")
SEED = 20260
SOURCES = {
    "utk-mask-x2": "utkface",
    "utk-mask-x4": "utkface",
    "utk-mask-x8": "utkface",
    "celeba10k": "celeba10k",
}
PROTOCOL = (
    "aligned 128x128 HR (5-point similarity to facesr.geometry.TEMPLATE_128); one MaskTheFace mask per "
    "face from torch.Generator(seed + index) on CPU; masked HR -> antialiased bicubic (Pillow BICUBIC "
    "equivalent) x{s} -> rounded to uint8 -> {lr}; clean HR the same way -> {clean}"
)


@dataclass
class Benchmark:
    """A loaded frozen benchmark (uint8 NHWC arrays; ``mask`` is [N,128,128] coverage)."""

    name: str
    scale: int
    ids: list[str]
    lr: np.ndarray
    lr_clean: np.ndarray
    hr: np.ndarray
    mask: np.ndarray
    meta: dict = field(default_factory=dict)
    hr_masked: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def identities(self) -> list[int] | None:
        """CelebA identity label per face (celeba10k only)."""
        faces = self.meta.get("faces", [])
        if faces and "identity" in faces[0]:
            return [int(f["identity"]) for f in faces]
        return None


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """[N,C,H,W] float in [0,1] -> [N,H,W,C] uint8 (round half up)."""
    return quantise_half_up(x).permute(0, 2, 3, 1).numpy()


def _identities(data: Path) -> dict[str, int]:
    path = data / "celeba10k" / "identity.txt"
    if not path.is_file():
        raise DataError(f"CelebA identity labels not found at {str(path)!r}")
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, ident = line.split()
            out[name] = int(ident)
    return out


def build_command(name: str) -> str:
    """The command that builds (only) benchmark ``name``."""
    return f"facesr benchmarks build --only {name}"


def next_steps(name: str, prepared_root: Path) -> str:
    """The commands, in order, that give benchmark ``name``: prepare its set if missing, then build it."""
    from facesr.data.prepared import missing_reason, prepare_command

    source = SOURCES[name]
    if missing_reason(Path(prepared_root) / source) is None:
        return f"run `{build_command(name)}`"
    return f"run `{prepare_command(source)}`, then `{build_command(name)}`"


def unbuildable_reason(name: str, prepared_root: Path) -> str | None:
    """Why benchmark ``name`` cannot be built from ``prepared_root`` yet, and the commands that fix it.

    None when its prepared set is complete. ``facesr benchmarks build`` uses it to skip such a
    benchmark, build the others and say how to get the skipped one.
    """
    from facesr.data.prepared import missing_reason

    if name not in NAMES:
        raise DataError(f"unknown benchmark {name!r}; choose from {', '.join(NAMES)}")
    source = SOURCES[name]
    why = missing_reason(Path(prepared_root) / source)
    if why is None:
        return None
    return f"{name} needs the {source} set: {why}; {next_steps(name, prepared_root)}"


def build_benchmark(
    name: str,
    prepared_root: Path,
    out_root: Path,
    data: Path,
    *,
    limit: int | None = None,
    seed: int = SEED,
    progress: bool = True,
) -> Path:
    """Build one benchmark from the prepared sets under ``prepared_root``; returns its folder."""
    from tqdm import tqdm

    from facesr.data.masks import MaskSynthesizer
    from facesr.data.prepared import PreparedSet
    from facesr.resample import downsample

    why = unbuildable_reason(name, Path(prepared_root))
    if why:
        raise DataError(why)
    prep = PreparedSet.load(Path(prepared_root) / SOURCES[name])
    rows = prep.indices("test")
    if limit is not None:
        rows = rows[:limit]
    if len(rows) == 0:
        raise DataError(f"prepared set {prep.root} has no test faces")
    by_row = {r["row"]: r for r in prep.manifest() if r["status"] == "ok"}
    celeba = name == "celeba10k"
    idents = _identities(data) if celeba else {}
    scales = (4, 8) if celeba else (int(name[-1]),)
    synth = MaskSynthesizer(data, device="cpu")

    out_root = Path(out_root)
    final = out_root / name
    tmp = out_root / f".{name}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    dirs = ["hr", "hr_masked", "mask"]
    if celeba:
        dirs += ["hr64"] + [f"{k}_x{s}" for s in scales for k in ("lr", "lr_clean")]
    else:
        dirs += ["lr", "lr_clean"]
    for d in dirs:
        (tmp / d).mkdir(parents=True)

    faces_meta = []
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: identical float reductions on every machine
    try:
        for i, row in enumerate(tqdm(rows, desc=f"benchmark {name}", unit="face", disable=not progress)):
            fid = f"{i:05d}"
            rec = by_row[int(row)]
            hr = torch.from_numpy(np.array(prep.faces128[row])).permute(2, 0, 1)[None].float() / 255.0
            lm = torch.from_numpy(np.array(prep.landmarks128[row], dtype=np.float32))[None]
            gen = torch.Generator().manual_seed(seed + i)
            choice = synth.draw(lm, torch.Generator().manual_seed(seed + i))
            hr_masked, occ = synth(hr, lm, gen)
            files = {
                "hr": _to_u8(hr)[0],
                "hr_masked": _to_u8(hr_masked)[0],
                "mask": _to_u8(occ)[0, :, :, 0],
            }
            for s in scales:
                suffix = f"_x{s}" if celeba else ""
                files[f"lr{suffix}"] = _to_u8(downsample(hr_masked, s))[0]
                files[f"lr_clean{suffix}"] = _to_u8(downsample(hr, s))[0]
            if celeba:
                files["hr64"] = np.array(prep.faces64[row])
            for d, arr in files.items():
                (tmp / d / f"{fid}.png").write_bytes(encode_image(arr))
            entry = {
                "id": fid,
                "source": rec["path"],
                "sha256": rec["sha256"],
                "mask_template": synth.names[int(choice["template"][0])],
                "mask_colour": bool(choice["use_colour"][0]),
                "mask_texture": synth.texture_names[int(choice["texture"][0])]
                if bool(choice["use_texture"][0])
                else None,
            }
            if celeba:
                base = Path(rec["path"]).name
                if base not in idents:
                    raise DataError(f"no CelebA identity label for {base}")
                entry["identity"] = idents[base]
            faces_meta.append(entry)
    finally:
        torch.set_num_threads(torch_threads)

    meta = {
        "name": name,
        "scale": scales[0] if not celeba else None,
        "scales": list(scales),
        "n": len(rows),
        "seed": seed,
        "protocol": PROTOCOL.format(
            s="/".join(map(str, scales)),
            lr="lr_x4/, lr_x8/" if celeba else "lr/",
            clean="lr_clean_x4/, lr_clean_x8/" if celeba else "lr_clean/",
        ),
        "prepared_set": SOURCES[name],
        "prepared_report": {
            k: prep.report.get(k)
            for k in ("source", "files", "aligned", "aligned_fraction", "split_rule", "template_128")
        },
        "folders": sorted(dirs),
        "faces": faces_meta,
    }
    if celeba:
        meta["note"] = (
            "CelebA-10k sources are 89x109, so hr/ is upsampled ~2x from the source, not true HR; "
            "use it for identity/cross-dataset evaluation. lr_x4/ and lr_x8/ are the masked inputs."
        )
    atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")
    _write_sums(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"
    )


def _write_sums(root: Path) -> None:
    lines = [f"{_sha256(root / rel)}  {rel}\n" for rel in _files(root)]
    atomic_write_text(root / "SHA256SUMS", "".join(lines))


def verify_benchmark(root: Path) -> int:
    """Check every file against ``SHA256SUMS``; returns the number of files, raises DataError otherwise."""
    root = Path(root)
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{str(sums)!r} not found; rebuild with `{build_command(root.name)}`")
    expected = {}
    for line in sums.read_text().splitlines():
        digest, rel = line.split("  ", 1)
        expected[rel] = digest
    present = set(_files(root))
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing or extra:
        raise DataError(
            f"{root.name}: {len(missing)} files missing, {len(extra)} unexpected "
            f"(first: {(missing + extra)[0]})"
        )
    for rel, digest in expected.items():
        if _sha256(root / rel) != digest:
            raise DataError(f"{root.name}: checksum mismatch for {rel}")
    return len(expected)


def _read_dir(folder: Path, ids: list[str], grey: bool = False) -> np.ndarray:
    from PIL import Image

    arrs = []
    for fid in ids:
        with Image.open(folder / f"{fid}.png") as im:
            arrs.append(np.asarray(im.convert("L" if grey else "RGB")))
    return np.stack(arrs)


def load_benchmark(name: str, root: str | Path | None = None, *, scale: int | None = None) -> Benchmark:
    """Load a frozen benchmark. For ``celeba10k`` pick the LR with ``scale`` (4 or 8; default 4)."""
    from facesr.paths import benchmarks_dir, workspace

    base = Path(root) if root is not None else benchmarks_dir()
    folder = base / name
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        steps = (
            next_steps(name, workspace() / "prepared") if name in NAMES else "run `facesr benchmarks build`"
        )
        raise DataError(f"benchmark {name!r} not found under {str(base)!r}; {steps}")
    meta = json.loads(meta_path.read_text())
    ids = [f["id"] for f in meta["faces"]]
    if meta.get("scale") is None:  # multi-scale set (celeba10k)
        s = scale or 4
        if s not in meta["scales"]:
            raise DataError(f"benchmark {name!r} has scales {meta['scales']}, not {s}")
        lr_dir, clean_dir = f"lr_x{s}", f"lr_clean_x{s}"
    else:
        s = int(meta["scale"])
        if scale is not None and scale != s:
            raise DataError(f"benchmark {name!r} is x{s}, not x{scale}")
        lr_dir, clean_dir = "lr", "lr_clean"
    return Benchmark(
        name=name,
        scale=s,
        ids=ids,
        lr=_read_dir(folder / lr_dir, ids),
        lr_clean=_read_dir(folder / clean_dir, ids),
        hr=_read_dir(folder / "hr", ids),
        mask=_read_dir(folder / "mask", ids, grey=True),
        hr_masked=_read_dir(folder / "hr_masked", ids),
        meta=meta,
    )
