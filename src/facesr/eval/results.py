"""Result files (format ``facesr-eval/2``): the one place that writes, names and reads them.

Every benchmark runner (frozen JDSR sets in :mod:`facesr.eval.runner`, the CR sets in
:mod:`facesr.eval.genuine`) returns a document plus private ``_``-prefixed entries; :func:`write_result`
writes the JSON, a one-table Markdown file and the sample strips from which ``facesr report`` builds its
grids, and :func:`load_results` is what ``facesr report`` reads back. The format is documented in
``docs/evaluation.md``. In memory a document's ``per_image`` is a list of per-face records (what the
runners build); in the file it is stored column-wise, one JSON array per value (``facesr-eval/1`` wrote
one record per face, which repeated every key name on every line), and :func:`loads_result` turns the
columns back into records.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from facesr.errors import FacesrError
from facesr.provenance import code_revision, hardware, software, utc_now

FORMAT = "facesr-eval/2"


def document(
    *,
    model: dict[str, Any],
    protocol: dict[str, Any],
    metrics: dict[str, Any],
    per_image: list[dict[str, Any]],
    wall_time_s: float,
    device: Any,
    command: str | None,
    run: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    hr_embeddings: str | None = None,
) -> dict[str, Any]:
    """A ``facesr-eval/2`` document with its provenance block: the same skeleton for every benchmark.

    Code revision, date, hardware, software and command are added here so that no runner can forget
    one. ``run`` holds a runner's own figures (``faces_per_s``, ``batch_size``); ``extra`` holds
    benchmark-specific top-level blocks (CR's ``frd_bootstrap``), placed after the metrics;
    ``hr_embeddings`` says whether the ground truth's embeddings came from the cache.
    """
    import torch

    return {
        "format": FORMAT,
        "model": model,
        "protocol": protocol,
        "metrics": metrics,
        **(extra or {}),
        "verification": verification,
        "run": {
            "code_revision": code_revision(),
            "date": utc_now(),
            "wall_time_s": wall_time_s,
            **(run or {}),
            "hardware": hardware(torch.device(device)),
            "software": software(),
            "command": command,
            **({"hr_embeddings": hr_embeddings} if hr_embeddings is not None else {}),
        },
        "per_image": per_image,
    }


def result_stem(result: dict[str, Any]) -> str:
    """File stem ``<benchmark>__<model>[__clean][__partial<N>]``: one file per benchmark, model and input.

    Partial runs (``--limit``) get their own name so a smoke test never overwrites a complete result.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(result["model"]["name"]))
    stem = f"{result['protocol']['benchmark']}__{name}"
    stem += "__clean" if result["model"].get("input") == "clean" else ""
    if not result["protocol"].get("complete", True):
        stem += f"__partial{result['protocol']['n_faces']}"
    return stem


def markdown_table(results: list[dict[str, Any]]) -> str:
    """A plain Markdown table of the mean metrics of some results (CR benchmarks get their own columns)."""
    from facesr.eval.names import CR_BENCHMARKS
    from facesr.eval.tables import cr_table, format_rows

    if results and all(d["protocol"]["benchmark"] in CR_BENCHMARKS for d in results):
        return cr_table(results)
    return format_rows(results)


#: Significant digits of the per-image values written to a result file (``format(x, ".6g")``): 1e-4 dB of
#: a 10-99 dB PSNR, 1e-6 of an SSIM or identity cosine in [0.1, 1). The runners compute the means in
#: ``metrics`` from the unrounded values; only the file's ``per_image`` values are rounded.
PER_IMAGE_DIGITS = 6


def _per_image_value(v: Any) -> Any:
    """A per-image value as written: a float to :data:`PER_IMAGE_DIGITS` significant digits, else as is."""
    return float(format(v, f".{PER_IMAGE_DIGITS}g")) if isinstance(v, float) else v


def per_image_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per-face records -> one list per key (keys in first-seen order; a face without a key gets None),
    floats rounded to :data:`PER_IMAGE_DIGITS` significant digits."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return {k: [_per_image_value(r.get(k)) for r in rows] for k in keys}


def per_image_rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The inverse of :func:`per_image_columns`: one record per face."""
    n = {len(v) for v in columns.values()}
    if len(n) > 1:
        raise FacesrError(f"per_image columns of different lengths: {sorted(n)}")
    return [dict(zip(columns, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]


def dumps_result(doc: dict[str, Any]) -> str:
    """JSON text of a result: indented, except ``per_image``, written column-wise with one compact line
    per value (keeps files small), its floats rounded to :data:`PER_IMAGE_DIGITS` significant digits."""
    rest = {k: v for k, v in doc.items() if k != "per_image"}
    head = json.dumps(rest, indent=1, allow_nan=False)[:-2]  # drop the closing "\n}"
    cols = ",\n".join(
        f"  {json.dumps(k)}: " + json.dumps(v, separators=(",", ":"), allow_nan=False)
        for k, v in per_image_columns(doc.get("per_image", [])).items()
    )
    return f'{head},\n "per_image": {{\n{cols}\n }}\n}}\n' if cols else f'{head},\n "per_image": {{}}\n}}\n'


def loads_result(text: str, source: str = "result") -> dict[str, Any]:
    """A result file's text -> its document, ``per_image`` as per-face records (what the runners built,
    floats rounded as written); an error if it is not a :data:`FORMAT` document."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise FacesrError(f"{source}: not a readable JSON result ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FacesrError(f"{source}: not a {FORMAT} result file")
    doc["per_image"] = per_image_rows(doc.get("per_image") or {})
    return doc


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One result file (see :func:`loads_result`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FacesrError(f"{p}: not a readable JSON result ({exc})") from None
    return loads_result(text, str(p))


#: Key of the method's own sample strip in a result's private ``_strips`` (written as ``<stem>.png``).
OUTPUTS = "outputs"


def write_result(result: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``<stem>.json``, ``<stem>.md`` and the sample strips; returns the JSON path.

    ``result["_strips"]`` maps a strip's name to a uint8 image: :data:`OUTPUTS` is this method's
    sample faces (``samples/<stem>.png``); any other name is shared by every method on the benchmark
    (``samples/<benchmark>__<name>.png``: the inputs, the ground truth). Other ``_`` entries are dropped.
    """
    from facesr.io import atomic_write_text, write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {k: v for k, v in result.items() if not k.startswith("_")}
    stem = result_stem(doc)
    path = out / f"{stem}.json"
    atomic_write_text(path, dumps_result(doc))
    atomic_write_text(out / f"{stem}.md", markdown_table([doc]))
    strips: dict[str, np.ndarray] = result.get("_strips") or {}
    if strips:
        sdir = out / "samples"
        sdir.mkdir(exist_ok=True)
        bench = doc["protocol"]["benchmark"]
        for name, strip in strips.items():
            write_image(sdir / (f"{stem}.png" if name == OUTPUTS else f"{bench}__{name}.png"), strip)
    return path


def load_results(results_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All :data:`FORMAT` JSON files of a folder (:func:`read_result`), sorted by file name; others are an
    error."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FacesrError(f"results folder {str(folder)!r} not found")
    docs = []
    for p in sorted(folder.glob("*.json")):
        doc = read_result(p)
        doc["_file"] = p.name
        docs.append(doc)
    return docs
