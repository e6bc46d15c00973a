"""The per-photo work of a batch, as plain functions over column batches (no Ray here).

Why plain Python: Ray Data calls these on its workers (:mod:`.pipeline`), and tests call them
directly, so the exactly-once and byte-identity rules are checked without a cluster. Two steps:

* :func:`prepare` (CPU tasks): read the input bytes once, hash them, decide whether the photo is
  already done (same input sha256, same settings sha256, output present with the recorded
  sha256), otherwise decode it (same decoder and pixel limit as ``facesr restore``) and find its
  faces (the same detector, on the CPU, with the same options as ``facesr restore --device
  cpu``). Decoding and detection are the CPU-bound part of a photo, so they scale with CPU
  workers and never hold a GPU worker.
* :class:`Restorer` (CPU or GPU, one per worker so the models load once): the same
  :func:`facesr.restoration.api.restore` call as ``facesr restore``, given the faces found by
  :func:`prepare` instead of detecting again (:class:`_GivenFaces`), the same PNG encoding, an
  atomic write, and the manifest row. Any failure is recorded for that photo and the rest go on.

A batch is a ``dict`` of equal-length numpy columns (Ray Data's ``numpy`` batch format).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
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


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads (restored after: tests call the workers in-process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def detect(arr: np.ndarray, min_face: float) -> bytes:
    """The faces ``facesr restore --device cpu`` finds in ``arr``, as :func:`faces_to_bytes` (exact floats)."""
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import DetectOptions, detect_faces

    return faces_to_bytes(detect_faces(arr, _cached_detector("cpu"), DetectOptions(min_size=min_face)))


def faces_to_bytes(faces: list[Any]) -> bytes:
    """Detected faces as JSON between pipeline stages: no pickle (nothing that can run code is ever
    deserialised in src/), and exact, since JSON writes each float64 as its shortest round-trip repr."""
    rows = []
    for f in faces:
        rows.append(
            {
                "index": int(f.index),
                "box": [float(v) for v in f.box],
                "score": float(f.score),
                "landmarks": np.asarray(f.landmarks).tolist(),
                "landmarks_dtype": str(np.asarray(f.landmarks).dtype),
                "eye_distance": float(f.eye_distance),
                "sharpness": float(f.sharpness),
                "status": f.status,
                "reason": f.reason,
                "extra": {
                    k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in f.extra.items()
                },
            }
        )
    return json.dumps(rows).encode("utf-8")


def faces_from_bytes(data: bytes) -> list[Any]:
    """Inverse of :func:`faces_to_bytes` (bit-identical floats and landmark dtype)."""
    from facesr.restoration.detect import Face

    out = []
    for r in json.loads(data.decode("utf-8")):
        lm = np.asarray(r.pop("landmarks"), dtype=np.dtype(r.pop("landmarks_dtype")))
        out.append(Face(landmarks=lm, **r))
    return out


def prepare(
    batch: dict[str, np.ndarray],
    settings_sha256: str,
    max_pixels: int,
    min_face: float | None = None,
    threads: int = 1,
) -> dict[str, np.ndarray]:
    """Hash, skip-or-decode (and with ``min_face``, detect) each photo. Adds ``status``
    (todo/skipped/failed), ``reason``, ``input_sha256``, ``pixels`` (H x W x 3 uint8; empty unless
    todo), ``faces`` (:func:`faces_to_bytes` of the :class:`~facesr.restoration.detect.Face` list; empty bytes when not
    detected here: ``--aligned`` crops are framing-checked by the restore call itself),
    ``t_prepare`` (read, hash, decode) and ``t_detect``."""
    from facesr.io import IMAGE_EXTENSIONS, MAX_FILE_BYTES, read_image

    n = len(batch["input"])
    status, reason, sha, pixels, took, faces, took_detect = [], [], [], [], [], [], []
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
        took.append(time.perf_counter() - t0)
        found, t1 = b"", time.perf_counter()
        if st == "todo" and min_face is not None:
            try:
                with torch_threads(threads):
                    found = detect(arr, min_face)
            except Exception:  # left to the restore call, which records the reason like facesr restore
                found = b""
        took_detect.append(time.perf_counter() - t1)
        status.append(st)
        reason.append(why)
        sha.append(digest)
        pixels.append(arr)
        faces.append(found)
    out_pixels = np.empty(n, dtype=object)
    for i, arr in enumerate(pixels):  # one by one: a list of equal-shape arrays would broadcast
        out_pixels[i] = arr
    return {
        **{c: batch[c] for c in TASK_COLUMNS},
        "status": np.array(status, dtype=object),
        "reason": np.array(reason, dtype=object),
        "input_sha256": np.array(sha, dtype=object),
        "pixels": out_pixels,
        "faces": np.array(faces, dtype=object),
        "t_prepare": np.array(took, dtype=np.float64),
        "t_detect": np.array(took_detect, dtype=np.float64),
    }


class _GivenFaces:
    """Lets the restore call use the faces :func:`prepare` found instead of detecting again.

    :func:`facesr.restoration.api.restore` takes no precomputed faces, and looks them up through
    its module's ``detect_faces``. Each restore worker swaps that name for an instance of this
    class once; :meth:`given` arms it for one photo, and the first lookup made for that very array
    (same shape and pixels) during that call gets the armed faces. Any other lookup - another
    array, a second lookup, no faces armed - goes to the real detector, so the results cannot
    differ from ``facesr restore``, only the time taken. Ray runs one call at a time on an actor.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.armed: tuple[np.ndarray, list[Any]] | None = None
        self.used = 0  # lookups answered from the armed faces (tests check the swap works)

    def __call__(self, image: np.ndarray, detector: Any, opts: Any = None) -> Any:
        armed, self.armed = self.armed, None
        if armed is not None and armed[0].shape == image.shape and np.array_equal(armed[0], image):
            self.used += 1
            return armed[1]
        return self.real(image, detector, opts)

    @contextlib.contextmanager
    def given(self, image: np.ndarray, faces: list[Any] | None) -> Iterator[None]:
        self.armed = None if faces is None else (image, faces)
        try:
            yield
        finally:
            self.armed = None

    @classmethod
    def install(cls) -> _GivenFaces:
        from facesr.restoration import api

        if not isinstance(api.detect_faces, cls):
            api.detect_faces = cls(api.detect_faces)
        return api.detect_faces


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
        self.given_faces = _GivenFaces.install()

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
            "timings_s": {
                "prepare": round(float(item["t_prepare"]), 4),
                "detect": round(float(item.get("t_detect", 0.0)), 4),
            },
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
            given = item.get("faces", b"")
            self._restore(item["pixels"], faces_from_bytes(given) if len(given) else None, out, row)
        row["finished"] = round(time.time(), 3)
        return row

    def _restore(self, pixels: np.ndarray, faces: list[Any] | None, out: str, row: dict[str, Any]) -> None:
        from facesr.errors import FacesrError
        from facesr.io import atomic_write_bytes, encode_image
        from facesr.restoration.api import restore

        t0 = time.perf_counter()
        arr = np.asarray(pixels, dtype=np.uint8)
        try:
            with (
                warnings.catch_warnings(record=True),
                self.given_faces.given(arr, faces),
                torch_threads(self.settings.threads),
            ):
                warnings.simplefilter("always")
                res = restore(arr, **self.kwargs)
        except FacesrError as exc:  # ModelError included: recorded per photo, the batch goes on
            row.update(status="failed", reason=f"{row['input']}: {str(exc).splitlines()[0]}")
            return
        except Exception as exc:  # a bug or an out-of-memory must not stop the other photos
            row.update(status="failed", reason=f"{row['input']}: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        row["warnings"] = list(res.warnings)
        row["notes"] = list(res.notes)
        # The detection happened in prepare (timed there); restore's own "detect" is the hand-over.
        row["timings_s"].update(
            {k: round(v, 4) for k, v in res.timings.items() if k != "detect" or faces is None}
        )
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
