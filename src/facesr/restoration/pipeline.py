"""Align -> restore -> paste back: the geometric and blending half of whole-photo restoration.

For each face (5 landmarks in the photo):

1. **Scale rule.** The face goes to the x8 model when its eye distance in the photo is at most the
   geometric mean of the eye distances of the x8 (16 px) and x4 (32 px) input frames
   (3.93 and 7.87 px -> 5.56 px), else to x4: whichever model needs the smaller relative
   re-sampling of the face gets it. ``--model`` overrides this.
2. **Align.** ``facesr.geometry.alignment_transform`` maps the 5 points onto ``template(lr_size)`` (eyes weighted, exactly as ``facesr prepare`` aligns training faces).
   The photo is sampled (bilinear) at ``k`` times the LR size, with ``k`` large enough that the
   sampling is at least as fine as the photo, then reduced by antialiased bicubic - the same
   degradation the models were trained on, so faces bigger than the LR frame are
   down-sampled properly and never aliased.
3. **Restore** in batches (per model), optional autocast; non-finite output falls back to fp32.
4. **Colour match.** Per-channel mean and std of the restored face are matched to the input face
   over the frame's outer band (hair, cheeks, background: where the blend happens and where a
   mask is not), measured at LR resolution, i.e. a low-frequency match that cannot paint a
   removed face mask back in. Gains are clamped to [0.8, 1.25].
5. **Paste back.** The 128 px output and a feathered mask (square eroded by 8 px, Gaussian
   sigma 5 px, in the 128 frame) are first reduced (antialiased) to the face's scale in the
   photo, then inverse-warped onto the photo's pixel grid and alpha-blended. Pixels whose alpha is
   zero - everything outside the faces' paste regions - are copied, so they are unchanged exactly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facesr.geometry import HR_SIZE, alignment_transform, invert_affine

MASK_ERODE = 8
MASK_SIGMA = 5.0
BAND = 0.2  # outer fraction of the frame used for colour statistics
GAIN_RANGE = (0.8, 1.25)
#: A face may be enlarged by up to this factor to reach a model's input (landmark noise alone
#: moves the measured size by a few per cent; a 30 px face belongs to the 32 px model, not the 16 px one).
ENLARGE_TOLERANCE = 1.1
#: A face larger than every model input is reduced to the largest one only up to this factor;
#: beyond it the model would throw away more of the face's own pixels than it adds (the face is "kept").
MAX_REDUCE = math.sqrt(2.0)


def native_frame(landmarks: np.ndarray) -> float:
    """Side (photo px) of the face's 128 px template frame: the face's own resolution.

    Read from the same eye-weighted similarity that aligns the face, so it is the size the face
    would be resampled from; ``128 / native_frame`` is how much the model output enlarges it.
    """
    return HR_SIZE / _affine_scale(alignment_transform(np.asarray(landmarks, np.float64), HR_SIZE))


def choose_lr_size(native: float, lr_sizes: list[int] | tuple[int, ...]) -> int | None:
    """The model input (px) for a face whose template frame is ``native`` px in the photo.

    The largest input not larger than the face (``ENLARGE_TOLERANCE`` allowed): the face is fed
    from its own pixels, reduced as little as possible and never blown up past its resolution.
    A face smaller than every input goes to the smallest (it has to be enlarged; nothing smaller
    exists). A face larger than the largest input by more than ``MAX_REDUCE`` gets None: too
    large for every model, it is kept (background upsampler) rather than shrunk.
    """
    sizes = sorted(set(int(s) for s in lr_sizes))
    if not sizes:
        return None
    fits = [s for s in sizes if s <= native * ENLARGE_TOLERANCE]
    if not fits:
        return sizes[0]
    best = fits[-1]
    if best == sizes[-1] and native > best * MAX_REDUCE:
        return None
    return best


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``H x W x 3`` uint8 -> ``1 x 3 x H x W`` float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255.0


def _gauss1d(sigma: float, device: torch.device) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``N x C x H x W`` (zero padding, so a mask fades at the edges)."""
    g = _gauss1d(sigma, x.device)
    c = x.shape[1]
    r = (len(g) - 1) // 2
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


def feather_mask(size: int = HR_SIZE, device: torch.device | str = "cpu") -> torch.Tensor:
    """``1 x 1 x size x size`` soft mask: square eroded by MASK_ERODE px then Gaussian-blurred."""
    scale = size / HR_SIZE
    e = max(1, round(MASK_ERODE * scale))
    m = torch.zeros(1, 1, size, size, device=device)
    m[..., e : size - e, e : size - e] = 1.0
    m = gaussian_blur(m, MASK_SIGMA * scale)
    m[..., : e // 2, :] = 0  # a hard zero at the very border: alpha is exactly 0 outside the frame
    m[..., size - e // 2 :, :] = 0
    m[..., :, : e // 2] = 0
    m[..., :, size - e // 2 :] = 0
    return m


def _sample(
    src: torch.Tensor,
    m_out_to_src: np.ndarray,
    out_h: int,
    out_w: int,
    x0: float = 0.0,
    y0: float = 0.0,
    padding: str = "border",
) -> torch.Tensor:
    """Sample ``src`` (``1 x C x H x W``) on an ``out_h x out_w`` grid (pixel-centre coordinates).

    ``m_out_to_src`` maps output pixel coordinates (offset by x0, y0) to source pixel coordinates.
    """
    dev = src.device
    ys, xs = torch.meshgrid(
        torch.arange(out_h, device=dev, dtype=torch.float64) + y0,
        torch.arange(out_w, device=dev, dtype=torch.float64) + x0,
        indexing="ij",
    )
    m = torch.as_tensor(m_out_to_src, dtype=torch.float64, device=dev)
    sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    h, w = src.shape[-2:]
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], -1)[None].to(src.dtype)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _affine_scale(m: np.ndarray) -> float:
    """Isotropic scale of a similarity ``2 x 3`` matrix."""
    return float(math.sqrt(abs(np.linalg.det(m[:, :2]))))


def source_crop(
    photo: np.ndarray, m_out_to_src: np.ndarray, out_h: int, out_w: int, device: torch.device | str
) -> tuple[torch.Tensor, np.ndarray]:
    """The part of a uint8 ``photo`` that sampling ``out_h x out_w`` through ``m_out_to_src`` reads.

    Returns it as a ``1 x 3 x h x w`` float tensor in [0, 1] and the matrix shifted to the crop's
    coordinates. Why: a float copy of a whole 64 MP photo is 768 MB, a face's crop a few kB. Bilinear
    sampling reads the two pixels around each coordinate, so a 2 px margin holds everything it
    reads; where the crop meets the photo's edge, "border" padding clamps to the same edge pixels.
    """
    h, w = photo.shape[:2]
    corners = np.array([[0, 0, 1], [out_w - 1, 0, 1], [0, out_h - 1, 1], [out_w - 1, out_h - 1, 1]], float)
    pts = corners @ np.asarray(m_out_to_src, np.float64).T
    x0 = int(min(w - 1, max(0, math.floor(pts[:, 0].min()) - 2)))
    y0 = int(min(h - 1, max(0, math.floor(pts[:, 1].min()) - 2)))
    x1 = int(max(x0 + 1, min(w, math.ceil(pts[:, 0].max()) + 3)))
    y1 = int(max(y0 + 1, min(h, math.ceil(pts[:, 1].max()) + 3)))
    m = np.array(m_out_to_src, np.float64)
    m[0, 2] -= x0
    m[1, 2] -= y0
    return to_tensor(photo[y0:y1, x0:x1], device), m


def align_face(
    photo: torch.Tensor | np.ndarray,
    landmarks: np.ndarray,
    lr_size: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Warp one face to the model's LR frame (``1 x 3 x lr x lr``), antialiased (module docstring).

    ``photo``: a ``1 x 3 x H x W`` float tensor in [0, 1], or the uint8 ``H x W x 3`` photo itself, of
    which only the face's region is converted (on ``device``; :func:`source_crop`).
    """
    m = alignment_transform(landmarks, lr_size)  # photo -> LR frame, exactly as prepare aligns
    s = _affine_scale(m)  # LR px per photo px
    k = int(min(8, max(1, math.ceil(1.0 / max(s, 1e-6) - 1e-3))))
    big = lr_size * k
    # output pixel (u, v) of the k-times frame -> LR frame coordinate (u + 0.5) / k - 0.5 -> photo.
    to_lr = np.array([[1.0 / k, 0.0, 0.5 / k - 0.5], [0.0, 1.0 / k, 0.5 / k - 0.5]])
    m_inv = invert_affine(m)
    m_big = np.hstack([m_inv[:, :2] @ to_lr[:, :2], (m_inv[:, :2] @ to_lr[:, 2] + m_inv[:, 2])[:, None]])
    if isinstance(photo, np.ndarray):
        photo, m_big = source_crop(photo, m_big, big, big, device)
    crop = _sample(photo, m_big, big, big)
    if k > 1:
        crop = F.interpolate(
            crop, size=(lr_size, lr_size), mode="bicubic", align_corners=False, antialias=True
        )
    return crop.clamp(0, 1)


def colour_match(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """Match per-channel mean/std of ``sr`` (N x 3 x 128 x 128) to ``lr`` on the frame's outer band."""
    _n, _, s, _ = lr.shape
    down = F.interpolate(sr, size=(s, s), mode="bicubic", align_corners=False, antialias=True)
    b = max(1, round(BAND * s))
    band = torch.ones(s, s, dtype=torch.bool, device=lr.device)
    band[b : s - b, b : s - b] = False
    lo, hi = GAIN_RANGE
    a, d = lr[..., band], down[..., band]  # N x 3 x B
    gain = (a.std(-1) / d.std(-1).clamp(min=1e-3)).clamp(lo, hi)
    offset = a.mean(-1) - gain * d.mean(-1)
    return (sr * gain[..., None, None] + offset[..., None, None]).clamp(0, 1)


@dataclass
class Paste:
    """Where one face went: the affine from photo to 128 frame and its paste region."""

    m128: np.ndarray
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def paste_region(landmarks: np.ndarray, shape: tuple[int, int]) -> Paste:
    """The photo rectangle covered by the face's 128 frame (clipped to the photo)."""
    m = alignment_transform(landmarks, HR_SIZE)
    corners = np.array(
        [[-0.5, -0.5], [HR_SIZE - 0.5, -0.5], [-0.5, HR_SIZE - 0.5], [HR_SIZE - 0.5, HR_SIZE - 0.5]]
    )
    inv = invert_affine(m)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = shape
    x0, y0 = max(0, math.floor(pts[:, 0].min())), max(0, math.floor(pts[:, 1].min()))
    x1, y1 = min(w, math.ceil(pts[:, 0].max()) + 1), min(h, math.ceil(pts[:, 1].max()) + 1)
    return Paste(m128=m, region=(x0, y0, x1, y1))


def paste_back(
    photo: np.ndarray, sr: torch.Tensor, landmarks: np.ndarray, mask: torch.Tensor | None = None
) -> None:
    """Blend one restored face (``1 x 3 x 128 x 128`` in [0, 1]) into ``photo`` (uint8, in place).

    ``landmarks`` are in ``photo``'s pixels (for an upscaled output: :func:`scale_landmarks`).
    Only the face's paste region is touched, and inside it only pixels with alpha > 0.
    """
    p = paste_region(landmarks, photo.shape[:2])
    x0, y0, x1, y1 = p.region
    if x1 <= x0 or y1 <= y0:
        return
    if mask is None:
        mask = feather_mask(HR_SIZE, sr.device)
    src = torch.cat([sr, mask], 1)  # 1 x 4 x 128 x 128
    m = p.m128  # photo -> 128 frame
    s = _affine_scale(m)  # frame px per photo px
    n = max(8, round(HR_SIZE / s))
    if n != HR_SIZE:  # resize to the face's size in the photo first: antialiased when reducing,
        # bicubic (sharper than the bilinear warp) when an upscaled photo holds it larger than 128
        src = F.interpolate(src, size=(n, n), mode="bicubic", align_corners=False, antialias=n < HR_SIZE)
        src[:, 3:].clamp_(0, 1)
        f = n / HR_SIZE  # 128-frame coordinate c -> resized frame (c + 0.5) * f - 0.5
        m = np.vstack([m[0] * f, m[1] * f])
        m[:, 2] += 0.5 * f - 0.5
    out = _sample(src, m, y1 - y0, x1 - x0, x0=x0, y0=y0, padding="zeros")[0]
    alpha = out[3:4].clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    face = out[:3].clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255.0
    orig = photo[y0:y1, x0:x1]
    blended = np.rint(orig.astype(np.float32) * (1 - alpha) + face * alpha).clip(0, 255).astype(np.uint8)
    photo[y0:y1, x0:x1] = np.where(alpha > 0, blended, orig)


def scale_landmarks(landmarks: np.ndarray, factor: float) -> np.ndarray:
    """Landmarks of a photo -> the same points in the photo resized by ``factor`` (pixel centres)."""
    return (np.asarray(landmarks, np.float64) + 0.5) * factor - 0.5


#: Rows processed at a time by the whole-photo helpers below (temporaries are one band, not one photo).
BAND_ROWS = 256


def to_gray(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 -> the same shape with every channel the BT.601 luma (what PIL's "L" uses)."""
    out = np.empty_like(image)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    for y in range(0, image.shape[0], BAND_ROWS):
        band = image[y : y + BAND_ROWS]
        out[y : y + BAND_ROWS] = np.rint(band.astype(np.float32) @ weights).clip(0, 255)[..., None]
    return out


def _channels_differ(a: np.ndarray, tolerance: int) -> bool:
    a = a.astype(np.int16)
    return (
        int(np.abs(a[..., 0] - a[..., 1]).max()) > tolerance
        or int(np.abs(a[..., 1] - a[..., 2]).max()) > tolerance
    )


def is_gray(image: np.ndarray, tolerance: int = 3) -> bool:
    """Whether a photo is grayscale stored as RGB: channels equal within JPEG chroma rounding.

    Sampled on a strided grid so a 64 MP photo costs milliseconds, then confirmed on all pixels
    (band by band, so the int16 copies are one band, not one photo).
    """
    step = max(1, int(math.sqrt(image.shape[0] * image.shape[1] / 250_000)))
    if _channels_differ(image[::step, ::step], tolerance):
        return False
    return not any(
        _channels_differ(image[y : y + BAND_ROWS], tolerance) for y in range(0, image.shape[0], BAND_ROWS)
    )


def run_model(
    model: torch.nn.Module, lr: torch.Tensor, precision: str, batch_size: int
) -> tuple[torch.Tensor, bool]:
    """Restore ``lr`` in batches; returns (sr, fell_back). Non-finite low-precision output -> fp32.

    Output that is still not finite in fp32 is returned as NaN (an inf is not clamped to 1), so a
    caller can refuse those faces (:func:`nonfinite_faces`) instead of pasting black or white squares.
    """
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    dev = lr.device

    def go(dt: torch.dtype | None) -> torch.Tensor:
        outs = []
        with torch.inference_mode():
            for i in range(0, len(lr), batch_size):
                x = lr[i : i + batch_size]
                if dt is None:
                    outs.append(model(x).float())
                else:
                    with torch.autocast(device_type=dev.type, dtype=dt):
                        outs.append(model(x).float())
        return torch.cat(outs)

    out, fell_back = go(dtype), False
    if dtype is not None and not torch.isfinite(out).all():
        warnings.warn(f"{precision} output is not finite; re-running in fp32", RuntimeWarning, stacklevel=2)
        out, fell_back = go(None), True
    if out.shape[-2:] != (HR_SIZE, HR_SIZE):  # the Restorer contract is 128 px; be safe with others
        out = F.interpolate(out, size=(HR_SIZE, HR_SIZE), mode="bicubic", align_corners=False, antialias=True)
    out = torch.where(torch.isfinite(out), out, torch.full_like(out, float("nan")))
    return out.clamp(0, 1), fell_back


def nonfinite_faces(sr: torch.Tensor) -> list[bool]:
    """Per face of ``sr`` (N x 3 x H x W): whether any of its values is NaN (see :func:`run_model`)."""
    return torch.isnan(sr).flatten(1).any(1).tolist()
