"""Markdown tables of result documents, and the row each model belongs to.

Shared by the result writer (:mod:`facesr.eval.results`, one small table next to each JSON file), the
``facesr eval`` command (the table it prints) and ``facesr report`` (RESULTS.md), so that a number is
formatted the same way everywhere. Depends on nothing but the document layout (``facesr-eval/2``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

#: Row order in tables; model names are matched on these prefixes after dropping "-x4"/"-x8".
ROW_ORDER = ("bicubic", "sr-only", "two-stage", "jdsr-lite", "jdsr-paper", "jdsr-fast")
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
    ("psnr_mask_in", "PSNR in mask", "{:.2f}"),
    ("psnr_mask_out", "PSNR out of mask", "{:.2f}"),
)


def row_key(model_name: str) -> str:
    """Table row family of a model name: ``jdsr-lite-x4`` -> ``jdsr-lite``; unknown names unchanged."""
    base = re.sub(r"-x[248]$", "", model_name)
    for key in ROW_ORDER:
        if base == key or base.startswith(key + "-"):
            return key
    return base


def row_from_arch(model_name: str, arch: str, args_json: str) -> str:
    """Table row family from a weights file's architecture metadata, falling back to the name."""
    try:
        size = json.loads(args_json or "{}").get("size", "lite")
    except (ValueError, AttributeError):
        size = "lite"
    family = {
        "jdsr": f"jdsr-{size}",
        "jdsr_sr_only": "sr-only",
        "jdsr_two_stage": "two-stage",
        "jdsr_fast": "jdsr-fast",
    }.get(arch)
    return family if family in ROW_ORDER else row_key(model_name)


def fmt_value(value: Any, fmt: str) -> str:
    """``fmt`` applied to ``value``; a dash for a missing or NaN value (a metric not computed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def method_label(doc: dict[str, Any]) -> str:
    """The row's method name: its label (or name), marked as a peer when it is one."""
    m = doc["model"]
    label = m.get("label") or m["name"]
    if m.get("kind") == "peer":
        label = f"{label} (peer)"
    return label


def input_label(doc: dict[str, Any]) -> str:
    """Which LR the row was fed: the task's masked LR or the unmasked best case."""
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
            method_label(doc),
            input_label(doc),
            *[fmt_value(met.get(k), f) for k, _, f in COLUMNS],
            str(doc["protocol"]["n_faces"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if reference and scale in PAPER_REFERENCE:
        ref = PAPER_REFERENCE[scale]
        cells = [
            "JDSR-GAN (paper) — **different data set** (CelebA test, paper's masks)¹",
            "masked LR",
            fmt_value(ref["psnr"], "{:.2f}"),
            fmt_value(ref["ssim"], "{:.4f}"),
            *["–"] * (len(COLUMNS) - 2),  # the paper reports PSNR and SSIM only
            "–",  # faces
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cr_table(docs: Sequence[dict[str, Any]]) -> str:
    """A plain Markdown table of some CR result files (one row per file)."""
    lines = [
        "| method | benchmark | FRD | FRD bootstrap SE | FRD vs masked HR | identity vs bicubic input | PSNR dB | SSIM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        m = d["metrics"]

        def f(key: str, fmt: str, m: dict[str, Any] = m) -> str:
            return "–" if m.get(key) is None else fmt.format(m[key])

        lines.append(
            f"| {d['model'].get('label') or d['model']['name']} | {d['protocol']['benchmark']} | "
            f"{f('frd', '{:.4f}')} | {f('frd_se', '{:.4f}')} | {f('frd_masked_ref', '{:.4f}')} | "
            f"{f('identity_vs_bicubic_input', '{:.4f}')} | {f('psnr', '{:.2f}')} | {f('ssim', '{:.4f}')} |"
        )
    return "\n".join(lines) + "\n"
