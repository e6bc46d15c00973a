"""MTCNN face detector (PNet -> RNet -> ONet) in plain PyTorch, with 5 landmarks per face.

Why our own copy: the restore pipeline must find faces down to ~10-12 px across, on CPU, without
torchvision or facenet-pytorch's old version pins. MTCNN (Zhang et al., 2016) is small (0.5 M
parameters) and its image pyramid reaches tiny faces. The weights are facenet-pytorch's
(MIT), converted once by ``scripts/convert_mtcnn.py`` into ``weights/mtcnn.safetensors``; the
layer names and the box/landmark arithmetic (including its mix of inclusive and exclusive pixel
widths) follow facenet-pytorch's ``detect_face`` so the converted weights behave as they were
trained: on the bundled samples every face away from the image border gets the same landmarks to
within 0.1 px (``tests/test_restore_mtcnn.py``). Differences: candidate crops that leave the image
are zero-padded (as in the original MTCNN) instead of clipped and stretched, so border faces can
differ; NMS is our own (vectorised IoU matrix, one greedy pass); the RNet/ONet crops are cut all at
once from a summed-area table and the stages run batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ModelError

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "mtcnn.safetensors"
#: Most candidate boxes kept (by score) before an NMS, so a textured 1080p photo cannot make the
#: IoU matrix blow up memory.
MAX_NMS_CANDIDATES = 6000
#: Rows of the NMS overlap matrix computed at a time (see :func:`nms`).
NMS_ROWS = 256


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = max_pool_2x2(self.prelu1(self.conv1(x)))  # = self.pool1(...), faster (see there)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``nn.MaxPool2d(2, 2, ceil_mode=True)(x)``: the same values, as two pairwise maxima of strided views.

    Why: PNet's pooling runs on its largest map (10 channels at the pyramid level's size), and
    PyTorch's CPU kernel also computes and writes the argmax indices, which inference never
    reads: it was a tenth of the detector's time on the 1080p benchmark photo. The pairwise
    ``torch.maximum`` (rows, then columns, written straight into the output) takes about a sixth
    of the kernel's time on the first pyramid level of that photo.
    The maximum of the same two to four numbers is the same number (up to the sign of a zero,
    which no later sum sees); an odd last row or column is its own window, as in ceil mode.
    """
    n, c, h, w = x.shape
    fmt = (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )
    eh, ew = h - h % 2, w - w % 2
    rows = torch.empty((n, c, (h + 1) // 2, w), dtype=x.dtype, device=x.device, memory_format=fmt)
    torch.maximum(x[:, :, 0:eh:2], x[:, :, 1:eh:2], out=rows[:, :, : eh // 2])
    if h % 2:
        rows[:, :, -1].copy_(x[:, :, -1])
    out = torch.empty((n, c, (h + 1) // 2, (w + 1) // 2), dtype=x.dtype, device=x.device, memory_format=fmt)
    torch.maximum(rows[..., 0:ew:2], rows[..., 1:ew:2], out=out[..., : ew // 2])
    if w % 2:
        out[..., -1].copy_(rows[..., -1])
    return out


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from Caffe/TF with a (W, H) flatten order; keep it.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops: score, box regression and 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


@dataclass
class Detections:
    """Faces found in one image. ``boxes`` are ``N x 4`` (x1, y1, x2, y2) in pixels, ``scores``
    ``N``, ``landmarks`` ``N x 5 x 2`` (x, y): left eye, right eye, nose, left and right mouth
    corner ("left" = image left), sorted by descending score."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


#: Input rows of a pyramid level that PNet sees at a time (even; see MTCNN._pnet_candidates).
PNET_STRIP = 256
#: Pyramid levels at most this fraction of the photo's side are cut from the summed-area table
#: instead of ``F.interpolate(mode="area")`` (see :func:`_area_resize`).
AREA_FROM_TABLE_SCALE = 0.25


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union", inclusive: bool = True
) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    The pairwise overlap is one vectorised matrix; the greedy pass then walks the sorted boxes
    once, dropping every later box that overlaps a kept one by more than ``threshold``. ``mode``
    "min" divides the intersection by the smaller area (MTCNN's last stage), "union" by the union.
    ``inclusive`` areas follow MTCNN's pixel convention (``x2 - x1 + 1``); ``False`` is
    torchvision's (``x2 - x1``), which facenet-pytorch's first two stages use - we follow it there
    so that the converted weights pick the same candidates as the reference code.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True)[:MAX_NMS_CANDIDATES]
    b = boxes[order].double()
    one = 1.0 if inclusive else 0.0
    area = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    # The overlap matrix is made NMS_ROWS rows at a time (the same float64 operations per element):
    # at 6,000 candidates each whole-matrix temporary was 288 MB, five at once (the memory budget).
    over = np.empty((len(order), len(order)), dtype=bool)
    for r0 in range(0, len(order), NMS_ROWS):
        r = slice(r0, r0 + NMS_ROWS)
        iw = (
            torch.minimum(b[r, None, 2], b[None, :, 2]) - torch.maximum(b[r, None, 0], b[None, :, 0]) + one
        ).clamp(min=0)
        ih = (
            torch.minimum(b[r, None, 3], b[None, :, 3]) - torch.maximum(b[r, None, 1], b[None, :, 1]) + one
        ).clamp(min=0)
        inter = iw * ih
        denom = (
            torch.minimum(area[r, None], area[None, :])
            if mode == "min"
            else area[r, None] + area[None, :] - inter
        )
        over[r] = (inter / denom > threshold).cpu().numpy()
    n = len(order)
    removed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow boxes to squares around their centres (MTCNN's ``rerec``)."""
    out = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: torch.Tensor, reg: torch.Tensor, inclusive: bool = True) -> torch.Tensor:
    """Apply box regression offsets (fractions of the width/height).

    The reference scales stage-1 offsets by ``x2 - x1`` and later ones by ``x2 - x1 + 1``
    (``inclusive``); the weights were trained/converted with exactly that, so we keep it.
    """
    out = boxes.clone()
    one = 1.0 if inclusive else 0.0
    w = boxes[:, 2] - boxes[:, 0] + one
    h = boxes[:, 3] - boxes[:, 1] + one
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def _integral(img: torch.Tensor) -> torch.Tensor:
    """Summed-area table ``3 x (H+1) x (W+1)`` of a ``1 x 3 x H x W`` image.

    A uint8 image gets an exact integer table (int32 while ``255 x H x W`` fits, else int64): the
    same sums as float64, in half the time and memory (the table of a 1080p photo was a tenth of
    the detector's time). Other dtypes get float64.
    """
    h, w = img.shape[2], img.shape[3]
    if img.dtype == torch.uint8:
        dt = torch.int32 if 255 * h * w < 2**31 else torch.int64
        s = torch.empty(3, h + 1, w + 1, dtype=dt, device=img.device)
        s[:, 0] = 0
        s[:, 1:, 0] = 0
        # Converted and summed in place inside the table: the same integers as two cumsums into new
        # tensors and a copy into a zeroed table, in half the time (three passes fewer).
        s[:, 1:, 1:].copy_(img[0]).cumsum_(1).cumsum_(2)
        return s
    s = torch.zeros(3, h + 1, w + 1, dtype=torch.float64, device=img.device)
    s[:, 1:, 1:] = img[0].double().cumsum(1).cumsum(2)
    return s


def _crops(integral: torch.Tensor, boxes: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """:func:`_crops_of` ``chunk`` boxes at a time: its index and float64 temporaries are ~60 kB per
    24 px box, so thousands of stage-1 candidates at once took hundreds of MB (the memory budget)."""
    if len(boxes) <= chunk:
        return _crops_of(integral, boxes, size)
    return torch.cat([_crops_of(integral, boxes[i : i + chunk], size) for i in range(0, len(boxes), chunk)])


def _crops_of(integral: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each box out of the image (zero outside it) and area-resize it to ``size x size``.

    Equivalent to ``F.interpolate(crop, size, mode="area")`` per box (the same integer bins as
    adaptive average pooling), but all boxes at once from a summed-area table: a crowd photo has
    hundreds of candidates and one small interpolate call per box dominated the detector's time.
    Boxes are MTCNN's 1-based inclusive coordinates, truncated to integers as in the reference.
    """
    h, w = integral.shape[1] - 1, integral.shape[2] - 1
    ib = boxes[:, :4].trunc().long()
    x0, y0 = ib[:, 0] - 1, ib[:, 1] - 1  # 0-based start; exclusive end is x2 / y2
    cw = (ib[:, 2] - x0).clamp(min=1)
    ch = (ib[:, 3] - y0).clamp(min=1)
    i = torch.arange(size, device=boxes.device)
    r0 = y0[:, None] + torch.div(i[None] * ch[:, None], size, rounding_mode="floor")
    r1 = y0[:, None] + torch.div((i[None] + 1) * ch[:, None] + size - 1, size, rounding_mode="floor")
    c0 = x0[:, None] + torch.div(i[None] * cw[:, None], size, rounding_mode="floor")
    c1 = x0[:, None] + torch.div((i[None] + 1) * cw[:, None] + size - 1, size, rounding_mode="floor")
    area = ((r1 - r0)[:, :, None] * (c1 - c0)[:, None, :]).double()  # N x size x size
    r0c, r1c, c0c, c1c = r0.clamp(0, h), r1.clamp(0, h), c0.clamp(0, w), c1.clamp(0, w)

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return integral[:, r[:, :, None], c[:, None, :]]  # 3 x N x size x size

    total = (at(r1c, c1c) - at(r0c, c1c) - at(r1c, c0c) + at(r0c, c0c)).double()
    return (total / area).permute(1, 0, 2, 3).float()


def _bins(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and (exclusive) end of each output's input bin, as adaptive average pooling has them."""
    i = torch.arange(n_out, device=device)
    start = torch.div(i * n_in, n_out, rounding_mode="floor")
    end = torch.div((i + 1) * n_in + n_out - 1, n_out, rounding_mode="floor")
    return start, end


def _area_resize(integral: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """``F.interpolate(image, (oh, ow), mode="area")`` of the image whose summed-area table is given.

    Bit-identical for a uint8 image (``tests/test_restore_mtcnn.py``): each bin's sum is an exact
    integer from the int32 table, and PyTorch's kernel divides that same float32 sum by the bin
    height and then by its width, as here. Why: ``F.interpolate`` reads every photo pixel for every
    pyramid level, so each of the ~9 small levels of a 1080p photo cost as much as reading the whole
    photo (together about 7 % of the detector's time); from the table a level costs its own pixels
    only. Not used for the large levels, where the four gathers are slower than the pooling kernel.
    """
    r0, r1 = _bins(integral.shape[1] - 1, oh, integral.device)
    c0, c1 = _bins(integral.shape[2] - 1, ow, integral.device)
    rows = integral.index_select(1, r1) - integral.index_select(1, r0)
    sums = (rows.index_select(2, c1) - rows.index_select(2, c0)).float()
    sums /= (r1 - r0).float()[:, None]
    sums /= (c1 - c0).float()
    return sums[None]


class MTCNN(nn.Module):
    """Three-stage cascade. ``detect(image)`` takes ``H x W x 3`` uint8 RGB and returns Detections.

    ``min_size`` is the smallest face (box side, pixels) searched for: the pyramid starts at
    scale ``12 / min_size``, so faces smaller than PNet's 12 px window are up-sampled to it.
    ``thresholds`` are the per-stage face probabilities; ``factor`` is the pyramid step.
    """

    def __init__(
        self,
        min_size: float = 12.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_size = float(min_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.batch_size = int(batch_size)

    def load_weights(self, path: Path = WEIGHTS) -> MTCNN:
        """Load the converted facenet-pytorch weights (safetensors; nothing is unpickled)."""
        from safetensors.torch import load_file

        if not Path(path).is_file():
            raise ModelError(
                f"MTCNN weights {path} are missing; reinstall facesr or run "
                "`python scripts/convert_mtcnn.py facenet_pytorch-2.6.0-py3-none-any.whl`"
            )
        from facesr.checksums import verify_bundled

        verify_bundled(path)  # the shipped file's sha256 (issue 17: every loaded weights file is checked)
        self.load_state_dict(load_file(str(path)))
        # channels-last convolutions are ~1.7x faster on CPU for PNet's 3-channel full-size input.
        return self.eval().requires_grad_(False).to(memory_format=torch.channels_last)

    def _batched(self, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = x.contiguous(memory_format=torch.channels_last)
        # ONet's 48 px crops take ~0.5 MB of activations each: a quarter of the batch keeps one batch
        # near 64 MB (512 at once were 264 MB, the memory budget), at no measurable cost in speed.
        n = self.batch_size if x.shape[-1] < 48 else max(1, self.batch_size // 4)
        outs = [net(x[i : i + n]) for i in range(0, len(x), n)]
        return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))

    def _pnet(self, part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PNet's (reg, prob) for ``1 x 3 x h x w`` pixel values 0-255 (normalised here)."""
        # Written straight into a channels-last tensor, then scaled in place: the same values as
        # ``((part - 127.5) * 0.0078125).contiguous(channels_last)`` with one pass less over the strip.
        x = torch.empty_like(part, memory_format=torch.channels_last)
        torch.sub(part, 127.5, out=x)
        return self.pnet(x.mul_(0.0078125))

    def _pnet_candidates(self, data: torch.Tensor, scale: float) -> torch.Tensor | None:
        """PNet's candidates on one pyramid level: rows (x1, y1, x2, y2, score, 4 x reg), or None.

        PNet runs ``PNET_STRIP`` input rows at a time (memory bound). It is fully convolutional:
        output row ``i`` reads input rows ``2i .. 2i + 11``, so a strip of ``PNET_STRIP + 10`` rows
        starting at an even row gives ``PNET_STRIP / 2`` output rows exactly as the whole level does
        (``reg`` bit-identical, ``prob`` within 1e-9 from the softmax). Why strips: on the
        detector's 4 MP copy the first level's activations were ~600 MB at once (issue 17's memory
        budget); a strip's are ~30 MB. The candidates are taken from each strip's output as it
        comes: no full-level map is put together. (Box offsets computed at the candidates only,
        by the same 1x1 convolution on the gathered features, were tried: they differ from the
        full map's by float rounding, up to 4e-6 px in a box, for no measurable gain.)
        """
        h = data.shape[2]
        parts = []
        for r0 in range(0, h, PNET_STRIP):
            part = data[:, :, r0 : r0 + PNET_STRIP + 10]
            if part.shape[2] < 12:  # no full 12-row window left (the whole level gives no row here)
                break
            reg, prob = self._pnet(part)
            p = prob[0, 1, : PNET_STRIP // 2]
            ys, xs = torch.nonzero(p >= self.thresholds[0], as_tuple=True)
            if len(ys):
                parts.append((ys + r0 // 2, xs, p[ys, xs], reg[0, :, ys, xs].T))
            if h <= PNET_STRIP + 10:  # the first strip was the whole level
                break
        if not parts:
            return None
        ys, xs, score, reg = (torch.cat(c) for c in zip(*parts, strict=True))
        grid = torch.stack([xs, ys], 1).to(torch.float32)
        q1 = ((2 * grid + 1) / scale).floor()
        q2 = ((2 * grid + 12) / scale).floor()
        return torch.cat([q1, q2, score[:, None], reg], 1)

    def scales(
        self, h: int, w: int, min_size: float | None = None, factor: float | None = None
    ) -> list[float]:
        """The image pyramid: from ``12/min_size`` down by ``factor`` while the short side >= 12."""
        m = 12.0 / float(min_size or self.min_size)
        step = float(factor or self.factor)
        minl = min(h, w) * m
        out, s = [], m
        while minl >= 12:
            out.append(s)
            s *= step
            minl *= step
        return out

    @torch.inference_mode()
    def detect(
        self, image: np.ndarray, min_size: float | None = None, factor: float | None = None
    ) -> Detections:
        """Detect faces in one ``H x W x 3`` uint8 RGB image (``min_size``, ``factor`` override the defaults)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected H x W x 3 image, got shape {image.shape}")
        device = next(self.parameters()).device
        pixels = torch.as_tensor(np.ascontiguousarray(image), device=device).permute(2, 0, 1)[None]
        # The large pyramid levels are cut from a contiguous NCHW copy: area resampling reads it
        # about twice as fast as the channels-last view of the H x W x 3 array (same values); the
        # small ones from the summed-area table that the RNet/ONet crops use too (_area_resize).
        img: torch.Tensor | None = pixels.to(torch.float32, memory_format=torch.contiguous_format)
        integral: torch.Tensor | None = None  # made at the first small level (memory: not beside img)
        h, w = image.shape[:2]
        empty = Detections(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )

        # Stage 1: PNet over the pyramid; NMS per scale, then across scales.
        cands = []
        for scale in self.scales(h, w, min_size, factor):
            size = (int(h * scale + 1), int(w * scale + 1))
            if img is None or (scale <= AREA_FROM_TABLE_SCALE and pixels.dtype == torch.uint8):
                # Scales only fall from here on: the float copy is not needed any more.
                img = None
                integral = _integral(pixels) if integral is None else integral
                data = _area_resize(integral, *size)
            else:
                data = F.interpolate(img, size=size, mode="area")
            b = self._pnet_candidates(data, scale)
            del data
            if b is None:
                continue
            cands.append(b[nms(b[:, :4], b[:, 4], 0.5, inclusive=False)])
        del img
        if not cands:
            return empty
        boxes = torch.cat(cands)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, inclusive=False)]
        boxes = _square(torch.cat([_regress(boxes[:, :4], boxes[:, 5:9], inclusive=False), boxes[:, 4:5]], 1))

        # Stage 2: RNet on 24x24 crops, batched.
        integral = _integral(pixels) if integral is None else integral
        reg, prob = self._batched(self.rnet, (_crops(integral, boxes, 24) - 127.5) * 0.0078125)
        ok = prob[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], prob[ok, 1:2]], 1)
        reg = reg[ok]
        if len(boxes) == 0:
            return empty
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, inclusive=False)
        boxes = _square(torch.cat([_regress(boxes[keep, :4], reg[keep]), boxes[keep, 4:5]], 1))

        # Stage 3: ONet on 48x48 crops: final score, box and landmarks.
        reg, pts, prob = self._batched(self.onet, (_crops(integral, boxes, 48) - 127.5) * 0.0078125)
        ok = prob[:, 1] > self.thresholds[2]
        boxes, reg, pts = torch.cat([boxes[ok, :4], prob[ok, 1:2]], 1), reg[ok], pts[ok]
        if len(boxes) == 0:
            return empty
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        lm = torch.stack([bw * pts[:, :5] + boxes[:, 0:1] - 1, bh * pts[:, 5:] + boxes[:, 1:2] - 1], 2)
        boxes = torch.cat([_regress(boxes[:, :4], reg), boxes[:, 4:5]], 1)
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
        boxes, lm = boxes[keep], lm[keep]
        return Detections(
            boxes[:, :4].cpu().numpy().astype(np.float32),
            boxes[:, 4].cpu().numpy().astype(np.float32),
            lm.cpu().numpy().astype(np.float32),
        )


@lru_cache(maxsize=4)
def load_mtcnn(device: str = "cpu") -> MTCNN:
    """The detector with its weights, cached per device (thresholds are per-call attributes)."""
    return MTCNN().load_weights().to(device)
