"""Issue 17, memory: sizes are refused from the header, and detection runs on a bounded copy.

The measured peak RSS per probe case is benchmarks/memory_probe.py's job (docs/reliability.md);
these tests check the mechanisms that bound it, fast.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.errors import ImageReadError
from facesr.io import MAX_PIXELS, read_image
from facesr.restoration.detect import DetectOptions, detect_faces, detection_copy, detection_scale

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"


def _claiming_jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.mark.parametrize("side", [7000, 4000])
def test_jpeg_claiming_a_huge_size_costs_no_memory(side: int) -> None:
    """The probe's 22 KB JPEG that claims 7000 x 7000 (8 GB before): refused from the header or
    by the strict scan check, never decoded into a full-size grey picture."""
    data = _claiming_jpeg(side, side)
    tracemalloc.start()
    with pytest.raises(ImageReadError, match=r"pixel limit|truncated or corrupt JPEG"):
        read_image(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # measured (CI, 7000 px): 49 MB, one byte per claimed pixel (a grey plane of the scan check), bounded
    # by MAX_PIXELS (64 MB) and far below the 8 GB of the full-size RGB decode this replaced
    assert peak < side * side + 16 * 2**20


def test_zero_png_over_the_limit_is_refused_before_decoding() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    buf = io.BytesIO()
    Image.new("L", (side, 10)).save(buf, "PNG")  # small to make, then claim side x side in IHDR
    data = bytearray(buf.getvalue())
    import zlib

    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    tracemalloc.start()
    with pytest.raises(ImageReadError, match="pixel limit"):
        read_image(bytes(data))
    assert tracemalloc.get_traced_memory()[1] < 8 * 2**20
    tracemalloc.stop()


class _FixedDetector:
    """Reports one face at a fixed place *in the image it is given* and records that image's size."""

    def __init__(self) -> None:
        self.seen: tuple[int, ...] = ()

    def detect(self, image: np.ndarray, min_size: float | None = None):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        self.seen = image.shape
        lm = np.array([[[40.0, 40.0], [60.0, 40.0], [50.0, 50.0], [42.0, 60.0], [58.0, 60.0]]])
        return SimpleNamespace(
            boxes=np.array([[30.0, 25.0, 70.0, 75.0]]), scores=np.array([0.99]), landmarks=lm
        )


def test_detection_runs_on_a_bounded_copy_and_maps_back() -> None:
    img = np.zeros((1200, 1600, 3), np.uint8)
    small, fx, fy = detection_copy(img, 300_000)
    assert small.shape[0] * small.shape[1] <= 300_000 and fx > 1 and abs(fx - fy) < 0.01
    assert detection_copy(img, 10_000_000)[0] is img  # under the bound: the photo itself
    det = _FixedDetector()
    faces = detect_faces(img, det, DetectOptions(max_pixels=300_000, pad=0.0))
    assert det.seen[0] * det.seen[1] <= 300_000
    (face,) = faces
    # the detector's (40, 40) in the copy is ((40 + 0.5) * f - 0.5) in the photo
    assert face.landmarks[0, 0] == pytest.approx(40.5 * fx - 0.5)
    assert face.box[3] == pytest.approx(75.5 * fy - 0.5)
    assert detection_scale(img.shape, 300_000) == pytest.approx(fx, rel=0.01)


def test_restore_says_when_detection_ran_on_a_reduced_copy() -> None:
    from facesr.restoration.api import restore

    photo = read_image(SAMPLES / "rwmfd_0002_0078.jpg")
    res = restore(photo, model="bicubic", device="cpu", detect=DetectOptions(max_pixels=photo.size // 3 // 4))
    assert any("reduced 2.0x" in n for n in res.notes), res.notes
    full = restore(photo, model="bicubic", device="cpu")
    assert not any("reduced" in n for n in full.notes)
