"""``facesr.restore(image)``: the one-call API behind ``facesr restore``.

Why one function: the CLI, the demo and library users must get byte-identical results, so the
CLI is a thin loop around :func:`restore` (reading files, writing outputs and the report).
Models and the detector are cached per process, so calling it on many photos loads them once.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from facesr.errors import FacesrError, ImageReadError, ModelError
from facesr.io import MAX_PIXELS, as_rgb_array
from facesr.restoration.detect import DetectOptions, Face, detect_faces
from facesr.restoration.pipeline import (
    align_face,
    choose_scale,
    colour_match,
    paste_back,
    run_model,
    to_tensor,
)

#: Shipped JDSR models used by default for masked faces (when installed), by scale.
DEFAULT_MODELS = {4: "jdsr-lite-x4", 8: "jdsr-lite-x8"}
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class FaceResult:
    """One face: where it is, what happened to it, and (if restored) its aligned input and output."""

    face: Face
    model: str = ""
    scale: int = 0
    lr: np.ndarray | None = None  # aligned model input, uint8 lr x lr x 3
    sr: np.ndarray | None = None  # restored face, uint8 128 x 128 x 3

    @property
    def status(self) -> str:
        return self.face.status

    @property
    def reason(self) -> str:
        return self.face.reason

    def to_json(self) -> dict[str, Any]:
        out = self.face.to_json()
        if self.model:
            out.update(model=self.model, scale=self.scale)
        return out


@dataclass
class RestoreResult:
    """The restored photo (uint8 RGB) and the per-face results; ``timings`` in seconds."""

    image: np.ndarray
    faces: list[FaceResult]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def restored(self) -> list[FaceResult]:
        return [f for f in self.faces if f.status == "restored"]

    @property
    def skipped(self) -> list[FaceResult]:
        return [f for f in self.faces if f.status == "skipped"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device that is unavailable is an error."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacesrError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FacesrError("--device mps: Apple MPS is not available (use --device auto or cpu)")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise FacesrError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def model_installed(name: str) -> bool:
    """Whether a zoo model's weights file is present (without hashing it)."""
    from facesr.zoo import _read_zoo

    entry = _read_zoo().get(name)
    return entry is not None and entry.path.is_file()


@lru_cache(maxsize=16)
def _cached_model(name: str, scale: int | None, device: str, engine: str = "torch") -> torch.nn.Module:
    from facesr.restoration.engine import wrap
    from facesr.zoo import load_model

    return wrap(load_model(name, scale=scale, device=device), engine)


@lru_cache(maxsize=4)
def _cached_detector(device: str) -> Any:
    from facesr.restoration.mtcnn import load_mtcnn

    return load_mtcnn(device)


class ModelPicker:
    """Which model restores a face of a given scale; loads lazily and records fallbacks once."""

    def __init__(self, model: str | None, device: torch.device, engine: str = "torch") -> None:
        self.model = None if model in (None, "", "auto") else str(model)
        self.device = device
        self.engine = engine  # "torch" or "ort" (already resolved, see facesr.restoration.engine)
        self.warnings: list[str] = []

    def name_for(self, scale: int) -> tuple[str, int | None]:
        if self.model is None:
            name = DEFAULT_MODELS[scale]
            if model_installed(name):
                return name, scale
            msg = f"{name} is not installed; using bicubic-x{scale} for x{scale} faces"
            if msg not in self.warnings:
                self.warnings.append(msg)
                warnings.warn(msg, UserWarning, stacklevel=3)
            return f"bicubic-x{scale}", scale
        if self.model == "bicubic":
            return f"bicubic-x{scale}", scale
        return self.model, None

    def fixed(self) -> torch.nn.Module | None:
        """The one model every face goes to when ``--model`` names one (else None)."""
        if self.model is None or self.model == "bicubic":
            return None
        return self.get(self.model, None)

    def get(self, name: str, scale: int | None) -> torch.nn.Module:
        return _cached_model(name, scale, str(self.device), self.engine)


def _as_array(image: Any, max_pixels: int) -> np.ndarray:
    """Path / bytes / PIL image / numpy array -> ``H x W x 3`` uint8 RGB (rules: ``facesr.io.as_rgb_array``)."""
    return as_rgb_array(image, max_pixels=max_pixels)


def restore(
    image: Any,
    model: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 16,
    aligned: bool = False,
    *,
    detect: DetectOptions | None = None,
    max_pixels: int = MAX_PIXELS,
    keep_faces: bool = True,
    engine: str = "auto",
) -> RestoreResult:
    """Restore every face in ``image`` and paste it back (or, with ``aligned``, the whole crop).

    ``model``: None/"auto" picks ``jdsr-lite-x4``/``-x8`` per face size (bicubic with a warning
    until they are installed); "bicubic"; or any zoo name / safetensors path (e.g. ``cr-x4`` for
    genuine unmasked faces). ``engine``: ``auto`` runs the restorer with ONNX Runtime on the CPU in
    fp32 when it is installed (several times faster at batch 1, same output within float rounding;
    :mod:`facesr.restoration.engine`), else PyTorch; ``torch`` / ``ort`` force one. Raises :class:`~facesr.errors.FacesrError` subclasses for bad input;
    an image without a usable face is returned unchanged with ``faces`` saying why.
    """
    if precision not in PRECISIONS:
        raise FacesrError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if batch_size < 1:
        raise FacesrError("batch size must be at least 1")
    t0 = time.perf_counter()
    arr = _as_array(image, max_pixels)
    dev = resolve_device(device)
    from facesr.restoration.engine import resolve_engine

    picker = ModelPicker(model, dev, resolve_engine(engine, dev, precision))
    timings: dict[str, float] = {"read": time.perf_counter() - t0}
    if aligned:
        return _restore_aligned(arr, picker, precision, batch_size, timings)

    t = time.perf_counter()
    faces = detect_faces(arr, _cached_detector(str(dev)), detect)
    timings["detect"] = time.perf_counter() - t
    results = [FaceResult(face=f) for f in faces]
    out = arr.copy()
    fell_back = False
    todo = [r for r in results if r.face.status == "ok"]
    if todo:
        t = time.perf_counter()
        fixed = picker.fixed()
        groups: dict[tuple[str, int | None], list[FaceResult]] = {}
        for r in todo:
            key = (
                (fixed.name, None)
                if fixed is not None
                else picker.name_for(choose_scale(r.face.eye_distance))
            )
            groups.setdefault(key, []).append(r)
        photo = to_tensor(arr, dev)
        timings["align"] = timings["restore"] = 0.0
        for (name, scale), members in groups.items():
            net = fixed if fixed is not None else picker.get(name, scale)
            ta = time.perf_counter()
            lr = torch.cat([align_face(photo, r.face.landmarks, net.lr_size) for r in members])
            timings["align"] += time.perf_counter() - ta
            tr = time.perf_counter()
            sr, fb = run_model(net, lr, precision, batch_size)
            fell_back |= fb
            sr = colour_match(sr, lr)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            timings["restore"] += time.perf_counter() - tr
            for i, r in enumerate(members):
                r.model, r.scale = net.name, net.scale
                r.face.status = "restored"
                if keep_faces:
                    r.lr = _to_uint8(lr[i])
                    r.sr = _to_uint8(sr[i])
                r._sr_tensor = sr[i : i + 1]  # type: ignore[attr-defined]
        t = time.perf_counter()
        for r in todo:  # paste in detection order (best score first, so it ends on top)
            paste_back(out, r._sr_tensor, r.face.landmarks)  # type: ignore[attr-defined]
            del r._sr_tensor  # type: ignore[attr-defined]
        timings["paste"] = time.perf_counter() - t
        timings["align+restore+paste"] = time.perf_counter() - t0 - timings["read"] - timings["detect"]
    timings["total"] = time.perf_counter() - t0
    warns = list(picker.warnings)
    if fell_back:
        warns.append(f"{precision} output was not finite; re-ran in fp32")
    return RestoreResult(image=out, faces=results, timings=timings, warnings=warns)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def _restore_aligned(
    arr: np.ndarray, picker: ModelPicker, precision: str, batch_size: int, timings: dict[str, float]
) -> RestoreResult:
    """An aligned face crop (template framing): resize to the model's LR size and restore it."""
    import torch.nn.functional as F

    from facesr.restoration.detect import TEMPLATE_EYE_DISTANCE_128

    t = time.perf_counter()
    h, w = arr.shape[:2]
    if abs(h - w) > 0.02 * max(h, w):
        raise ImageReadError(f"--aligned expects square face crops, got {w}x{h}")
    fixed = picker.fixed()
    eye = TEMPLATE_EYE_DISTANCE_128 * w / 128.0
    if fixed is not None:
        net = fixed
    else:
        name, scale = picker.name_for(choose_scale(eye))
        net = picker.get(name, scale)
    x = to_tensor(arr, picker.device)
    lr = (
        F.interpolate(
            x, size=(net.lr_size, net.lr_size), mode="bicubic", align_corners=False, antialias=True
        ).clamp(0, 1)
        if (h, w) != (net.lr_size, net.lr_size)
        else x
    )
    sr, fell_back = run_model(net, lr, precision, batch_size)
    timings["restore"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    face = Face(
        index=0,
        box=[0.0, 0.0, float(w), float(h)],
        score=1.0,
        landmarks=np.zeros((5, 2)),
        eye_distance=eye,
        sharpness=0.0,
        status="restored",
    )
    fr = FaceResult(face=face, model=net.name, scale=net.scale, lr=_to_uint8(lr[0]), sr=_to_uint8(sr[0]))
    warns = list(picker.warnings) + (
        [f"{precision} output was not finite; re-ran in fp32"] if fell_back else []
    )
    return RestoreResult(image=fr.sr, faces=[fr], timings=timings, warnings=warns)


__all__ = ["FaceResult", "ModelError", "RestoreResult", "resolve_device", "restore"]
