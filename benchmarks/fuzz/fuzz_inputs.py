"""Deterministic fuzzing of facesr's input paths: read_image, the restore API, `facesr restore`, `facesr prepare`.

Why: every input facesr reads must end in a result or a one-line FacesrError, never a traceback, a
hang or a changed input file. This harness makes that claim measurable.

Corpus (same bytes for the same ``--seed`` and ``--count``): real seed photos (the bundled samples
in ``src/facesr/samples``), re-encoded at several sizes as JPEG (baseline, progressive, CMYK), PNG
(modes 1, L, LA, P, P+transparency, RGBA, I;16), WebP (lossy, lossless), BMP, TIFF (I, F, CMYK),
GIF, then mutated: truncated, bit-flipped, header bytes overwritten, declared dimensions set to
enormous or zero values (PNG IHDR with a valid CRC, JPEG SOF, WebP VP8/VP8L, BMP, GIF), spliced,
wrong extensions, empty / all-zero / random / text files, bad EXIF orientation, and a few
decompression bombs (small valid PNGs of 81 and 400 megapixels) and, in runs of
1,000 files or more, two large but legal 6-megapixel photos.

Targets, each over the whole corpus:

* ``read``: :func:`facesr.io.read_image` in worker processes;
* ``api``: :func:`facesr.restoration.api.restore` (on the path) in worker processes;
* ``cli``: ``facesr restore FILES... -o OUT`` with many files per invocation;
* ``prepare``: ``facesr prepare CORPUS_DIR`` once over the whole folder.

Counted per target: **tracebacks** (API: any exception that is not a FacesrError; CLI: 'Traceback'
in stderr or an exit status other than 0/1/2), **hangs** (an input, or a CLI batch, that runs past
its timeout; the worker is killed and restarted), **changed inputs** (sha256 of every corpus file
before and after), and **silent skips** (CLI: an input missing from report.json; prepare: a file
missing from manifest.jsonl). Prints a table and writes JSON.

    python benchmarks/fuzz/fuzz_inputs.py --count 10000 --out workspace/fuzz/report.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "facesr" / "samples"
TARGETS = ("read", "api", "cli", "prepare")


# ----------------------------------------------------------------------------------------------
# Corpus generation (pure functions of the seed)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fuzzed file: its name (with extension), bytes, and the mutation that made it."""

    name: str
    kind: str
    data: bytes


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _seed_images(max_sides: tuple[int, ...]) -> list[Image.Image]:
    files = sorted(SAMPLES.glob("*.jpg")) + sorted(SAMPLES.glob("*.png"))
    if not files:
        raise SystemExit(f"no seed images in {SAMPLES}")
    out = []
    for f in files:
        with Image.open(f) as im:
            rgb = im.convert("RGB")
        for side in max_sides:
            scale = side / max(rgb.size)
            size = (max(2, round(rgb.width * scale)), max(2, round(rgb.height * scale)))
            out.append(rgb.resize(size, Image.Resampling.BICUBIC))
    return out


def _with_exif_orientation(img: Image.Image, value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return _encode(img, "JPEG", quality=90, exif=exif.tobytes())


def base_encodings(seeds: list[Image.Image]) -> list[tuple[str, str, bytes]]:
    """Valid encodings of the seeds in many formats and modes: (label, extension, bytes)."""
    out: list[tuple[str, str, bytes]] = []
    for i, im in enumerate(seeds):
        rgba = im.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(im.size))
        i16 = Image.fromarray((np.asarray(im.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
        p_trans = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        p_trans.info["transparency"] = 0
        variants: list[tuple[str, str, Callable[[], bytes]]] = [
            ("jpeg", ".jpg", lambda im=im: _encode(im, "JPEG", quality=90)),
            ("jpeg-progressive", ".jpg", lambda im=im: _encode(im, "JPEG", quality=75, progressive=True)),
            ("jpeg-cmyk", ".jpg", lambda im=im: _encode(im.convert("CMYK"), "JPEG")),
            ("jpeg-gray", ".jpeg", lambda im=im: _encode(im.convert("L"), "JPEG")),
            ("png", ".png", lambda im=im: _encode(im, "PNG")),
            ("png-1", ".png", lambda im=im: _encode(im.convert("1"), "PNG")),
            ("png-L", ".png", lambda im=im: _encode(im.convert("L"), "PNG")),
            ("png-LA", ".png", lambda im=im: _encode(im.convert("LA"), "PNG")),
            ("png-P", ".png", lambda im=im: _encode(im.convert("P"), "PNG")),
            ("png-P-transparency", ".png", lambda p=p_trans: _encode(p, "PNG", transparency=0)),
            ("png-RGBA", ".png", lambda r=rgba: _encode(r, "PNG")),
            ("png-I16", ".png", lambda a=i16: _encode(a, "PNG")),
            ("webp-lossy", ".webp", lambda im=im: _encode(im, "WEBP", quality=80)),
            ("webp-lossless", ".webp", lambda im=im: _encode(im, "WEBP", lossless=True)),
            ("webp-RGBA", ".webp", lambda r=rgba: _encode(r, "WEBP", quality=80)),
            ("bmp", ".bmp", lambda im=im: _encode(im, "BMP")),
            ("tiff", ".tif", lambda im=im: _encode(im, "TIFF")),
            ("tiff-I", ".tiff", lambda im=im: _encode(im.convert("I"), "TIFF")),
            ("tiff-F", ".tiff", lambda im=im: _encode(im.convert("F"), "TIFF")),
            ("tiff-CMYK", ".tif", lambda im=im: _encode(im.convert("CMYK"), "TIFF")),
            ("gif", ".gif", lambda im=im: _encode(im.convert("P"), "GIF")),
            ("jpeg-exif-rot6", ".jpg", lambda im=im: _with_exif_orientation(im, 6)),
        ]
        for label, ext, make in variants:
            out.append((f"s{i}-{label}", ext, make()))
    return out


def _png_set_ihdr(data: bytes, width: int, height: int) -> bytes:
    """Rewrite a PNG's declared size and fix the IHDR CRC so the lie survives the CRC check."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    b = bytearray(data)
    b[16:24] = struct.pack(">II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    return bytes(b)


def _jpeg_set_sof(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        pos = b.find(marker)
        if pos >= 0 and pos + 9 <= len(b):
            b[pos + 5 : pos + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
            return bytes(b)
    return data


def _webp_set_size(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    if b[12:16] == b"VP8 " and len(b) >= 30:
        b[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    elif b[12:16] == b"VP8L" and len(b) >= 25:
        bits = (
            ((width - 1) & 0x3FFF)
            | (((height - 1) & 0x3FFF) << 14)
            | (int.from_bytes(b[21:25], "little") & ~0xFFFFFFF)
        )
        b[21:25] = (bits & 0xFFFFFFFF).to_bytes(4, "little")
    elif b[12:16] == b"VP8X" and len(b) >= 30:
        b[24:27] = ((width - 1) & 0xFFFFFF).to_bytes(3, "little")
        b[27:30] = ((height - 1) & 0xFFFFFF).to_bytes(3, "little")
    return bytes(b)


def _bmp_set_size(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    if b[:2] == b"BM" and len(b) >= 26:
        b[18:26] = struct.pack(
            "<ii", max(min(width, 2**31 - 1), -(2**31)), max(min(height, 2**31 - 1), -(2**31))
        )
    return bytes(b)


def _gif_set_size(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    if b[:3] == b"GIF" and len(b) >= 10:
        b[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    return bytes(b)


def set_declared_size(data: bytes, width: int, height: int) -> bytes:
    """Make the header declare ``width`` x ``height`` without changing the pixel data."""
    for fn in (_png_set_ihdr, _jpeg_set_sof, _webp_set_size, _bmp_set_size, _gif_set_size):
        new = fn(data, width, height)
        if new != data:
            return new
    return data


_HUGE_SIZES = (
    (100_000, 100_000),
    (65_535, 65_535),
    (2**31 - 1, 1),
    (1, 2**31 - 1),
    (0, 0),
    (0, 100),
    (16_383, 16_383),
    (1, 1),
    (12_000, 9_000),
    (-5, 7),
)
_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".PNG", ".JPG", ".txt", "")


def _bomb_png(width: int, height: int) -> bytes:
    """A real, valid PNG of ``width`` x ``height`` 1-bit pixels (all black): tiny file, huge image."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def generate(count: int, seed: int, *, sides: tuple[int, ...] = (48, 96, 160)) -> list[Case]:
    """``count`` fuzzed files; identical for identical arguments."""
    rng = random.Random(seed)
    bases = base_encodings(_seed_images(sides))
    raw = [(f.stem, f.suffix, f.read_bytes()) for f in sorted(SAMPLES.glob("*.jpg"))]
    bombs = [
        ("bomb-20000x20000", ".png", _bomb_png(20_000, 20_000)),
        ("bomb-9000x9000", ".png", _bomb_png(9_000, 9_000)),
    ]
    if count >= 1000:  # two large but legal photos (6 MP): slow paths, not errors
        grad = Image.linear_gradient("L").resize((3000, 2000)).convert("RGB")
        bombs += [
            ("large-3000x2000", ".jpg", _encode(grad, "JPEG", quality=85)),
            ("large-3000x2000", ".png", _encode(grad, "PNG")),
        ]
    kinds = [
        ("truncate", 20),
        ("bitflip", 25),
        ("header", 14),
        ("declared-size", 9),
        ("wrong-ext", 7),
        ("valid-mode", 8),
        ("junk", 5),
        ("splice", 4),
        ("exif", 3),
        ("original", 1),
    ]
    names, weights = zip(*kinds, strict=True)
    cases: list[Case] = []
    for i in range(count):
        if i < len(bombs):
            label, ext, data = bombs[i]
            cases.append(Case(f"{i:05d}-{label}{ext}", label.split("-")[0], data))
            continue
        kind = rng.choices(names, weights)[0]
        label, ext, data = rng.choice(bases)
        if kind == "truncate":
            cut = rng.choice(
                [0, 1, 2, 8, 16, 32, 64, rng.randrange(len(data)), len(data) - 1, len(data) // 2]
            )
            data = data[:cut]
        elif kind == "bitflip":
            b = bytearray(data)
            for _ in range(rng.choice([1, 1, 2, 4, 8, 32, 256])):
                pos = rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
            data = bytes(b)
        elif kind == "header":
            b = bytearray(data)
            span = min(len(b), rng.choice([16, 32, 64, 256]))
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(span)] = rng.randrange(256)
            data = bytes(b)
        elif kind == "declared-size":
            w, h = rng.choice(_HUGE_SIZES)
            data = set_declared_size(data, w, h)
        elif kind == "wrong-ext":
            ext = rng.choice([e for e in _EXTS if e.lower() != ext])
        elif kind == "junk":
            n = rng.choice([0, 1, 7, 100, 4096])
            label, data = rng.choice(
                [
                    ("empty", b""),
                    ("zeros", b"\x00" * n),
                    ("random", rng.randbytes(n)),
                    ("text", b"GIF89a is not enough; this is text\n" * (n // 36 + 1)),
                    ("png-magic-only", b"\x89PNG\r\n\x1a\n"),
                    ("jpeg-magic-only", b"\xff\xd8\xff\xe0"),
                    ("riff-webp-empty", b"RIFF\x04\x00\x00\x00WEBP"),
                    ("html", b"<html><body>not an image</body></html>"),
                ]
            )
            ext = rng.choice(_EXTS)
        elif kind == "splice":
            _, _, other = rng.choice(bases)
            data = data[: rng.randrange(1, len(data))] + other[rng.randrange(len(other)) :]
        elif kind == "exif":
            im = Image.open(io.BytesIO(rng.choice([d for lbl, _, d in bases if lbl.endswith("-jpeg")])))
            value = rng.choice([0, 1, 3, 5, 8, 9, 255, 65535])
            data, ext, label = _with_exif_orientation(im.convert("RGB"), value), ".jpg", f"exif{value}"
        elif kind == "original":
            label, ext, data = rng.choice(raw)
        cases.append(Case(f"{i:05d}-{kind}-{label}{ext}", kind, data))
    return cases


def write_corpus(cases: list[Case], folder: Path) -> dict[str, str]:
    """Write the corpus into a fresh folder and return name -> sha256."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    hashes = {}
    for c in cases:
        p = folder / c.name
        p.write_bytes(c.data)
        hashes[c.name] = hashlib.sha256(c.data).hexdigest()
    return hashes


def changed_files(folder: Path, hashes: dict[str, str]) -> list[str]:
    """Corpus files whose bytes changed, disappeared or appeared since ``hashes`` was taken."""
    now = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}
    bad = [n for n, h in hashes.items() if now.get(n) != h]
    return sorted(bad + [n for n in now if n not in hashes])


# ----------------------------------------------------------------------------------------------
# In-process targets, run in killable worker processes
# ----------------------------------------------------------------------------------------------


#: Trailing rows of exactly (128, 128, 128) from which a decode counts as grey-filled: libjpeg fills
#: the MCUs it could not decode with flat mid-grey, a whole MCU row (8 or 16 pixel rows) at a time.
GREY_ROWS = 8


def grey_rows(arr: Any) -> int:
    """How many rows at the bottom of an ``H x W x 3`` uint8 image are exactly mid-grey."""
    import numpy as np

    flat = (np.asarray(arr).reshape(arr.shape[0], -1) == 128).all(1)
    n = 0
    for row in flat[::-1]:
        if not row:
            break
        n += 1
    return n


def _worker(target: str, model: str | None, conn: Connection, mem_limit: int = 0) -> None:
    """Serve (index, path) requests: reply (index, outcome, detail, seconds, grey rows, peak RSS MB).

    ``grey rows``: mid-grey rows at the bottom of the decoded input (a silent grey fill when the
    input is accepted); ``peak RSS``: this worker's resident-set high-water mark after the input.
    """
    import resource

    global MEM_LIMIT
    MEM_LIMIT = mem_limit
    _cap_memory()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from facesr.errors import FacesrError
    from facesr.io import read_image

    def run(path: str) -> int:
        arr = read_image(path)
        if target != "read":
            from facesr.restoration.api import restore

            restore(path, model=model, device="cpu")
        return grey_rows(arr)

    while True:
        msg = conn.recv()
        if msg is None:
            return
        idx, path = msg
        t0 = time.perf_counter()
        grey = 0
        try:
            grey = run(path)
            outcome, detail = "ok", ""
        except FacesrError as exc:
            outcome, detail = "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except BaseException as exc:
            tb = traceback.format_exception(exc)
            outcome, detail = "traceback", "".join(tb[-3:]).strip()[-600:]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((idx, outcome, detail, time.perf_counter() - t0, grey, peak))


def run_in_workers(
    target: str, paths: list[Path], *, workers: int, timeout: float, model: str | None, progress: bool = True
) -> list[dict[str, Any]]:
    """Feed each path to a worker; a worker that exceeds ``timeout`` on one input is killed (a hang)."""
    ctx = mp.get_context("spawn")
    results: list[dict[str, Any] | None] = [None] * len(paths)
    todo = list(range(len(paths)))[::-1]
    startup_grace = 120.0  # first request includes importing torch and loading models

    def spawn() -> dict[str, Any]:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(target, model, child, MEM_LIMIT), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "job": None, "t0": 0.0, "fresh": True}

    pool = [spawn() for _ in range(min(workers, len(paths)) or 1)]
    done = 0
    last_print = time.monotonic()

    def give(w: dict[str, Any]) -> None:
        if todo:
            idx = todo.pop()
            w["conn"].send((idx, str(paths[idx])))
            w["job"], w["t0"] = idx, time.monotonic()

    for w in pool:
        give(w)
    while any(w["job"] is not None for w in pool):
        ready = wait([w["conn"] for w in pool if w["job"] is not None], timeout=1.0)
        now = time.monotonic()
        for w in pool:
            if w["job"] is None:
                continue
            if w["conn"] in ready:
                grey, peak = 0, 0.0
                try:
                    idx, outcome, detail, secs, grey, peak = w["conn"].recv()
                except (EOFError, OSError):
                    idx, outcome, detail, secs = w["job"], "crash", "worker process died", now - w["t0"]
                    w["proc"].join(5)
                    detail += f" (exit code {w['proc'].exitcode})"
                    pool[pool.index(w)] = w = spawn()
                results[idx] = {
                    "outcome": outcome,
                    "detail": detail,
                    "seconds": round(secs, 4),
                    "grey_rows": grey,
                    "peak_rss_mb": round(peak, 1),
                }
                w["fresh"] = False
                done += 1
                w["job"] = None
                give(w)
            elif now - w["t0"] > timeout + (startup_grace if w["fresh"] else 0.0):
                idx = w["job"]
                w["proc"].kill()
                w["proc"].join(5)
                results[idx] = {
                    "outcome": "hang",
                    "detail": f"no answer within {timeout:.0f} s",
                    "seconds": round(now - w["t0"], 2),
                }
                done += 1
                pool[pool.index(w)] = w = spawn()
                give(w)
        if progress and time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            print(f"  [{target}] {done}/{len(paths)}", file=sys.stderr, flush=True)
    for w in pool:
        with contextlib.suppress(OSError):
            w["conn"].send(None)
        w["proc"].join(10)
        if w["proc"].is_alive():
            w["proc"].kill()
    return [r if r is not None else {"outcome": "lost", "detail": "", "seconds": 0.0} for r in results]


# ----------------------------------------------------------------------------------------------
# CLI targets
# ----------------------------------------------------------------------------------------------


#: Address-space cap (bytes) for every process the harness starts; 0 = none. Set from --mem-limit-gb.
MEM_LIMIT = 0


def _cap_memory() -> None:
    """Cap this process's address space so a runaway allocation is a MemoryError, not a machine-wide OOM."""
    if MEM_LIMIT:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


#: Runs ``python -m facesr.cli ARGS`` and, at exit, writes the peak RSS (MB) of it and of the worker
#: processes it waited for (``prepare --workers``) to the file named first.
_PEAK_WRAPPER = """
import atexit, resource, runpy, sys
peak_file = sys.argv[1]
def _peak():
    kb = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    with open(peak_file, "w") as fh:
        fh.write(str(kb / 1024))
atexit.register(_peak)
sys.argv = ["facesr", *sys.argv[2:]]
runpy.run_module("facesr.cli", run_name="__main__", alter_sys=True)
"""


def _facesr_cmd(peak_file: Path | None = None) -> list[str]:
    if peak_file is None:
        return [sys.executable, "-m", "facesr.cli"]
    return [sys.executable, "-c", _PEAK_WRAPPER, str(peak_file)]


def _read_peak(peak_file: Path) -> float | None:
    try:
        return round(float(peak_file.read_text()), 1)
    except (OSError, ValueError):
        return None  # killed (hang) before it could write


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run_cli_restore(
    paths: list[Path],
    out_root: Path,
    *,
    batch: int,
    timeout_per_input: float,
    model: str | None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """``facesr restore`` on batches of files (``jobs`` invocations at a time); one record per batch."""
    from concurrent.futures import ThreadPoolExecutor

    def one(b0: int) -> dict[str, Any]:
        chunk = paths[b0 : b0 + batch]
        out = out_root / f"batch_{b0 // batch:04d}"
        peak_file = out_root / f".peak_{b0 // batch:04d}"
        out_root.mkdir(parents=True, exist_ok=True)
        cmd = [*_facesr_cmd(peak_file), "restore", "--device", "cpu", "-o", str(out)]
        if model:
            cmd += ["--model", model]
        cmd += [str(p) for p in chunk]
        limit = 120.0 + timeout_per_input * len(chunk)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=limit,
                env=_env(),
                cwd=REPO,
                preexec_fn=_cap_memory,
            )
            rc, stderr, hang = proc.returncode, proc.stderr, False
        except subprocess.TimeoutExpired as exc:
            rc, hang = None, True
            stderr = (
                exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            )
        secs = time.perf_counter() - t0
        reported: set[str] = set()
        report_file = out / "report.json"
        if report_file.is_file():
            reported = {Path(f["input"]).name for f in json.loads(report_file.read_text())["files"]}
        missing = [p.name for p in chunk if p.name not in reported] if not hang else []
        tb = "Traceback" in stderr or (rc is not None and rc not in (0, 1, 2))
        print(
            f"  [cli] batch {b0 // batch}: {len(chunk)} files, rc={rc}, {secs:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return {
            "batch": b0 // batch,
            "inputs": len(chunk),
            "rc": rc,
            "hang": hang,
            "traceback": tb,
            "unreported": missing,
            "seconds": round(secs, 2),
            "peak_rss_mb": _read_peak(peak_file),
            "stderr_tail": stderr[-1500:] if tb or hang else "",
        }

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(one, range(0, len(paths), batch)))


def run_cli_prepare(corpus: Path, out: Path, *, timeout: float, workers: int) -> dict[str, Any]:
    """``facesr prepare`` over the corpus folder; every file must appear in the manifest."""
    out.parent.mkdir(parents=True, exist_ok=True)
    peak_file = out.parent / ".peak_prepare"
    cmd = [
        *_facesr_cmd(peak_file),
        "prepare",
        str(corpus),
        "--name",
        "fuzz",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--n-test",
        "1",
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=REPO, preexec_fn=_cap_memory
        )
        rc, stderr, hang = proc.returncode, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc, hang = None, True
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    secs = time.perf_counter() - t0
    manifest = out / "manifest.jsonl"
    listed: set[str] = set()
    status: Counter[str] = Counter()
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            rec = json.loads(line)
            listed.add(rec["path"])
            status[rec["status"]] += 1
    files = sorted(p.name for p in corpus.iterdir() if p.is_file() and not p.name.startswith("."))
    unlisted = [n for n in files if n not in listed] if manifest.is_file() else []
    tb = "Traceback" in stderr or (rc is not None and rc not in (0, 1, 2))
    return {
        "rc": rc,
        "hang": hang,
        "traceback": tb,
        "seconds": round(secs, 2),
        "manifest": manifest.is_file(),
        "peak_rss_mb": _read_peak(peak_file),
        "status": dict(status),
        "unlisted": unlisted,
        "stderr_tail": stderr[-1500:] if tb or hang else "",
    }


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def summarise_inprocess(
    name: str, cases: list[Case], res: list[dict[str, Any]], changed: list[str], secs: float
) -> dict[str, Any]:
    outcomes = Counter(r["outcome"] for r in res)
    bad = [
        {"input": c.name, **r}
        for c, r in zip(cases, res, strict=True)
        if r["outcome"] in ("traceback", "hang", "crash", "lost")
    ]
    slowest = sorted(((r["seconds"], c.name) for c, r in zip(cases, res, strict=True)), reverse=True)[:5]
    return {
        "target": name,
        "inputs": len(cases),
        "ok": outcomes["ok"],
        "clean_errors": outcomes["error"],
        "tracebacks": outcomes["traceback"] + outcomes["crash"] + outcomes["lost"],
        "hangs": outcomes["hang"],
        "changed_inputs": len(changed),
        "silent_skips": 0,
        "grey_filled": sum(r["outcome"] == "ok" and r.get("grey_rows", 0) >= GREY_ROWS for r in res),
        "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in res), default=0.0),
        "seconds": round(secs, 1),
        "slowest": slowest,
        "grey_inputs": [
            c.name
            for c, r in zip(cases, res, strict=True)
            if r["outcome"] == "ok" and r.get("grey_rows", 0) >= GREY_ROWS
        ][:20],
        "peak_raisers": _peak_raisers(cases, res),
        "failures": bad[:50],
        "error_reasons": Counter(
            _reason_kind(r["detail"]) for r in res if r["outcome"] == "error"
        ).most_common(12),
    }


def _peak_raisers(cases: list[Case], res: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Inputs (in corpus order) after which the peak RSS was 200 MB above all earlier ones (top 5)."""
    best = 0.0
    out = []
    for c, r in zip(cases, res, strict=True):
        peak = r.get("peak_rss_mb", 0.0)
        if peak > best + 200:
            out.append((c.name, peak))
        best = max(best, peak)
    return sorted(out, key=lambda x: -x[1])[:5]


def _reason_kind(detail: str) -> str:
    """Collapse a one-line error into its kind (drop the file name and numbers)."""
    text = detail.split(": ", 1)[1] if ": " in detail else detail
    text = text.split(" (")[0]
    text = re.sub(r"^-?\d+x-?\d+ ", "", text)  # "100000x100000 image is larger ..." -> "image is larger ..."
    return re.sub(r"\d", "#", text)[:80]


#: Columns of the per-target summary table (also used by reliability_tables.py for docs/reliability.md).
TABLE_COLUMNS = (
    "target",
    "inputs",
    "ok",
    "clean_errors",
    "tracebacks",
    "hangs",
    "changed_inputs",
    "silent_skips",
    "grey_filled",
    "peak_rss_mb",
    "seconds",
)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The per-target summary as Markdown table lines."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in TABLE_COLUMNS) + " |" for r in rows]
    return lines


#: The documented memory budget (docs/reliability.md, benchmarks/memory_probe.py): peak RSS of one
#: ``facesr restore`` process. The ``api`` worker restores its inputs one after another in one process and
#: ``cli`` runs ``facesr restore`` on a batch, so both peaks must stay under it; ``read`` and ``prepare``
#: are not restore processes and are reported only.
BUDGET_MB = 1536
BUDGET_TARGETS = ("api", "cli")


def check_budget(rows: list[dict[str, Any]], budget_mb: float) -> int:
    """Mark each restore target's row ``over_budget`` (peak RSS above ``budget_mb``, or unknown);
    return how many are over."""
    over = 0
    for r in rows:
        if r.get("target") in BUDGET_TARGETS:
            peak = r.get("peak_rss_mb")
            r["over_budget"] = peak is None or peak > budget_mb
            over += r["over_budget"]
    return over


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n".join(table_lines(rows)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000, help="number of fuzzed files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {','.join(TARGETS)}")
    ap.add_argument(
        "--work", type=Path, default=REPO / "workspace" / "fuzz", help="corpus and outputs folder"
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON report (default: WORK/report.json)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for read/api")
    ap.add_argument(
        "--budget-mb", type=float, default=BUDGET_MB, help="peak RSS budget of the api and cli targets"
    )
    ap.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per input before it counts as a hang"
    )
    ap.add_argument("--cli-batch", type=int, default=500, help="files per `facesr restore` invocation")
    ap.add_argument(
        "--cli-jobs", type=int, default=1, help="`facesr restore` invocations run at the same time"
    )
    ap.add_argument("--model", default=None, help="model for api/cli (default: automatic choice)")
    ap.add_argument(
        "--mem-limit-gb",
        type=float,
        default=6.0,
        help="address-space cap per process started (a runaway allocation becomes a MemoryError)",
    )
    args = ap.parse_args(argv)
    global MEM_LIMIT
    MEM_LIMIT = int(args.mem_limit_gb * (1 << 30))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r}")

    t_start = time.perf_counter()
    cases = generate(args.count, args.seed)
    corpus = args.work / "corpus"
    hashes = write_corpus(cases, corpus)
    corpus_digest = hashlib.sha256(
        "".join(f"{n} {h}\n" for n, h in sorted(hashes.items())).encode()
    ).hexdigest()
    paths = [corpus / c.name for c in cases]
    gen_s = time.perf_counter() - t_start
    print(
        f"corpus: {len(cases)} files, sha256 {corpus_digest[:16]}, {gen_s:.1f} s; kinds "
        f"{dict(Counter(c.kind for c in cases))}",
        file=sys.stderr,
        flush=True,
    )

    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for target in targets:
        t0 = time.perf_counter()
        print(f"target {target} ...", file=sys.stderr, flush=True)
        if target in ("read", "api"):
            res = run_in_workers(target, paths, workers=args.workers, timeout=args.timeout, model=args.model)
            row = summarise_inprocess(
                target, cases, res, changed_files(corpus, hashes), time.perf_counter() - t0
            )
        elif target == "cli":
            out_root = args.work / "cli_out"
            shutil.rmtree(out_root, ignore_errors=True)
            recs = run_cli_restore(
                paths,
                out_root,
                batch=args.cli_batch,
                timeout_per_input=args.timeout,
                model=args.model,
                jobs=args.cli_jobs,
            )
            row = {
                "target": "cli",
                "inputs": len(paths),
                "invocations": len(recs),
                "tracebacks": sum(r["traceback"] for r in recs),
                "hangs": sum(r["hang"] for r in recs),
                "changed_inputs": len(changed_files(corpus, hashes)),
                "silent_skips": sum(len(r["unreported"]) for r in recs),
                "exit_codes": dict(Counter(str(r["rc"]) for r in recs)),
                "peak_rss_mb": max((r["peak_rss_mb"] or 0.0 for r in recs), default=0.0),
                "seconds": round(time.perf_counter() - t0, 1),
                "batches": recs,
            }
            row["ok"], row["clean_errors"] = _cli_counts(out_root)
        else:
            out = args.work / "prepared"
            shutil.rmtree(out, ignore_errors=True)
            rec = run_cli_prepare(
                corpus, out, timeout=max(600.0, args.timeout * len(paths) / 20), workers=args.workers
            )
            row = {
                "target": "prepare",
                "inputs": len(paths),
                "ok": rec["status"].get("ok", 0),
                "clean_errors": rec["status"].get("failed", 0),
                "tracebacks": int(rec["traceback"]),
                "hangs": int(rec["hang"]),
                "changed_inputs": len(changed_files(corpus, hashes)),
                "silent_skips": len(rec["unlisted"]),
                "peak_rss_mb": rec["peak_rss_mb"] or 0.0,
                "seconds": round(time.perf_counter() - t0, 1),
                "run": rec,
            }
        rows.append({k: v for k, v in row.items() if not isinstance(v, (list, dict))})
        details[target] = row
        print(f"  [{target}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    total_s = time.perf_counter() - t_start
    over_budget = check_budget(rows, args.budget_mb)
    for r in rows:
        if "over_budget" in r:
            details[r["target"]]["over_budget"] = r["over_budget"]
    print_table(rows)
    report = {
        "count": len(cases),
        "seed": args.seed,
        "corpus_sha256": corpus_digest,
        "kinds": dict(Counter(c.kind for c in cases)),
        "timeout_s": args.timeout,
        "cli_batch": args.cli_batch,
        "cli_jobs": args.cli_jobs,
        "mem_limit_gb": args.mem_limit_gb,
        "model": args.model or "auto",
        "workers": args.workers,
        "budget_mb": args.budget_mb,
        "targets_over_budget": over_budget,
        "python": sys.version.split()[0],
        "seconds_total": round(total_s, 1),
        "summary": rows,
        "targets": details,
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    out_json = args.out or (args.work / "report.json")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report: {out_json} ({total_s:.0f} s)", file=sys.stderr)
    bad = sum(
        r["tracebacks"] + r["hangs"] + r["changed_inputs"] + r["silent_skips"] + r.get("grey_filled", 0)
        for r in rows
    )
    return 1 if bad or over_budget else 0


def _cli_counts(out_root: Path) -> tuple[int, int]:
    ok = failed = 0
    for rep in out_root.glob("batch_*/report.json"):
        counts = json.loads(rep.read_text())["counts"]
        ok += counts["ok"]
        failed += counts["failed"]
    return ok, failed


if __name__ == "__main__":
    sys.exit(main())
