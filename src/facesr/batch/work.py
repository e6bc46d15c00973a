"""The per-photo work of a batch, as plain functions over column batches (no Ray here).

Why plain Python: Ray Data calls these on its workers (:mod:`.pipeline`), and tests call them
directly, so the exactly-once and byte-identity rules are checked without a cluster. Two steps:

* :func:`prepare` (CPU): read the input bytes once, hash them, decide whether the photo is
  already done (same input sha256, same settings sha256, output present with the recorded
  sha256) and otherwise decode it (same decoder and pixel limit as ``facesr restore``).
* :class:`Restorer` (CPU or GPU, one per worker so the models load once): the same
  :func:`facesr.restoration.api.restore` call as ``facesr restore``, the same PNG encoding, an
  atomic write, and the manifest row. Any failure is recorded for that photo and the rest go on.

A batch is a ``dict`` of equal-length numpy columns (Ray Data's ``numpy`` batch format).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from facesr.batch.settings import RestoreSettings

#: Columns of the task table the driver builds (all strings; "" when there is no previous row).
TASK_COLUMNS = (
    "input",
    "output",
    "prev_input_sha256",
    "prev_settings_sha256",
    "prev_status",
    "prev_output_sha256",
)
_EMPTY = np.zeros((0, 0, 3), np.uint8)


def _sha256_file(path: str) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def _read_reason(path: str, exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if isinstance(exc, FileNotFoundError):
            return f"{path}: no such file"
        if isinstance(exc, IsADirectoryError):
            return f"{path}: is a folder, not an image"
        return f"{path}: cannot read ({exc.strerror or exc})"
    return str(exc).splitlines()[0].replace("<bytes>", path, 1)


def prepare(batch: dict[str, np.ndarray], settings_sha256: str, max_pixels: int) -> dict[str, np.ndarray]:
    """Hash, skip-or-decode each photo. Adds ``status`` (todo/skipped/failed), ``reason``,
    ``input_sha256``, ``pixels`` (H x W x 3 uint8; empty unless todo) and ``t_prepare``."""
    from facesr.io import IMAGE_EXTENSIONS, MAX_FILE_BYTES, read_image

    n = len(batch["input"])
    status, reason, sha, pixels, took = [], [], [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        path = str(batch["input"][i])
        st, why, digest, arr = "todo", "", "", _EMPTY
        try:
            size = Path(path).stat().st_size
            if size > MAX_FILE_BYTES:
                raise ValueError(
                    f"{path}: file is {size / (1 << 20):,.0f} MiB; the limit is {MAX_FILE_BYTES >> 20} MiB"
                )
            data = Path(path).read_bytes()
        except (OSError, ValueError) as exc:
            st, why = "failed", _read_reason(path, exc)
        else:
            digest = hashlib.sha256(data).hexdigest()
            out = str(batch["output"][i])
            if (
                str(batch["prev_status"][i]) == "ok"
                and str(batch["prev_input_sha256"][i]) == digest
                and str(batch["prev_settings_sha256"][i]) == settings_sha256
                and _sha256_file(out) == str(batch["prev_output_sha256"][i])
            ):
                st = "skipped"
            elif Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
                suffix = Path(path).suffix or "(none)"
                st, why = (
                    "failed",
                    f"{path}: unsupported file type {suffix!r}; use {', '.join(IMAGE_EXTENSIONS)}",
                )
            elif not data:
                st, why = "failed", f"{path}: empty file (0 bytes)"
            else:
                try:
                    arr = read_image(data, max_pixels=max_pixels)
                except Exception as exc:  # ImageReadError and anything a hostile file provokes
                    st, why = "failed", _read_reason(path, exc)
        status.append(st)
        reason.append(why)
        sha.append(digest)
        pixels.append(arr)
        took.append(time.perf_counter() - t0)
    out_pixels = np.empty(n, dtype=object)
    for i, arr in enumerate(pixels):  # one by one: a list of equal-shape arrays would broadcast
        out_pixels[i] = arr
    return {
        **{c: batch[c] for c in TASK_COLUMNS},
        "status": np.array(status, dtype=object),
        "reason": np.array(reason, dtype=object),
        "input_sha256": np.array(sha, dtype=object),
        "pixels": out_pixels,
        "t_prepare": np.array(took, dtype=np.float64),
    }


def _ray_node_id() -> str:
    """The Ray node this worker runs on ("" outside Ray), for the manifest's ``node`` column."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except ImportError:
        return ""


class Restorer:
    """One per worker: restores the photos of a batch and writes them (models load once)."""

    def __init__(self, settings: RestoreSettings) -> None:
        self.settings = settings
        self.kwargs = settings.restore_kwargs()
        self.sha = settings.sha256
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.node = _ray_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``status`` and ``row`` (the manifest row as JSON) per photo; the pixels stop here."""
        rows = [self._one({k: batch[k][i] for k in batch}) for i in range(len(batch["input"]))]
        return {
            "status": np.array([r["status"] for r in rows], dtype=object),
            "row": np.array([json.dumps(r, separators=(",", ":")) for r in rows], dtype=object),
        }

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        path, out = str(item["input"]), str(item["output"])
        row: dict[str, Any] = {
            "input": path,
            "input_sha256": str(item["input_sha256"]),
            "settings_sha256": self.sha,
            "status": str(item["status"]),
            "reason": str(item["reason"]),
            "output": "",
            "output_sha256": "",
            "faces": {},
            "timings_s": {"prepare": round(float(item["t_prepare"]), 4)},
            "warnings": [],
            "notes": [],
            "upscale": 0,
            "size": [],
            "worker": self.worker,
            "node": self.node,
            "finished": 0.0,
        }
        if row["status"] == "skipped":
            row.update(output=out, output_sha256=str(item["prev_output_sha256"]))
            return row
        if row["status"] == "todo":
            self._restore(item["pixels"], out, row)
        row["finished"] = round(time.time(), 3)
        return row

    def _restore(self, pixels: np.ndarray, out: str, row: dict[str, Any]) -> None:
        from facesr.errors import FacesrError
        from facesr.io import atomic_write_bytes, encode_image
        from facesr.restoration.api import restore

        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                res = restore(np.asarray(pixels, dtype=np.uint8), **self.kwargs)
        except FacesrError as exc:  # ModelError included: recorded per photo, the batch goes on
            row.update(status="failed", reason=f"{row['input']}: {str(exc).splitlines()[0]}")
            return
        except Exception as exc:  # a bug or an out-of-memory must not stop the other photos
            row.update(status="failed", reason=f"{row['input']}: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        row["warnings"] = list(res.warnings)
        row["notes"] = list(res.notes)
        row["timings_s"].update({k: round(v, 4) for k, v in res.timings.items()})
        faces = [f.status for f in res.faces]
        row["faces"] = {s: faces.count(s) for s in ("restored", "kept", "skipped")} | {"found": len(faces)}
        row["upscale"] = int(res.upscale)
        row["size"] = [int(res.image.shape[1]), int(res.image.shape[0])]
        # Like ``facesr restore``, every readable photo is written, faces restored or not.
        t = time.perf_counter()
        data = encode_image(res.image, "PNG")  # what facesr.io.write_image does for a .png path
        row["timings_s"]["encode"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()
        try:
            atomic_write_bytes(out, data)
        except OSError as exc:
            row.update(status="failed", reason=f"{out}: cannot write output ({exc.strerror or exc})")
            return
        row["timings_s"]["write"] = round(time.perf_counter() - t, 4)
        row["timings_s"]["worker_total"] = round(time.perf_counter() - t0, 4)
        row.update(status="ok", output=out, output_sha256=hashlib.sha256(data).hexdigest())


#: Keys of a manifest row, in the order documented in docs/scale-out.md.
ROW_KEYS = (
    "input",
    "input_sha256",
    "settings_sha256",
    "status",
    "reason",
    "output",
    "output_sha256",
    "faces",
    "timings_s",
    "warnings",
    "notes",
    "upscale",
    "size",
    "worker",
    "node",
    "finished",
)
