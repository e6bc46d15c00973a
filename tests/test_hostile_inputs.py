"""Issue 17, inputs: grey-filled JPEGs, odd arrays and lazily opened PIL images are one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facesr.io as fio
from facesr.errors import ImageReadError
from facesr.io import as_rgb_array, read_image

SAMPLE = Path(fio.__file__).parent / "samples" / "rwmfd_0002_0032.jpg"


def _cut_jpeg_with_eoi() -> bytes:
    """The probe's case: a JPEG cut in the middle of its scan that still ends with FFD9."""
    data = SAMPLE.read_bytes()
    return data[: len(data) // 2] + b"\xff\xd9"


def test_pillow_alone_decodes_the_cut_jpeg_grey() -> None:
    """Control: without facesr's check Pillow returns an image whose bottom rows are flat grey."""
    img = Image.open(io.BytesIO(_cut_jpeg_with_eoi()))
    img.load()
    arr = np.asarray(img.convert("RGB"))
    grey_rows = int((arr.reshape(arr.shape[0], -1) == 128).all(1).sum())
    assert grey_rows > arr.shape[0] // 4


def test_cut_jpeg_with_end_marker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(_cut_jpeg_with_eoi())
    with pytest.raises(ImageReadError, match="truncated or corrupt JPEG") as err:
        read_image(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ImageReadError, match="truncated or corrupt JPEG"):
        read_image(path.read_bytes())


def test_intact_jpeg_and_extraneous_bytes_still_read(tmp_path: Path) -> None:
    assert read_image(SAMPLE).shape[2] == 3
    data = SAMPLE.read_bytes()
    # Bytes between the scan and the EOI marker: libjpeg warns ("extraneous bytes") but every pixel
    # is decoded, as in many camera files, so this is accepted.
    padded = data[:-2] + b"\x00\x00\x00" + data[-2:]
    assert np.array_equal(read_image(padded), read_image(data))


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fio, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageReadError, match="the limit is"):
        read_image(SAMPLE)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.empty((0, 0, 3), np.uint8), "too small"),
        (np.empty((0, 0), np.uint8), "too small"),
        (np.zeros((1, 50, 3), np.uint8), "too small"),
        (np.array([[[object()] * 3] * 4] * 4, dtype=object), "dtype object"),
        (np.full((4, 4, 3), "a"), "dtype <U1"),
        (np.zeros((4, 4, 3), np.complex64), "dtype complex64"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((4, 4, 3, 1), np.uint8), "shape"),
    ],
)
def test_bad_arrays_are_one_line_errors(array: np.ndarray, match: str) -> None:
    with pytest.raises(ImageReadError, match=match) as err:
        as_rgb_array(array)
    assert "\n" not in str(err.value)


def test_array_pixel_limit_and_conversions() -> None:
    with pytest.raises(ImageReadError, match="pixel limit"):
        as_rgb_array(np.zeros((100, 100, 3), np.uint8), max_pixels=99 * 100)
    grey = as_rgb_array(np.full((4, 5), 7, np.uint8))
    assert grey.shape == (4, 5, 3) and (grey == 7).all()
    f = np.full((4, 4, 3), 0.5, np.float32)
    f[0, 0, 0] = np.nan
    out = as_rgb_array(f)
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[1, 1, 1] == 128
    assert (as_rgb_array(np.ones((3, 3, 3), bool)) == 1).all()
    assert (as_rgb_array(np.full((3, 3, 4), 300, np.int32)) == 255).all()


def test_lazy_truncated_pil_image_is_an_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(buf, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    lazy = Image.open(cut)  # not decoded yet: decoding happens inside as_rgb_array
    with pytest.raises(ImageReadError, match="cannot decode") as err:
        as_rgb_array(lazy)
    assert "\n" not in str(err.value)


def test_lazy_pil_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(big)
    lazy = Image.open(big)
    with pytest.raises(ImageReadError, match="pixel limit"):
        as_rgb_array(lazy, max_pixels=100_000)
    assert lazy.tile  # Pillow clears its tile list once it has decoded: nothing was decoded
    assert as_rgb_array(Image.open(big)).shape == (300, 400, 3)


def test_restore_api_uses_the_same_rules() -> None:
    from facesr.restoration.api import restore

    with pytest.raises(ImageReadError, match="dtype object"):
        restore(np.empty((4, 4, 3), dtype=object), model="bicubic", device="cpu")
    with pytest.raises(ImageReadError, match="too small"):
        restore(np.empty((0, 0, 3), np.uint8), model="bicubic", device="cpu")
