"""Safe image reading: every kind of bad input is a one-line ImageReadError, never a crash."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.errors import ImageReadError
from facesr.io import atomic_write_bytes, encode_image, list_images, read_image, write_image


def _png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(arr).save(
        buf, format="PNG"
    )
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_rgb_roundtrip(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", arr)
    assert np.array_equal(read_image(tmp_path / "a.png"), arr)


@pytest.mark.parametrize(
    ("mode", "shape", "dtype"),
    [("L", (8, 9), np.uint8), ("RGBA", (8, 9, 4), np.uint8), ("I;16", (8, 9), np.uint16)],
)
def test_modes_become_rgb(tmp_path: Path, mode: str, shape: tuple[int, ...], dtype: type) -> None:
    arr = (np.arange(np.prod(shape)).reshape(shape) % 200).astype(dtype)
    if mode == "I;16":
        arr = arr * 300
    img = Image.fromarray(arr)
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    img.save(path)
    out = read_image(path)
    assert out.shape == (8, 9, 3) and out.dtype == np.uint8


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    assert (read_image(tmp_path / "t.png") == 255).all()


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    assert read_image(tmp_path / "r.jpg").shape == (20, 10, 3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a recognised image format"),
        (_bomb_png(20000, 20000), "limit"),
        (_bomb_png(1, 1), "too small"),
    ],
    ids=["empty", "not-image", "bomb-20000x20000", "1x1"],
)
def test_bad_inputs_one_line(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert reason in msg and "\n" not in msg and str(path) in msg


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = encode_image(np.full((64, 64, 3), 128, np.uint8), "JPEG")
    path = tmp_path / "trunc.jpg"
    path.write_bytes(data[: len(data) // 2])
    before = path.read_bytes()
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_image(path)
    assert path.read_bytes() == before  # input untouched


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    class Boom(Exception):
        pass

    from facesr.io import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Boom
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left behind


def test_list_images_sorted_recursive(tmp_path: Path) -> None:
    for rel in ["b/2.png", "a.jpg", "b/1.webp", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a.jpg",
        "b/1.webp",
        "b/2.png",
    ]


def test_truncated_tiff_is_an_error_not_zero_fill(tmp_path: Path) -> None:
    """Pillow only *warns* on truncated TIFF strips; facesr must refuse them (found by fuzzing)."""
    data = encode_image(np.full((64, 64, 3), 200, np.uint8), "TIFF")
    path = tmp_path / "trunc.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_remove_stale_temps_only_touches_temp_files(tmp_path: Path) -> None:
    from facesr.io import remove_stale_temps

    (tmp_path / "last.pt").write_bytes(b"ckpt")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_write_figure_jpeg_is_444_and_png_is_lossless(tmp_path: Path) -> None:
    """docs/img figures: a .jpg path gives quality-92 JPEG without chroma subsampling; .png stays exact."""
    from PIL import JpegImagePlugin

    from facesr.io import write_figure

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    write_figure(tmp_path / "fig.jpg", arr)
    with Image.open(tmp_path / "fig.jpg") as im:
        assert im.format == "JPEG" and im.size == (64, 48)
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    write_figure(tmp_path / "fig.png", arr)
    assert np.array_equal(read_image(tmp_path / "fig.png"), arr)
