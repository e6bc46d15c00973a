"""``facesr.restore(image)``: the one-call API behind ``facesr restore``.

Why one function: the CLI, the demo and library users must get byte-identical results, so the
CLI is a thin loop around :func:`restore` (reading files, writing outputs and the report).
Models and the detector are cached per process, so calling it on many photos loads them once.

What happens to a photo (docs/restore.md): detect faces on a padded copy; for each face, pick
the model whose input is closest to the face's own size (:func:`~facesr.restoration.pipeline.choose_lr_size`),
read whether it wears a mask from the denoiser's noise map, restore it, and check that the
result, reduced back to the input's size, still agrees with the input outside the mask (else
the face is kept). The whole photo is enlarged ``upscale`` times by the background upsampler
and every restored face is pasted at that resolution. Every readable photo gives an image.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facesr.errors import FacesrError, ModelError
from facesr.geometry import template
from facesr.io import MAX_PIXELS, as_rgb_array
from facesr.pixels import quantise
from facesr.restoration import mask as maskmod
from facesr.restoration.background import BICUBIC, BackgroundUpsampler, network_factor, resize
from facesr.restoration.detect import DETECT_MAX_PIXELS, DetectOptions, Face, detect_faces, detection_scale
from facesr.restoration.pipeline import (
    MAX_REDUCE,
    align_face,
    choose_lr_size,
    colour_match,
    is_gray,
    native_frame,
    nonfinite_faces,
    paste_back,
    run_model,
    scale_landmarks,
    to_gray,
    to_tensor,
)

#: The face models of ``model="auto"``, by scale (input = 128 / scale px). Read, never copied:
#: the per-face choice works on whatever scales are listed here.
DEFAULT_MODELS = {2: "jdsr-fast-x2", 4: "jdsr-fast-x4", 8: "jdsr-fast-x8"}
PRECISIONS = ("fp32", "bf16", "fp16")
#: ``upscale`` values; the default 2 is GFPGAN's: a 20 px face becomes 40 px, where restored
#: detail shows, while the output stays 4x the input's pixels (x4 is 16x: a 12 MP photo would
#: become 190 MP) and the bicubic background costs ~0.1 s per 1080p photo (docs/restore.md).
UPSCALES = (1, 2, 4, 8)
DEFAULT_UPSCALE = 2
#: Do no harm: a restored face, reduced back to its input frame, whose mean absolute difference
#: (0-1) from the input outside the lower face (where a mask may have been removed) is above
#: this is not pasted (benchmarks/restore_checks.py, docs/restore.md).
MAX_DISAGREEMENT = 0.08
#: Do no harm, lower face: a restored face whose lower face (the mask box), reduced back to its
#: input frame, is brighter than the input's by more than this (mean BT.601 luma, 0-1) is not
#: pasted either. Why: the models paint a skin-coloured patch wherever their denoiser sees a mask,
#: and in crowds that is also the hair of the head in front, which the check above leaves out with
#: the mask box (the pink patches of docs/img/restore_before_after.jpg). On 180 hand-checked real
#: faces (benchmarks/restore_harm.py, docs/restore.md): faces with no patch, light masks removed
#: included, -0.27 to +0.03; skin painted over hair, a head or a chin +0.07 to +0.37 (session 4). The
#: cost: a dark mask is kept too (+0.08 to +0.35). 0.06 until session 9, whose models paint one head in
#: a crowd at +0.06: 0.05 catches every labelled harm in all three labellings (sessions 4, 6, 9) and
#: keeps no face without a patch in any (docs/restore.md, "Do no harm").
MAX_LOWER_BRIGHTENING = 0.05
#: Faces aligned and restored at a time (per model): the batch tensors of a photo with thousands of
#: faces stay a few MB (the memory budget, docs/reliability.md).
FACE_CHUNK = 64
#: ``aligned=True``: a crop whose detected landmarks are further than this (RMS, in eye
#: distances) from the template is not template-framed and is restored as a photo instead.
MAX_ALIGNED_ERROR = 0.2


@dataclass
class FaceResult:
    """One face: where it is, what happened to it, and (if restored) its aligned input and output.

    ``status``: restored | kept (the background upsampler's pixels: too large for every model, or
    the restoration disagreed with the input) | skipped (not restorable: low score, too small,
    not a face, too blurred). ``mask``: whether the face wears a mask (None: no noise-map model).
    """

    face: Face
    model: str = ""
    scale: int = 0
    lr: np.ndarray | None = None  # aligned model input, uint8 lr x lr x 3
    sr: np.ndarray | None = None  # restored face, uint8 128 x 128 x 3
    mask: bool | None = None
    mask_score: float | None = None
    native: float = 0.0  # side of the face's 128 template frame in the input photo (px)
    disagreement: float | None = None
    brightening: float | None = None  # lower face, output minus input (mean luma, 0-1)

    @property
    def status(self) -> str:
        return self.face.status

    @property
    def reason(self) -> str:
        return self.face.reason

    def to_json(self) -> dict[str, Any]:
        out = self.face.to_json()
        out["native_px"] = round(self.native, 1)
        if self.model:
            out.update(model=self.model, scale=self.scale)
        out["mask"] = self.mask
        if self.mask_score is not None:
            out["mask_score"] = round(self.mask_score, 3)
        if self.disagreement is not None:
            out["disagreement"] = round(self.disagreement, 4)
        if self.brightening is not None:
            out["lower_brightening"] = round(self.brightening, 4)
        return out


@dataclass
class RestoreResult:
    """The restored photo (uint8 RGB, ``upscale`` times the input) and the per-face results."""

    image: np.ndarray
    faces: list[FaceResult]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    upscale: int = 1
    background: str = BICUBIC
    notes: list[str] = field(default_factory=list)  # what was done instead (aligned fallback, ...)

    @property
    def restored(self) -> list[FaceResult]:
        return [f for f in self.faces if f.status == "restored"]

    @property
    def kept(self) -> list[FaceResult]:
        return [f for f in self.faces if f.status == "kept"]

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


#: One lock for every cached load: two first requests at once (the demo, a threaded caller) load a
#: model or the detector once, instead of twice in parallel (double memory, two ONNX exports).
_LOAD_LOCK = threading.RLock()


def _loaded_once(maxsize: int) -> Any:
    """``lru_cache(maxsize)`` whose calls hold ``_LOAD_LOCK`` (a miss is loaded by one thread only)."""

    def deco(fn: Any) -> Any:
        cached = lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _LOAD_LOCK:
                return cached(*args, **kwargs)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call

    return deco


@_loaded_once(maxsize=16)
def _cached_model(name: str, scale: int | None, device: str, engine: str = "torch") -> torch.nn.Module:
    from facesr.restoration.engine import wrap
    from facesr.zoo import load_model

    return wrap(load_model(name, scale=scale, device=device), engine)


@_loaded_once(maxsize=4)
def _cached_detector(device: str) -> Any:
    from facesr.restoration.mtcnn import load_mtcnn

    return load_mtcnn(device)


@lru_cache(maxsize=8)
def _bicubic(scale: int) -> torch.nn.Module:
    from facesr.zoo import Bicubic, Restorer

    return Restorer(Bicubic(scale), name=f"bicubic-x{scale}", scale=scale)


def _input_size(name: str, scale: int) -> int:
    """A zoo model's input side as the model states it (``ZooEntry.lr_size``); a name the zoo does not
    list (it falls back to bicubic) takes what ``bicubic-x{scale}`` takes."""
    from facesr.zoo import get_entry

    entry = get_entry(name) or get_entry(f"bicubic-x{scale}")
    if entry is None:
        raise ModelError(f"no model {name!r} and no bicubic-x{scale} baseline")
    return int(entry.lr_size)


class ModelPicker:
    """Which models can restore a face, by input size; loads lazily and records fallbacks once."""

    def __init__(self, model: str | None, device: torch.device, engine: str = "torch") -> None:
        self.model = None if model in (None, "", "auto") else str(model)
        self.device = device
        self.engine = engine  # "torch" or "ort" (already resolved, see facesr.restoration.engine)
        self.warnings: list[str] = []

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=4)

    def candidates(self) -> dict[int, tuple[str, int | None]]:
        """``{input px: (model name, scale)}`` of every model a face may go to."""
        if self.model is None:
            out = {}
            for scale, name in sorted(DEFAULT_MODELS.items()):
                size = _input_size(name, scale)
                if not model_installed(name):
                    self._warn(f"{name} is not installed; using bicubic-x{scale} for x{scale} faces")
                    name = f"bicubic-x{scale}"
                out[size] = (name, scale)
            return out
        if self.model == "bicubic":
            return {_input_size(f"bicubic-x{s}", s): (f"bicubic-x{s}", s) for s in sorted(DEFAULT_MODELS)}
        net = self.get(self.model, None)
        return {int(net.lr_size): (self.model, None)}

    def get(self, name: str, scale: int | None) -> torch.nn.Module:
        if name.startswith("bicubic-x") and name[9:].isdigit():
            return _bicubic(int(name[9:])).to(self.device)
        return _cached_model(name, scale, str(self.device), self.engine)


def mask_model(device: str | torch.device = "cpu") -> Any:
    """The PyTorch restorer whose noise map detects masks: the installed default model with a
    denoiser whose input is closest to 32 px (the x4 frame), or None when none is installed."""
    best = None
    for scale, name in sorted(DEFAULT_MODELS.items(), key=lambda kv: abs(_input_size(kv[1], kv[0]) - 32)):
        if model_installed(name):
            net = _cached_model(name, scale, str(torch.device(device)), "torch")
            if maskmod.has_noise_map(net):
                best = net
                break
    return best


@_loaded_once(maxsize=4)
def _cached_background(name: str, device: str) -> BackgroundUpsampler:
    if name == BICUBIC:
        return BackgroundUpsampler()
    from facesr.zoo import load_model

    net = load_model(name, device=device)
    try:
        factor = network_factor(net, device)
    except ValueError as exc:
        raise ModelError(
            f"--bg-upsampler {name}: not an image upsampler ({exc}); use bicubic or a general SR model"
        ) from None
    return BackgroundUpsampler(name=name, net=net, factor=factor, device=device)


def background_upsampler(name: str | None, device: str | torch.device = "cpu") -> BackgroundUpsampler:
    """``bicubic`` (default) or any zoo model / weights file that enlarges an image by an integer factor."""
    return _cached_background(name or BICUBIC, str(torch.device(device)))


def _as_array(image: Any, max_pixels: int) -> np.ndarray:
    """Path / bytes / PIL image / numpy array -> ``H x W x 3`` uint8 RGB (rules: ``facesr.io.as_rgb_array``)."""
    return as_rgb_array(image, max_pixels=max_pixels)


def _check_upscale(upscale: int | None, shape: tuple[int, ...], max_output: int) -> tuple[int, list[str]]:
    """The factor actually used: ``upscale`` (default 2), lowered when the output would be too big."""
    n = DEFAULT_UPSCALE if upscale is None else upscale
    if n not in UPSCALES:
        raise FacesrError(f"upscale must be one of {', '.join(map(str, UPSCALES))}, got {upscale!r}")
    h, w = shape[:2]
    notes = []
    while n > 1 and h * w * n * n > max_output:
        lower = max(u for u in UPSCALES if u < n)
        notes.append(
            f"upscale lowered from {n} to {lower}: a {w * n}x{h * n} output is over the "
            f"{max_output:,}-pixel output limit"
        )
        n = lower
    return n, notes


def _disagreement(sr: torch.Tensor, lr: torch.Tensor, masked: list[bool | None]) -> torch.Tensor:
    """Mean absolute difference (0-1) of ``sr`` reduced to the input frame from ``lr``, per face.

    Both are blurred first (Gaussian, sigma 1 input px): a restorer is meant to remove JPEG
    noise and blur, not to move edges or change colours, so only the latter should count. The
    lower face is left out for faces with a mask (or unknown): that is where a restorer is meant
    to change the input; so is the outer 2 px, where the blur's zero padding fades.
    """
    from facesr.restoration.pipeline import gaussian_blur

    s = lr.shape[-1]
    down = _reduced(sr, s)
    err = (gaussian_blur(down, 1.0) - gaussian_blur(lr, 1.0)).abs().mean(1)  # N x s x s
    y0, y1, x0, x1 = maskmod.lower_face_box(s)
    keep = torch.zeros_like(err, dtype=torch.bool)
    keep[:, 2 : s - 2, 2 : s - 2] = True
    for i, m in enumerate(masked):
        if m is not False:
            keep[i, y0:y1, x0:x1] = False
    return (err * keep).sum((1, 2)) / keep.sum((1, 2))


def _reduced(sr: torch.Tensor, size: int) -> torch.Tensor:
    """The restored faces reduced back to the input frame (antialiased bicubic, as the models' training)."""
    down = F.interpolate(sr, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return down.clamp(0, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _lower_brightening(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """How much brighter the restored lower face (the mask box) is than the input's: mean luma, 0-1, per face."""
    y0, y1, x0, x1 = maskmod.lower_face_box(lr.shape[-1])
    return (_luma(_reduced(sr, lr.shape[-1])) - _luma(lr))[:, 0, y0:y1, x0:x1].mean((1, 2))


def _gray_tensor(x: torch.Tensor) -> torch.Tensor:
    return _luma(x).expand_as(x).contiguous()


def _detect_masks(results: list[FaceResult], photo: np.ndarray, device: torch.device) -> float:
    """Set ``mask`` / ``mask_score`` on every face that is not skipped; returns seconds taken."""
    t = time.perf_counter()
    todo = [r for r in results if r.face.status == "ok"]
    net = mask_model(device) if todo else None
    if net is None:
        return time.perf_counter() - t
    for i in range(0, len(todo), FACE_CHUNK):
        part = todo[i : i + FACE_CHUNK]
        lr = torch.cat([align_face(photo, r.face.landmarks, net.lr_size, device) for r in part])
        scores = maskmod.face_scores(net, lr).tolist()
        for r, sc in zip(part, scores, strict=True):
            r.mask_score, r.mask = float(sc), bool(sc > maskmod.THRESHOLD)
    return time.perf_counter() - t


def _restore_group(
    members: list[FaceResult],
    net: torch.nn.Module,
    photo: np.ndarray,
    precision: str,
    batch_size: int,
    gray: bool,
    keep_faces: bool,
    timings: dict[str, float],
    dev: torch.device,
) -> bool:
    """Align, restore, colour-match and do-no-harm-check the faces that go to one model.

    ``FACE_CHUNK`` faces at a time, and each restored face is kept as uint8 for the paste (49 kB, not
    a 197 kB float tensor), so a photo with thousands of faces stays within the memory budget.
    """
    fell_back = False
    for i in range(0, len(members), FACE_CHUNK):
        fell_back |= _restore_chunk(
            members[i : i + FACE_CHUNK], net, photo, precision, batch_size, gray, keep_faces, timings, dev
        )
    return fell_back


def _restore_chunk(
    members: list[FaceResult],
    net: torch.nn.Module,
    photo: np.ndarray,
    precision: str,
    batch_size: int,
    gray: bool,
    keep_faces: bool,
    timings: dict[str, float],
    dev: torch.device,
) -> bool:
    ta = time.perf_counter()
    lr = torch.cat([align_face(photo, r.face.landmarks, net.lr_size, dev) for r in members])
    timings["align"] = timings.get("align", 0.0) + time.perf_counter() - ta
    tr = time.perf_counter()
    sr, fell_back = run_model(net, lr, precision, batch_size)
    bad = nonfinite_faces(sr)
    if any(bad):  # refused below; zeros keep the checks' arithmetic free of NaN
        sr = torch.nan_to_num(sr, nan=0.0)
    sr = colour_match(sr, lr)
    if gray:
        sr = _gray_tensor(sr)
    if sr.device.type == "cuda":
        torch.cuda.synchronize()
    timings["restore"] = timings.get("restore", 0.0) + time.perf_counter() - tr
    errs = _disagreement(sr, lr, [r.mask for r in members]).tolist()
    brighter = _lower_brightening(sr, lr).tolist()
    for i, r in enumerate(members):
        r.model, r.scale, r.disagreement = net.name, net.scale, float(errs[i])
        r.brightening = float(brighter[i])
        sr_u8 = quantise(sr[i : i + 1])[0]
        if keep_faces:
            r.lr, r.sr = quantise(lr[i : i + 1])[0], sr_u8
        if bad[i]:
            r.face.status = "kept"
            r.face.reason = f"model {net.name} gave NaN or inf for this face (also in fp32); background kept"
        elif errs[i] > MAX_DISAGREEMENT:
            r.face.status = "kept"
            r.face.reason = (
                f"restoration disagrees with its input (mean difference {errs[i]:.3f} > "
                f"{MAX_DISAGREEMENT} outside the mask); background kept"
            )
        elif brighter[i] > MAX_LOWER_BRIGHTENING:
            r.face.status = "kept"
            r.face.reason = (
                f"restoration paints the lower face brighter than its input (mean luma +{brighter[i]:.3f} > "
                f"{MAX_LOWER_BRIGHTENING}: skin over hair, another head or a dark mask); background kept"
            )
        else:
            r.face.status = "restored"
            r._sr_u8 = sr_u8  # type: ignore[attr-defined]
    return fell_back


def restore(
    image: Any,
    model: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 16,
    aligned: bool = False,
    *,
    upscale: int | None = None,
    bg_upsampler: str | None = BICUBIC,
    detect: DetectOptions | None = None,
    max_pixels: int = MAX_PIXELS,
    max_output_pixels: int | None = None,
    keep_faces: bool = True,
    engine: str = "auto",
) -> RestoreResult:
    """Restore every face in ``image``, enlarge the photo ``upscale`` times and paste the faces in.

    ``model``: None/"auto" picks per face, from :data:`DEFAULT_MODELS`, the model whose input is
    closest to the face's own size (bicubic with a warning for models not installed); "bicubic";
    or any zoo name / safetensors path (every face to it). ``upscale``: 1, 2, 4 or 8 (default 2;
    lowered with a note when the output would exceed ``max_output_pixels``, default
    ``max_pixels``). ``bg_upsampler``: "bicubic" or a zoo general-SR model (tiled).
    ``aligned``: ``image`` is a template-framed face crop (checked; see :func:`_restore_aligned`).
    ``engine``: ``auto`` runs the face restorer with ONNX Runtime on the CPU in fp32 when it is
    installed, else PyTorch. Raises :class:`~facesr.errors.FacesrError` subclasses for bad input
    only: a photo without a restorable face is returned enlarged, with ``faces`` saying why.
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
    bg = background_upsampler(bg_upsampler, dev)
    timings: dict[str, float] = {"read": time.perf_counter() - t0}
    if aligned:
        return _restore_aligned(
            arr,
            picker,
            bg,
            precision,
            batch_size,
            upscale,
            detect,
            max_pixels,
            max_output_pixels,
            timings,
            t0,
        )
    return _restore_photo(
        arr,
        picker,
        bg,
        precision,
        batch_size,
        upscale,
        detect,
        max_output_pixels or max_pixels,
        keep_faces,
        timings,
        t0,
    )


def _restore_photo(
    arr: np.ndarray,
    picker: ModelPicker,
    bg: BackgroundUpsampler,
    precision: str,
    batch_size: int,
    upscale: int | None,
    detect: DetectOptions | None,
    max_output: int,
    keep_faces: bool,
    timings: dict[str, float],
    t0: float,
    notes: list[str] | None = None,
) -> RestoreResult:
    dev = picker.device
    n, more = _check_upscale(upscale, arr.shape, max_output)
    notes = [*(notes or []), *more]
    gray = is_gray(arr)
    t = time.perf_counter()
    faces = detect_faces(arr, _cached_detector(str(dev)), detect)
    timings["detect"] = time.perf_counter() - t
    f = detection_scale(arr.shape, detect.max_pixels if detect is not None else 0)
    if f > 1.0:  # the detector's memory bound (facesr.restoration.detect.DETECT_MAX_PIXELS)
        min_face = (detect.min_size if detect is not None else DetectOptions().min_size) * f
        notes.append(
            f"faces were searched for on a copy reduced {f:.1f}x (the photo is over "
            f"{DETECT_MAX_PIXELS:,} pixels), so faces under about {min_face:.0f} px were not looked for"
        )
    results = [FaceResult(face=f) for f in faces]
    fell_back = False
    todo = [r for r in results if r.face.status == "ok"]
    if todo:
        cands = picker.candidates()
        sizes = sorted(cands)
        timings["mask"] = _detect_masks(results, arr, dev)
        groups: dict[int, list[FaceResult]] = {}
        for r in todo:
            r.native = native_frame(r.face.landmarks)
            size = choose_lr_size(r.native, sizes)
            if size is None:
                r.face.status = "kept"
                r.face.reason = (
                    f"too large for every model (face frame {r.native:.0f} px > largest model input "
                    f"{sizes[-1]} px x {MAX_REDUCE:.2f}); background upsampler used"
                )
                continue
            groups.setdefault(size, []).append(r)
        for size, members in sorted(groups.items()):
            name, scale = cands[size]
            net = picker.get(name, scale)
            fell_back |= _restore_group(
                members, net, arr, precision, batch_size, gray, keep_faces, timings, dev
            )
    t = time.perf_counter()
    # ``arr`` is this call's own copy (facesr.io.as_rgb_array copies), so at x1 the faces are pasted
    # into it instead of a second full-size copy.
    out = arr if n == 1 and bg.net is None else bg(arr, n)
    if gray and bg.net is not None:
        out = to_gray(out)
    timings["background"] = time.perf_counter() - t
    t = time.perf_counter()
    for r in results:  # paste in detection order (best score first, so it ends on top)
        sr = getattr(r, "_sr_u8", None)
        if sr is not None:
            paste_back(out, to_tensor(sr, dev), scale_landmarks(r.face.landmarks, n))
            del r._sr_u8  # type: ignore[attr-defined]
    timings["paste"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    warns = list(picker.warnings)
    if fell_back:
        warns.append(f"{precision} output was not finite; re-ran in fp32")
    return RestoreResult(
        image=out, faces=results, timings=timings, warnings=warns, upscale=n, background=bg.name, notes=notes
    )


#: ``aligned=True``: a crop over this many pixels is reduced (Pillow, antialiased) to it before its
#: float copy is made for the mask score; such a crop is always kept, never restored.
ALIGNED_FLOAT_PIXELS = 1_000_000


def _bounded_size(w: int, h: int, pixels: int) -> tuple[int, int]:
    f = math.sqrt(pixels / (w * h))
    return max(1, int(w * f)), max(1, int(h * f))


def _framing_error(arr: np.ndarray, device: torch.device, detect: DetectOptions | None) -> float | None:
    """RMS distance (eye distances) of the crop's detected landmarks from the template; None: no face."""
    opts = detect or DetectOptions()
    faces = [f for f in detect_faces(arr, _cached_detector(str(device)), opts) if f.score >= opts.min_score]
    if not faces:
        return None
    lm = max(faces, key=lambda f: f.score).landmarks
    t = template(arr.shape[1])
    eye = float(np.linalg.norm(t[1] - t[0]))
    return float(np.sqrt(((lm - t) ** 2).sum(1).mean()) / eye)


def _restore_aligned(
    arr: np.ndarray,
    picker: ModelPicker,
    bg: BackgroundUpsampler,
    precision: str,
    batch_size: int,
    upscale: int | None,
    detect: DetectOptions | None,
    max_pixels: int,
    max_output_pixels: int | None,
    timings: dict[str, float],
    t0: float,
) -> RestoreResult:
    """A template-framed face crop, restored whole. Checked first, and said so when it is not one:

    * not square, or a face is detected whose landmarks are more than ``MAX_ALIGNED_ERROR`` eye
      distances off the template: it is restored as a photo (detect, align, paste) instead;
    * larger than the largest model input by more than ``MAX_REDUCE``: restoring would shrink
      it, so it is kept (enlarged by ``upscale`` with the background upsampler, else unchanged).

    Output: the model's 128 px frame when ``upscale`` is None, else the crop's size x ``upscale``.
    """
    h, w = arr.shape[:2]
    t = time.perf_counter()
    model_ready = max(h, w) <= max(picker.candidates())  # at most the largest model input
    if abs(h - w) > 0.02 * max(h, w):
        err, why = None, f"--aligned expects a square template-framed crop, got {w}x{h}"
    elif model_ready:
        # A crop at model-input size (16-64 px) is what a caller who aligned it hands the model. Landmarks
        # detected on so few pixels are less accurate than the framing tolerance (the benchmark's own
        # template-aligned 32 px faces measure ~0.22 eye distances off), and the check would cost more
        # than the restoration itself, so it is not checked.
        err, why = None, ""
    else:
        err = _framing_error(arr, picker.device, detect)
        why = (
            f"crop is not template-framed (landmarks {err:.2f} eye distances off the template > "
            f"{MAX_ALIGNED_ERROR})"
            if err is not None and err > MAX_ALIGNED_ERROR
            else ""
        )
    timings["check"] = time.perf_counter() - t
    if why:
        note = why + "; restored as a photo (faces detected and pasted back) instead"
        return _restore_photo(
            arr,
            picker,
            bg,
            precision,
            batch_size,
            upscale,
            detect,
            max_output_pixels or max_pixels,
            True,
            timings,
            t0,
            notes=[note],
        )
    notes = (
        []
        if err is not None
        else [
            "framing not checked: crop at model-input size"
            if model_ready
            else "framing not checked: no face was detected in the crop"
        ]
    )
    cands = picker.candidates()
    size = choose_lr_size(float(w), sorted(cands))
    face = Face(
        index=0,
        box=[0.0, 0.0, float(w), float(h)],
        score=1.0,
        landmarks=template(w),
        eye_distance=float(np.linalg.norm(template(w)[1] - template(w)[0])),
        sharpness=0.0,
        extra={"framing_error": None if err is None else round(err, 3)},
    )
    fr = FaceResult(face=face, native=float(w))
    gray = is_gray(arr)
    # A crop that is kept (larger than every model input) may be a whole photo: only a bounded
    # reduction of it is converted to float (the memory budget); model-sized crops are used as they are.
    photo = to_tensor(
        arr if h * w <= ALIGNED_FLOAT_PIXELS else resize(arr, *_bounded_size(w, h, ALIGNED_FLOAT_PIXELS)),
        picker.device,
    )
    net_m = mask_model(picker.device)
    if net_m is not None:
        lr_m = F.interpolate(
            photo, size=(net_m.lr_size,) * 2, mode="bicubic", align_corners=False, antialias=True
        )
        # the score THRESHOLD is measured for (photo faces too), not the noise-map ratio (no mask signal)
        fr.mask_score = float(maskmod.face_scores(net_m, lr_m.clamp(0, 1))[0])
        fr.mask = fr.mask_score > maskmod.THRESHOLD
    if size is None:
        n = 1 if upscale is None else _check_upscale(upscale, arr.shape, max_output_pixels or max_pixels)[0]
        face.status = "kept"
        face.reason = (
            f"crop {w} px is larger than every model input ({max(cands)} px x {MAX_REDUCE:.2f}); restoring "
            f"would shrink it, so it is kept"
            + (f" and enlarged x{n} by {bg.name}" if n > 1 else " unchanged")
        )
        out = bg(arr, n)
        timings["total"] = time.perf_counter() - t0
        return RestoreResult(
            image=out,
            faces=[fr],
            timings=timings,
            warnings=list(picker.warnings),
            upscale=n,
            background=bg.name,
            notes=notes,
        )
    name, scale = cands[size]
    net = picker.get(name, scale)
    lr = (
        F.interpolate(photo, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(
            0, 1
        )
        if (h, w) != (size, size)
        else photo
    )
    t = time.perf_counter()
    sr, fell_back = run_model(net, lr, precision, batch_size)
    if any(nonfinite_faces(sr)):
        raise ModelError(f"model {net.name} gave NaN or inf for this face (also in fp32)")
    sr = colour_match(sr, lr)  # the crop's own colours, as for faces in a photo (issue 16 item 4)
    if gray:
        sr = _gray_tensor(sr)
    timings["restore"] = time.perf_counter() - t
    face.status = "restored"
    fr.model, fr.scale, fr.lr, fr.sr = net.name, net.scale, quantise(lr[:1])[0], quantise(sr[:1])[0]
    out = fr.sr
    n = 0
    if upscale is not None:
        n, more = _check_upscale(upscale, arr.shape, max_output_pixels or max_pixels)
        notes += more
        out = resize(fr.sr, w * n, h * n)
    timings["total"] = time.perf_counter() - t0
    warns = list(picker.warnings) + (
        [f"{precision} output was not finite; re-ran in fp32"] if fell_back else []
    )
    return RestoreResult(
        image=out,
        faces=[fr],
        timings=timings,
        warnings=warns,
        upscale=n or int(net.hr_size) // size,
        background=bg.name,
        notes=notes,
    )


__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_UPSCALE",
    "UPSCALES",
    "FaceResult",
    "ModelError",
    "RestoreResult",
    "resolve_device",
    "restore",
]
