"""Peak memory of ``facesr restore`` and the demo on hostile and largest-legal inputs (issue 17).

Each case runs in a fresh Python process (so one case's allocations cannot hide another's) that
restores one file and reports its peak resident set (``ru_maxrss``); the parent writes a JSON report
and a Markdown table, and exits 1 when a case that the default limits accept is over the budget.

    python benchmarks/memory_probe.py --out workspace/fuzz/memory.json

Cases (made here, deterministically, in a temporary folder):

* ``zero-7900.png``: the probe's 182 KB all-zero 7900 x 7900 PNG (62 MP);
* ``claims-7000.jpg``: a small JPEG whose header claims 7000 x 7000 (its scan ends early);
* ``zero-limit.png``: an all-zero PNG of exactly the default pixel limit (3:2);
* ``faces-limit.jpg``: the bundled sample photos tiled and enlarged to the default pixel limit, so
  faces are found, aligned, restored and pasted (the heaviest legal path);
* ``thin-65531x32.png``: a noise strip of the shape of the fuzz corpus's 1 KB GIF that took
  ``facesr restore`` to 1.25 GB (the detection border tripled its pixels);
* ``demo-limit.png``: the demo's default 16 MP limit, through the demo's own request handler.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "facesr" / "samples"
#: The documented budget (docs/reliability.md): peak RSS of one restore of an input the defaults accept.
BUDGET_MB = 1536


def _zero_png(path: Path, w: int, h: int) -> None:
    Image.new("RGB", (w, h)).save(path, optimize=True)


def _claiming_jpeg(path: Path, w: int, h: int) -> None:
    """A 64 x 64 JPEG whose SOF0 is patched to declare ``w`` x ``h``: the scan ends long before."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))


def _noise_png(path: Path, w: int, h: int) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(path)


def _limit_size(pixels: int) -> tuple[int, int]:
    h = int((pixels / 1.5) ** 0.5)
    w = int(pixels // h)
    return w, h


def _faces_photo(path: Path, pixels: int) -> None:
    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.glob("*.jpg"))]
    th, tw = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    grid = np.concatenate(
        [
            np.concatenate([t[:th, :tw] for t in tiles[:2]], 1),
            np.concatenate([t[:th, :tw] for t in tiles[2:4]], 1),
        ],
        0,
    )
    w, h = _limit_size(pixels)
    Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)


def _many_faces(path: Path, cols: int = 8, rows: int = 14) -> None:
    """The bundled photos tiled at their own size (``cols`` x ``rows`` tiles): hundreds of small faces."""
    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.glob("*.jpg"))]
    th, tw = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    grid = np.concatenate(
        [
            np.concatenate([tiles[(r + c) % len(tiles)][:th, :tw] for c in range(cols)], 1)
            for r in range(rows)
        ],
        0,
    )
    Image.fromarray(grid).save(path, quality=92)


def make_cases(folder: Path, only: list[str] | None = None) -> dict[str, tuple[Path, str, list[str]]]:
    """name -> (file, target, extra CLI args): target ``cli`` (facesr restore) or ``demo`` (its handler)."""
    from facesr.demo.app import DemoLimits
    from facesr.io import MAX_PIXELS

    demo_px = DemoLimits().max_pixels
    rlfn = ["--bg-upsampler", "rlfn-x4"]
    # name: (target, extra args, maker); the file name is the case name up to "@" (cases share files)
    makers = {
        "zero-7900.png": ("cli", [], lambda p: _zero_png(p, 7900, 7900)),
        "claims-7000.jpg": ("cli", [], lambda p: _claiming_jpeg(p, 7000, 7000)),
        "zero-limit.png": ("cli", [], lambda p: _zero_png(p, *_limit_size(MAX_PIXELS))),
        "faces-limit.jpg": ("cli", [], lambda p: _faces_photo(p, MAX_PIXELS)),
        "faces-limit.png": ("cli", [], lambda p: _faces_photo(p, MAX_PIXELS)),
        "many-faces.jpg": ("cli", [], _many_faces),
        "thin-65531x32.png": ("cli", [], lambda p: _noise_png(p, 65_531, 32)),
        "faces-16mp.jpg@x2": ("cli", ["--upscale", "2"], lambda p: _faces_photo(p, MAX_PIXELS // 4)),
        "faces-4mp.jpg@x4": ("cli", ["--upscale", "4"], lambda p: _faces_photo(p, MAX_PIXELS // 16)),
        "faces-1mp.jpg@x8": ("cli", ["--upscale", "8"], lambda p: _faces_photo(p, MAX_PIXELS // 64)),
        "faces-limit.jpg@x8": ("cli", ["--upscale", "8"], None),
        "faces-1mp.jpg@x2-rlfn": ("cli", ["--upscale", "2", *rlfn], None),
        "faces-1mp.jpg@x4-rlfn": ("cli", ["--upscale", "4", *rlfn], None),
        "faces-1mp.jpg@x8-rlfn": ("cli", ["--upscale", "8", *rlfn], None),
        "demo-limit.png": ("demo", [], lambda p: _zero_png(p, *_limit_size(demo_px))),
        "demo-faces.jpg": ("demo", [], lambda p: _faces_photo(p, demo_px)),
    }
    cases = {}
    for name, (target, extra, make) in makers.items():
        if only and name not in only:
            continue
        path = folder / name.split("@")[0]
        if not path.exists():
            maker = make or next(m for n, (_t, _e, m) in makers.items() if n.split("@")[0] == path.name and m)
            maker(path)
        cases[name] = (path, target, extra)
    return cases


def run_one(path: Path, target: str, out: Path, extra: list[str] | None = None) -> dict[str, object]:
    """In this process: restore ``path`` once; report exit status, peak RSS and time."""
    t0 = time.perf_counter()
    if target == "cli":
        from facesr.cli import main

        rc = main(["restore", str(path), "-o", str(out), "--device", "cpu", *(extra or [])])
        detail = ""
        rep = out / "report.json"
        if rep.is_file():
            files = json.loads(rep.read_text())["files"]
            detail = files[0].get("reason", "") if files else ""
            if files and files[0]["status"] == "ok":
                f0 = files[0]
                restored = sum(f.get("status") == "restored" for f in f0["faces"])
                size = "x".join(map(str, f0.get("output_size") or []))
                detail = f"{len(f0['faces'])} faces, {restored} restored; x{f0.get('upscale', '?')} -> {size}"
                if f0.get("notes"):
                    detail += "; " + "; ".join(f0["notes"])
    else:
        from facesr.demo.app import AUTO, DemoLimits, DemoState, run_restore
        from facesr.errors import FacesrError

        try:
            run_restore(str(path), AUTO, DemoState(device="cpu", out_dir=out), DemoLimits())
            rc, detail = 0, "restored"
        except FacesrError as exc:
            rc, detail = 1, str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {
        "rc": rc,
        "peak_rss_mb": round(peak, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "detail": detail,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "workspace" / "fuzz" / "memory.json")
    ap.add_argument("--budget-mb", type=float, default=BUDGET_MB)
    ap.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    ap.add_argument("--one", nargs=3, metavar=("FILE", "TARGET", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--extra", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        extra = json.loads(args.extra) if args.extra else []
        print(json.dumps(run_one(Path(args.one[0]), args.one[1], Path(args.one[2]), extra)))
        return 0
    from facesr.io import MAX_PIXELS

    rows = []
    with tempfile.TemporaryDirectory(prefix="facesr-memprobe-") as tmp:
        folder = Path(tmp)
        for name, (path, target, extra) in make_cases(folder, args.only).items():
            cmd = [sys.executable, __file__, "--one", str(path), target, str(folder / f"out-{name}")]
            cmd += ["--extra", json.dumps(extra)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
            try:
                res = json.loads(last)
            except json.JSONDecodeError:
                res = {"rc": proc.returncode, "peak_rss_mb": None, "detail": proc.stderr.strip()[-300:]}
            res.update(
                case=name, file_kb=round(path.stat().st_size / 1024, 1), target=target, args=" ".join(extra)
            )
            rows.append(res)
            print(json.dumps(res), flush=True)
    over = [r for r in rows if r.get("peak_rss_mb") is None or r["peak_rss_mb"] > args.budget_mb]
    report = {"budget_mb": args.budget_mb, "max_pixels": MAX_PIXELS, "cases": rows, "over_budget": len(over)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    return 1 if over else 0


def table(report: dict[str, object]) -> str:
    """The Markdown table of a report (what docs/reliability.md quotes)."""
    lines = [
        "| case | file (KB) | target | options | exit | peak RSS (MB) | seconds | outcome |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:  # type: ignore[union-attr]
        lines.append(
            f"| {r['case']} | {r['file_kb']:,} | {r['target']} | {r.get('args') or ''} | {r['rc']} | "
            f"{r['peak_rss_mb']} | {r.get('seconds', '')} | {str(r.get('detail', ''))[:140]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
