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

    def detect(self, image: np.ndarray, min_size: float | None = None, factor: float | None = None):  # type: ignore[no-untyped-def]
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


@pytest.mark.parametrize(
    ("h", "w", "border"),
    [
        (32, 65_531, 17),
        (2, 2_000_000, 0),
        (84, 47_600, 4),
        (1633, 2449, 32),
        (700, 5700, 31),
        (480, 640, 320),
    ],
)
def test_detection_border_is_bounded_on_thin_photos(h: int, w: int, border: int) -> None:
    """The fuzz corpus's 1 KB GIF of 65,531 x 32 px became a 65,595 x 96 detector copy (3x its pixels,
    1.25 GB for `facesr restore`): the PAD_LARGE border is narrowed to keep the copy within
    PAD_MAX_SHARE of the bound; ordinary photos keep the full 32 px (and small ones their fraction)."""
    from facesr.restoration.detect import DETECT_MAX_PIXELS, PAD_MAX_SHARE

    det = _FixedDetector()
    img = np.zeros((h, w, 3), np.uint8)
    detect_faces(img, det)
    assert det.seen[:2] == (h + 2 * border, w + 2 * border)
    assert det.seen[0] * det.seen[1] <= max(DETECT_MAX_PIXELS * (1 + PAD_MAX_SHARE), 1280**2)


def test_restore_says_when_detection_ran_on_a_reduced_copy() -> None:
    from facesr.restoration.api import restore

    photo = read_image(SAMPLES / "rwmfd_0002_0078.jpg")
    res = restore(photo, model="bicubic", device="cpu", detect=DetectOptions(max_pixels=photo.size // 3 // 4))
    assert any("reduced 2.0x" in n for n in res.notes), res.notes
    full = restore(photo, model="bicubic", device="cpu")
    assert not any("reduced" in n for n in full.notes)


#: A child process that restores a large photo with ``N`` faces reported by a fake detector (no MTCNN,
#: so it takes seconds) and prints its peak RSS before and after, in MB.
_CHILD = r"""
import json, resource, sys
import numpy as np

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from facesr.geometry import template
from facesr.restoration import api
from facesr.io import write_image

w, h, n_faces, upscale, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

class Grid:
    # n_faces faces of a 40 px template frame on a grid, in the coordinates of the image it is given
    def detect(self, image, min_size=None, factor=None):
        from types import SimpleNamespace
        ih, iw = image.shape[:2]
        side = 40 * iw / w
        cols = max(1, int(np.ceil(np.sqrt(n_faces))))
        lms, boxes = [], []
        for k in range(n_faces):
            x0 = (k % cols + 0.5) * iw / cols - side / 2
            y0 = (k // cols + 0.5) * ih / cols - side / 2
            lms.append(template(side) + [x0, y0])
            boxes.append([x0, y0, x0 + side, y0 + side])
        return SimpleNamespace(boxes=np.array(boxes), scores=np.full(n_faces, 0.99), landmarks=np.array(lms))

api._cached_detector = lambda device: Grid()
api.mask_model = lambda device="cpu": None  # the mask net's time is not what is measured here
tile = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
photo = np.empty((h, w, 3), np.uint8)  # textured (no face is too blurred), cheap to PNG-encode
for y in range(0, h, 256):
    for x in range(0, w, 256):
        photo[y : y + 256, x : x + 256] = tile[: h - y, : w - x]
api.restore(np.zeros((64, 64, 3), np.uint8), model="bicubic", device="cpu")  # imports, caches
before = peak()
res = api.restore(photo, model="bicubic", device="cpu", upscale=upscale)
del photo
write_image(out, res.image)
print(json.dumps({"before": before, "after": peak(), "restored": len(res.restored), "shape": res.image.shape}))
"""


@pytest.mark.parametrize(
    ("w", "h", "faces", "upscale"),
    [(9796, 6532, 150, 1), (4898, 3266, 150, 2)],
    ids=["64MP-x1-150-faces", "16MP-x2-150-faces"],
)
def test_restore_of_a_large_photo_with_many_faces_stays_in_budget(
    w: int, h: int, faces: int, upscale: int, tmp_path: Path
) -> None:
    """The heaviest legal path (faces aligned, restored, pasted, a 64 MP output written) adds at most
    the photo, the output and one encoder copy to the process: no whole-photo float copy (768 MB at
    64 MP), no full-size copy per stage. Measured (2026-12-01, 2-core CPU): 429 -> 933 MB at 64 MP x1 with 400 faces."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(w), str(h), str(faces), str(upscale), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["restored"] >= faces * 0.9 and rep["shape"][0] == h * upscale
    out_mb = w * h * upscale * upscale * 3 / 2**20
    # the input (made in the child), the output, Pillow's 4-byte-per-pixel copy for the PNG encoder
    bound = w * h * 3 / 2**20 + out_mb + out_mb * 4 / 3 + 160
    assert rep["after"] - rep["before"] < bound, rep
    assert rep["after"] < 1536, rep  # the documented budget (docs/reliability.md)
