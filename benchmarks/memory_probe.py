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


def make_cases(folder: Path, only: list[str] | None = None) -> dict[str, tuple[Path, str]]:
    """name -> (file, target): target ``cli`` (facesr restore) or ``demo`` (the demo handler)."""
    from facesr.demo.app import DemoLimits
    from facesr.io import MAX_PIXELS

    makers = {
        "zero-7900.png": ("cli", lambda p: _zero_png(p, 7900, 7900)),
        "claims-7000.jpg": ("cli", lambda p: _claiming_jpeg(p, 7000, 7000)),
        "zero-limit.png": ("cli", lambda p: _zero_png(p, *_limit_size(MAX_PIXELS))),
        "faces-limit.jpg": ("cli", lambda p: _faces_photo(p, MAX_PIXELS)),
        "demo-limit.png": ("demo", lambda p: _zero_png(p, *_limit_size(DemoLimits().max_pixels))),
    }
    cases = {}
    for name, (target, make) in makers.items():
        if only and name not in only:
            continue
        make(folder / name)
        cases[name] = (folder / name, target)
    return cases


def run_one(path: Path, target: str, out: Path) -> dict[str, object]:
    """In this process: restore ``path`` once; report exit status, peak RSS and time."""
    t0 = time.perf_counter()
    if target == "cli":
        from facesr.cli import main

        rc = main(["restore", str(path), "-o", str(out), "--device", "cpu"])
        detail = ""
        rep = out / "report.json"
        if rep.is_file():
            files = json.loads(rep.read_text())["files"]
            detail = files[0].get("reason", "") if files else ""
            if files and files[0]["status"] == "ok":
                detail = f"{len(files[0]['faces'])} faces found"
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
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1], Path(args.one[2]))))
        return 0
    from facesr.io import MAX_PIXELS

    rows = []
    with tempfile.TemporaryDirectory(prefix="facesr-memprobe-") as tmp:
        folder = Path(tmp)
        for name, (path, target) in make_cases(folder, args.only).items():
            cmd = [sys.executable, __file__, "--one", str(path), target, str(folder / f"out-{name}")]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
            try:
                res = json.loads(last)
            except json.JSONDecodeError:
                res = {"rc": proc.returncode, "peak_rss_mb": None, "detail": proc.stderr.strip()[-300:]}
            res.update(case=name, file_kb=round(path.stat().st_size / 1024, 1), target=target)
            rows.append(res)
            print(json.dumps(res), flush=True)
    over = [r for r in rows if r.get("peak_rss_mb") is None or r["peak_rss_mb"] > args.budget_mb]
    report = {"budget_mb": args.budget_mb, "max_pixels": MAX_PIXELS, "cases": rows, "over_budget": len(over)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| case | file (KB) | target | exit | peak RSS (MB) | seconds | outcome |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['file_kb']} | {r['target']} | {r['rc']} | {r['peak_rss_mb']} | "
            f"{r.get('seconds', '')} | {str(r.get('detail', ''))[:90]} |"
        )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
