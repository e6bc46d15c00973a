"""``facesr report``: RESULTS.md and the comparison grids, rebuilt from the result JSON files only.

Nothing in RESULTS.md is typed by hand: every figure is read from a ``facesr-eval/1`` file in the
results folder (written by ``facesr eval`` or by the peer scripts in ``benchmarks/peers/``), except
the JDSR-GAN paper's own CelebA numbers, which are quoted constants with their source named in the
row. The output depends only on the JSON files (and the sample strips next to them): files are read
in sorted order, rows are sorted by a fixed key and no clock or path is printed, so the same inputs
give a byte-identical RESULTS.md (a test checks this).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from facesr.errors import FacesrError

#: Benchmarks in table order, with their headings.
TITLES = {
    "utk-mask-x4": "UTK-Mask x4 (32x32 masked LR -> 128x128)",
    "utk-mask-x8": "UTK-Mask x8 (16x16 masked LR -> 128x128)",
    "celeba10k-x4": "CelebA-10k x4 (32x32 masked LR -> 128x128, cross-data set, never trained on)",
    "celeba10k-x8": "CelebA-10k x8 (16x16 masked LR -> 128x128, cross-data set, never trained on)",
}
ROW_ORDER = ("bicubic", "sr-only", "two-stage", "jdsr-lite", "jdsr-paper")
#: The JDSR-GAN paper's own headline numbers (CelebA test set, its own masks): quoted, not measured.
PAPER_REFERENCE = {
    4: {"psnr": 29.18, "ssim": 0.8553},
    8: {"psnr": 26.45, "ssim": 0.7633},
}
PAPER_SOURCE = (
    "JDSR-GAN paper's own CelebA test numbers, quoted from `../shared/research/papers.md` "
    "section 1.7 [SECONDARY J3]; colour space unstated in the paper"
)
COLUMNS = (  # key, header, format
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("psnr_y", "PSNR-Y dB", "{:.2f}"),
    ("ssim_y", "SSIM-Y", "{:.4f}"),
    ("identity", "identity cos", "{:.4f}"),
    ("frd", "FRD", "{:.4f}"),
)
GRID_FACES = 4  # rows of the comparison grid (keeps each PNG well under 1 MB)
#: Characteristic Regularisation benchmarks: one section of their own (no ground truth on genuine-lr)
CR_BENCHMARKS = ("genuine-lr", "utk-art-x4")
CR_ROW_ORDER = ("bicubic-x4", "bicubic", "sr-only", "cycle", "cr")
CR_REFERENCE = "sr-only"  # FRD differences are reported relative to this method (the target)
CR_CYCLE = "cycle"  # ... and to the cycle-style baseline (the second FRD target)
LABEL_H = 14


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def _method(doc: dict[str, Any]) -> str:
    m = doc["model"]
    label = m.get("label") or m["name"]
    if m.get("kind") == "peer":
        label = f"{label} (peer)"
    return label


def _input(doc: dict[str, Any]) -> str:
    return "masked LR" if doc["model"].get("input", "masked") == "masked" else "unmasked LR (best case)"


def sort_key(doc: dict[str, Any]) -> tuple[Any, ...]:
    """Fixed row order: our rows in ROW_ORDER, then other facesr models, then peers; by name."""
    m = doc["model"]
    row = m.get("row", m["name"])
    kind_rank = {"baseline": 0, "facesr": 0, "peer": 2}.get(m.get("kind", "facesr"), 1)
    order = ROW_ORDER.index(row) if row in ROW_ORDER else len(ROW_ORDER)
    input_rank = 0 if m.get("input", "masked") == "masked" else 1  # the task first, the best case second
    return (kind_rank, order, str(m["name"]), input_rank, doc.get("_file", ""))


def format_rows(docs: list[dict[str, Any]], scale: int | None = None, reference: bool = False) -> str:
    """Markdown table of mean metrics, one row per result (plus the paper's reference row)."""
    head = ["method", "input", *[c[1] for c in COLUMNS], "faces"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for doc in sorted(docs, key=sort_key):
        met = doc["metrics"]
        cells = [
            _method(doc),
            _input(doc),
            *[_fmt(met.get(k), f) for k, _, f in COLUMNS],
            str(doc["protocol"]["n_faces"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if reference and scale in PAPER_REFERENCE:
        ref = PAPER_REFERENCE[scale]
        cells = [
            "JDSR-GAN (paper) — **different data set** (CelebA test, paper's masks)¹",
            "masked LR",
            _fmt(ref["psnr"], "{:.2f}"),
            _fmt(ref["ssim"], "{:.4f}"),
            "–",
            "–",
            "–",
            "–",
            "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _verification_table(docs: list[dict[str, Any]]) -> str:
    withv = [d for d in sorted(docs, key=sort_key) if d.get("verification")]
    if not withv:
        return ""
    proto = withv[0]["verification"]["protocol"]
    far = withv[0]["verification"]["restored_vs_hr"]["far"]
    lines = [
        f"Verification (probe vs clean-HR gallery, {proto['n_genuine']} genuine / {proto['n_impostor']} "
        f"impostor pairs, seed {proto['seed']}, pairs sha256 `{proto['pairs_sha256'][:12]}`):",
        "",
        f"| probe | input | TAR @ FAR={far:.0%} | EER |",
        "|---|---|---|---|",
    ]
    v0 = withv[0]["verification"]["hr_vs_hr"]
    lines.append(f"| clean HR (ceiling) | – | {v0['tar_at_far']:.2%} | {v0['eer']:.2%} |")
    for d in withv:
        v = d["verification"]["restored_vs_hr"]
        lines.append(f"| {_method(d)} | {_input(d)} | {v['tar_at_far']:.2%} | {v['eer']:.2%} |")
    return "\n".join(lines) + "\n"


def _runs_table(docs: list[dict[str, Any]]) -> str:
    lines = ["| result file | reproduce | code | date (UTC) | wall s | device |", "|---|---|---|---|---|---|"]
    for d in sorted(docs, key=sort_key):
        run = d.get("run", {})
        hw = run.get("hardware", {})
        dev = hw.get("gpu") or hw.get("cpu") or "?"
        cmd = run.get("command") or "–"
        lines.append(
            f"| `{d.get('_file', '?')}` | `{cmd}` | `{run.get('code_revision', '?')}` | "
            f"{run.get('date', '?')} | {run.get('wall_time_s', '?')} | {dev} |"
        )
    return "\n".join(lines) + "\n"


def build_markdown(docs: list[dict[str, Any]], grids: dict[str, str]) -> str:
    """The whole RESULTS.md text."""
    out = [
        "# Results",
        "",
        "Generated by `facesr report` from the `facesr-eval/1` JSON files in `results/`; do not edit by hand.",
        "Protocol and metric definitions: `docs/evaluation.md`. Every row comes from one JSON file, named",
        "in the runs table under each benchmark with the command that produced it.",
        "",
    ]
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_bench.setdefault(d["protocol"]["benchmark"], []).append(d)
    names = [b for b in TITLES if b in by_bench] + sorted(
        b for b in by_bench if b not in TITLES and b not in CR_BENCHMARKS
    )
    if not names and not any(b in by_bench for b in CR_BENCHMARKS):
        out += ["No result files yet: run `facesr eval --model bicubic --benchmark utk-mask-x4`.", ""]
    for bench in names:
        group = by_bench[bench]
        scale = int(group[0]["protocol"]["scale"])
        # header facts from the most recent run (by its recorded date, then file name: deterministic)
        latest = max(group, key=lambda d: (str(d.get("run", {}).get("date", "")), d.get("_file", "")))
        p = latest["protocol"]
        out += [f"## {TITLES.get(bench, bench)}", ""]
        out += [
            f"Benchmark `{bench}`: {p['n_faces_in_benchmark']} faces of `{p.get('data_set', '?')}` "
            f"({p.get('split', '?')}), input {p['lr_size']}x{p['lr_size']}, "
            f"target clean HR {p['hr_size']}x{p['hr_size']}, RGB in [0,1], no crop, outputs rounded to "
            f"8 bits; benchmark checksum `{str(p['benchmark_checksum'])[:16]}`.",
            "",
        ]
        if p.get("benchmark_note"):
            out += [f"Note from the benchmark: {p['benchmark_note']}", ""]
        versions: dict[str, list[str]] = {}
        for d in group:
            versions.setdefault(str(d["protocol"]["benchmark_checksum"]), []).append(d.get("_file", "?"))
        if len(versions) > 1:
            listing = "; ".join(f"`{c[:16]}`: {', '.join(sorted(f))}" for c, f in sorted(versions.items()))
            out += [
                "**Warning: these rows were computed on different versions of this benchmark** (benchmark "
                f"checksums differ: {listing}). Re-run the stale ones before comparing them.",
                "",
            ]
        partial = [d for d in group if not d["protocol"].get("complete", True)]
        if partial:
            out += [
                f"**Partial runs** (fewer faces than the benchmark): "
                f"{', '.join(sorted(d.get('_file', '?') for d in partial))}.",
                "",
            ]
        out += [format_rows(group, scale=scale, reference=True)]
        out += [f"¹ {PAPER_SOURCE}. Not comparable: other data, other masks.", ""]
        ver = _verification_table(group)
        if ver:
            out += [ver]
        if bench in grids:
            out += [
                f"![comparison grid for {bench}]({grids[bench]})",
                "",
                "Grid columns: input (nearest-neighbour enlarged), each method, ground truth; "
                "rows: fixed faces (seeded choice, the same for every method).",
                "",
            ]
        out += ["Runs:", "", _runs_table(group)]
    if any(b in by_bench for b in CR_BENCHMARKS):
        out += cr_section(by_bench, grids.get("genuine-lr"))
    return "\n".join(out).rstrip() + "\n"


def _cr_key(name: str) -> tuple[int, str]:
    return (CR_ROW_ORDER.index(name) if name in CR_ROW_ORDER else len(CR_ROW_ORDER), name)


def _paired_frd_change(doc: dict[str, Any], ref: dict[str, Any]) -> str:
    """FRD change relative to the reference with a paired bootstrap 95% interval (same resampled faces:
    same seed, replicate count and benchmark), as ``-3.1 % [-9.0, +2.5]``; ``–`` when not comparable."""
    a, b = doc.get("frd_bootstrap"), ref.get("frd_bootstrap")
    point = doc["metrics"]["frd"] / ref["metrics"]["frd"] - 1.0
    if (
        not a
        or not b
        or (a["seed"], a["replicates"]) != (b["seed"], b["replicates"])
        or doc["protocol"]["benchmark_checksum"] != ref["protocol"]["benchmark_checksum"]
    ):
        return f"{point:+.1%}"
    rel = np.asarray(a["values"]) / np.asarray(b["values"]) - 1.0
    lo, hi = np.percentile(rel, [2.5, 97.5])
    return f"{100 * point:+.1f} % [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def cr_section(by_bench: dict[str, list[dict[str, Any]]], grid: str | None) -> list[str]:
    """The Characteristic Regularisation section: genuine-lr and utk-art-x4 side by side per method."""
    gen = {d["model"]["name"]: d for d in by_bench.get("genuine-lr", [])}
    art = {d["model"]["name"]: d for d in by_bench.get("utk-art-x4", [])}
    names = sorted(set(gen) | set(art), key=_cr_key)
    ref, cyc = gen.get(CR_REFERENCE), gen.get(CR_CYCLE)
    out = ["## Characteristic Regularisation: genuine low-resolution faces (16x16 -> 64x64)", ""]
    if gen:
        p = next(iter(gen.values()))["protocol"]
        out += [
            f"`genuine-lr`: {p['n_faces_in_benchmark']} genuine test faces ({p['data_set']}); target: "
            f"{p['target']}; checksum `{str(p['benchmark_checksum'])[:16]}`.",
        ]
    if art:
        p = next(iter(art.values()))["protocol"]
        out += [
            f"`utk-art-x4`: {p['n_faces_in_benchmark']} faces of the {p['data_set']}, input {p['input']}; "
            f"checksum `{str(p['benchmark_checksum'])[:16]}`.",
        ]
    out += [
        "",
        "FRD = Frechet distance on dlib face-recognition ResNet (face-api.js port) embeddings, not FID. "
        "Identity is measured against the *bicubic-upsampled input* (there is no HR for genuine faces), "
        "so bicubic scores 1 by construction. FRD SE: bootstrap standard error over faces (1000 "
        f"replicates); the changes vs `{CR_REFERENCE}` and `{CR_CYCLE}` have paired bootstrap 95% intervals (the same "
        "resampled faces for both methods): an interval containing 0 means no detectable difference. "
        "Protocol and caveats: `docs/cr.md`.",
        "",
        "| method | FRD (genuine) | FRD SE | FRD change vs "
        f"{CR_REFERENCE} [95% CI] | FRD change vs {CR_CYCLE} [95% CI] | FRD vs masked HR | "
        "identity vs bicubic input | PSNR dB (artificial) | SSIM (artificial) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        g, a = gen.get(name), art.get(name)
        gm, am = (g or {}).get("metrics", {}), (a or {}).get("metrics", {})
        change = "–" if g is None or ref is None else _paired_frd_change(g, ref)
        if g is not None and name == CR_REFERENCE:
            change = "(reference)"
        vs_cycle = "–" if g is None or cyc is None else _paired_frd_change(g, cyc)
        if g is not None and name == CR_CYCLE:
            vs_cycle = "(reference)"
        label = ((g or a) or {})["model"].get("label") or name
        out.append(
            f"| {label} | {_fmt(gm.get('frd'), '{:.4f}')} | "
            f"{_fmt(gm.get('frd_se'), '{:.4f}')} | {change} | {vs_cycle} | "
            f"{_fmt(gm.get('frd_masked_ref'), '{:.4f}')} | {_fmt(gm.get('identity_vs_bicubic_input'), '{:.4f}')} | "
            f"{_fmt(am.get('psnr'), '{:.2f}')} | {_fmt(am.get('ssim'), '{:.4f}')} |"
        )
    out.append("")
    if grid:
        out += [
            f"![genuine LR inputs and each method's output]({grid})",
            "",
            "Grid columns: genuine 16x16 input (nearest-neighbour enlarged), each method's 64x64 output "
            "(enlarged x2, nearest); rows: fixed genuine test faces (seeded choice).",
            "",
        ]
    docs = [d for b in CR_BENCHMARKS for d in by_bench.get(b, [])]
    out += ["Runs:", "", _runs_table(docs)]
    return out


def build_cr_grid(docs: list[dict[str, Any]], samples_dir: Path) -> np.ndarray | None:
    """Genuine-LR grid (input, each method) from the sample strips, or None when the input strip is missing."""
    from facesr.io import read_image

    inp = samples_dir / "genuine-lr__input.png"
    if not inp.is_file():
        return None
    cols: list[tuple[str, np.ndarray]] = [("input 16px", read_image(inp))]
    for d in sorted(docs, key=lambda d: _cr_key(str(d["model"]["name"]))):
        strip = samples_dir / (Path(d["_file"]).stem + ".png")
        if d["protocol"].get("complete", True) and strip.is_file():
            cols.append((d["model"].get("label") or d["model"]["name"], read_image(strip)))
    parts = []
    for name, img in cols:
        img = img[: GRID_FACES * img.shape[1]]
        k = max(1, 128 // img.shape[1])
        big = np.kron(img, np.ones((k, k, 1), np.uint8))
        parts.append(np.concatenate([_label(big.shape[1], name), big], axis=0))
    height = min(p.shape[0] for p in parts)
    sep = np.full((height, 2, 3), 255, np.uint8)
    out: list[np.ndarray] = []
    for i, part in enumerate(parts):
        out += [part[:height]] + ([sep] if i < len(parts) - 1 else [])
    return np.concatenate(out, axis=1)


def _label(width: int, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, LABEL_H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    while text and draw.textlength(text, font=font) > width - 2:
        text = text[:-1]
    draw.text((1, 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def build_grid(bench: str, docs: list[dict[str, Any]], samples_dir: Path) -> np.ndarray | None:
    """Comparison grid (input, each method, GT) from the sample strips, or None if any is missing."""
    from facesr.io import read_image

    inp, gt = samples_dir / f"{bench}__input.png", samples_dir / f"{bench}__gt.png"
    if not (inp.is_file() and gt.is_file()):
        return None
    cols: list[tuple[str, np.ndarray]] = [("input", read_image(inp))]
    for d in sorted(docs, key=sort_key):
        if not d["protocol"].get("complete", True) or d["model"].get("input", "masked") != "masked":
            continue
        strip = samples_dir / (Path(d["_file"]).stem + ".png")
        if strip.is_file():
            cols.append((d["model"].get("label") or d["model"]["name"], read_image(strip)))
    cols.append(("ground truth", read_image(gt)))
    height = min(c[1].shape[0] for c in cols)
    rows = min(GRID_FACES * 128, height)
    parts = [np.concatenate([_label(128, name), img[:rows]], axis=0) for name, img in cols]
    sep = np.full((rows + LABEL_H, 2, 3), 255, np.uint8)
    out: list[np.ndarray] = []
    for k, part in enumerate(parts):
        out += [part] + ([sep] if k < len(parts) - 1 else [])
    return np.concatenate(out, axis=1)


def drop_superseded(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop partial (``--limit``) results when a complete one exists for the same benchmark, model and input."""

    def key(d: dict[str, Any]) -> tuple[str, str, str]:
        return (d["protocol"]["benchmark"], str(d["model"]["name"]), d["model"].get("input", "masked"))

    complete = {key(d) for d in docs if d["protocol"].get("complete", True)}
    return [d for d in docs if d["protocol"].get("complete", True) or key(d) not in complete]


def generate(
    results_dir: str | os.PathLike[str] = "results",
    out: str | os.PathLike[str] = "RESULTS.md",
    grid_dir: str | os.PathLike[str] | None = "docs/img",
) -> tuple[Path, list[Path]]:
    """Write RESULTS.md (and the grid PNGs when ``grid_dir``) from ``results_dir``."""
    from facesr.eval.runner import load_results
    from facesr.io import atomic_write_text, write_image

    docs = drop_superseded(load_results(results_dir))
    out_path = Path(out)
    grids: dict[str, str] = {}
    written: list[Path] = []
    if grid_dir is not None:
        gdir = Path(grid_dir)
        benches = sorted({d["protocol"]["benchmark"] for d in docs})
        for bench in benches:
            if bench in CR_BENCHMARKS:
                if bench != "genuine-lr":
                    continue
                grid = build_cr_grid(
                    [d for d in docs if d["protocol"]["benchmark"] == bench], Path(results_dir) / "samples"
                )
            else:
                grid = build_grid(
                    bench,
                    [d for d in docs if d["protocol"]["benchmark"] == bench],
                    Path(results_dir) / "samples",
                )
            if grid is None:
                continue
            gdir.mkdir(parents=True, exist_ok=True)
            gpath = gdir / f"grid_{bench}.png"
            write_image(gpath, grid, optimize=True)
            written.append(gpath)
            grids[bench] = Path(os.path.relpath(gpath.resolve(), out_path.resolve().parent)).as_posix()
    text = build_markdown(docs, grids)
    if not text.strip():
        raise FacesrError("report: nothing to write")
    atomic_write_text(out_path, text)
    return out_path, written
