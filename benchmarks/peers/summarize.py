"""Print the peer tables of docs/peers.md from the result files (nothing typed by hand).

Reads every ``facesr-eval/2`` JSON of ``results/`` whose model is a peer, plus the bicubic rows of
the same benchmarks for reference, and ``results/peers/parity_esrgan_thick.json``; prints Markdown.
Usage: ``python benchmarks/peers/summarize.py [--results results]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from facesr.eval.results import FORMAT, read_result


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def results_table(docs: list[dict[str, Any]]) -> str:
    """One row per (benchmark, method, input): quality, identity and CPU latency."""
    head = "| benchmark | method | input | PSNR dB | SSIM | PSNR-Y dB | SSIM-Y | identity cos | CPU ms/face | faces |"
    lines = [head, "|" + "---|" * 10]
    order = {"baseline": 0, "facesr": 1, "peer": 2}

    def key(d: dict[str, Any]) -> tuple:
        m = d["model"]
        inp = 0 if m.get("input", "masked") == "masked" else 1
        return (d["protocol"]["benchmark"], order.get(m.get("kind"), 1), m["name"], inp)

    for d in sorted(docs, key=key):
        m, met = d["model"], d["metrics"]
        lat = m.get("cpu_latency") or {}
        ms = f"{lat['median_ms_per_face']:.0f} ({lat.get('threads', '?')} thr)" if lat else "–"
        inp = "masked" if m.get("input", "masked") == "masked" else "unmasked"
        n = d["protocol"]["n_faces"]
        faces = str(n) if d["protocol"].get("complete", True) else f"{n} (subset)"
        lines.append(
            f"| {d['protocol']['benchmark']} | {m.get('label') or m['name']} | {inp} | {_f(met.get('psnr'), '{:.2f}')} "
            f"| {_f(met.get('ssim'), '{:.4f}')} | {_f(met.get('psnr_y'), '{:.2f}')} | {_f(met.get('ssim_y'), '{:.4f}')} "
            f"| {_f(met.get('identity'), '{:.4f}')} | {ms} | {faces} |"
        )
    sums: dict[str, set[str]] = {}
    for d in docs:
        sums.setdefault(d["protocol"]["benchmark"], set()).add(d["protocol"]["benchmark_checksum"][:12])
    lines.append("")
    for bench, found in sorted(sums.items()):
        note = (
            ""
            if len(found) == 1
            else " **(rows computed on different builds of this set: re-run the stale ones)**"
        )
        lines.append(f"`{bench}` checksum: {', '.join(f'`{c}`' for c in sorted(found))}{note}  ")
    return "\n".join(lines) + "\n"


def parity_table(report: dict[str, Any]) -> str:
    lines = [
        "| scale | faces | max abs diff (0-255) | mean abs diff (0-255) | 8-bit values differing | tfjs-wasm ms/face |",
        "|---|---|---|---|---|---|",
    ]
    for scale, r in report["scales"].items():
        lines.append(
            f"| {scale} | {r['faces']} | {r['max_abs_diff_0_255']:.5f} | {r['mean_abs_diff_0_255']:.6f} "
            f"| {r['uint8_values_differing']} of {r['uint8_values']} | {r['tfjs_median_ms_per_face']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def timing_table(report: dict[str, Any]) -> str:
    lines = [
        "| benchmark | bicubic ms/face | ESRGAN-thick ms/face | RealSR ms/face | ESRGAN-thick / bicubic "
        "| RealSR / ESRGAN-thick | load avg (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for bench, r in report["scales"].items():
        ms, rb, re_ = r["ms_per_face"], r["ratio_to_bicubic"], r["ratio_to_esrgan_thick"]
        lines.append(
            f"| {bench} | {ms['bicubic']:.2f} | {ms['esrgan-thick']:.0f} | {ms['realsr']:.0f} ({r['realsr_note']}) "
            f"| {rb['esrgan-thick']:.0f}x | {re_['realsr']:.2f}x | {', '.join(str(x) for x in r['loadavg_1min'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    docs = []
    for p in sorted(args.results.glob("*.json")):
        raw = json.loads(p.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT or not raw["protocol"]["benchmark"].startswith("utk-mask"):
            continue
        doc = read_result(p)
        if doc["model"].get("kind") == "peer" or doc["model"]["name"].startswith("bicubic"):
            docs.append(doc)
    if not docs:
        print(f"summarize: error: no peer results in {args.results}", file=sys.stderr)
        return 2
    print(results_table(docs))
    parity = args.results / "peers" / "parity_esrgan_thick.json"
    if parity.is_file():
        print(parity_table(json.loads(parity.read_text(encoding="utf-8"))))
    timing = args.results / "peers" / "timing_peers.json"
    if timing.is_file():
        print(timing_table(json.loads(timing.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
