"""Safe image reading and atomic file writing.

Every image that enters facesr goes through :func:`read_image`, so that bad input always
produces an :class:`~facesr.errors.ImageReadError` with a one-line reason instead of a
traceback, a hang or a memory blow-up:

* EXIF orientation is applied (phones store portrait photos rotated);
* grayscale, palette, RGBA/LA (composited on white), CMYK and 16-bit images become 8-bit RGB;
* a pixel-count limit, checked on the header's declared size *before* anything is decoded, guards
  against decompression bombs (Pillow's own warning is an error); the default limit is the one under
  which the documented memory budget of ``facesr restore`` holds (docs/reliability.md);
* truncated files are errors, never silently padded with grey. Pillow's JPEG decoder ignores
  libjpeg's "premature end of data segment" warning (a file cut short that still ends with the
  end-of-image marker decodes with its missing rows grey), so every JPEG is also walked by
  libjpeg-turbo through ``simplejpeg`` in strict mode at 1/8 scale (cheap: entropy decoding only
  at full size) and such files are refused.

:func:`as_rgb_array` applies the same rules to in-memory inputs of the Python API (numpy arrays,
PIL images that may still be lazily opened, bytes).

Every file facesr writes goes through :func:`atomic_write_bytes` or a helper built on it: the
bytes go to a temporary file in the destination folder, are flushed to disk, and are renamed
over the destination. A kill at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facesr.errors import ImageReadError

#: Default largest image accepted, in pixels (about 8,000 x 8,000). Larger images are refused
#: with a clear message rather than decoded into gigabytes of memory.
MAX_PIXELS = 64_000_000
#: Largest file read, in bytes: a 64-megapixel photo is well under it even as an uncompressed BMP;
#: bigger files are junk or padding, refused before they are read into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Smallest side accepted, in pixels.
MIN_SIDE = 2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# Never let Pillow pad a truncated file with grey; that would hide corrupt input.
ImageFile.LOAD_TRUNCATED_IMAGES = False


#: Rows converted at a time when an image is turned into an array (or a 16-bit / float image into
#: 8-bit): the temporary copies are one band, not one whole photo, whatever its size.
BAND_ROWS = 256


def _bands(height: int, rows: int = BAND_ROWS) -> Iterator[tuple[int, int]]:
    for y in range(0, height, rows):
        yield y, min(height, y + rows)


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float grey image as 8-bit "L", converted band by band.

    16-bit and integer data are scaled from 0-65535 when they exceed 255 (else kept); float data
    from 0-1 when it does not exceed 1. Why bands: a float64 copy of a 64 MP image is 512 MB.
    """
    w, h = img.size
    is_float = img.mode == "F"
    peak = 0.0
    for y0, y1 in _bands(h):  # first pass: the scale depends on the whole image's maximum
        band = np.asarray(img.crop((0, y0, w, y1)))
        if band.size:
            peak = max(peak, float(np.nanmax(band)) if is_float else float(band.max()))
    if is_float:
        scale = 255.0 if peak <= 1.0 else 1.0
    else:
        scale = 255.0 / (65535.0 if img.mode.startswith("I;16") or peak > 255 else 255.0)
    out = np.empty((h, w), np.uint8)
    for y0, y1 in _bands(h):
        band = np.asarray(img.crop((0, y0, w, y1)), dtype=np.float64)
        out[y0:y1] = np.clip(np.round(np.nan_to_num(band) * scale), 0, 255)
    return Image.fromarray(out, "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_l(img).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_array(img: Image.Image) -> np.ndarray:
    """An RGB Pillow image as a new ``H x W x 3`` uint8 array, copied band by band.

    ``np.asarray(img).copy()`` holds the image, a bytes copy and the array at once (three photos);
    this holds the image and the array only.
    """
    w, h = img.size
    out = np.empty((h, w, 3), np.uint8)
    for y0, y1 in _bands(h):
        out[y0:y1] = np.asarray(img.crop((0, y0, w, y1)))
    return out


#: libjpeg warnings after which the decoded picture has rows filled with grey (missing or undecodable
#: entropy-coded data). Other libjpeg warnings (e.g. "extraneous bytes before marker", common in
#: camera files) leave every pixel decoded and are accepted.
_JPEG_FILL_WARNINGS = (
    "premature end",
    "bad huffman code",
    "huffman table",
    "corrupt jpeg data: found marker",
)


def _check_jpeg_complete(data: bytes, name: str) -> None:
    """Raise ImageReadError when libjpeg would fill part of this JPEG with grey (see module docstring)."""
    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - a core dependency; without it only Pillow's checks run
        return
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "corrupt JPEG data"
        if any(key in msg.lower() for key in _JPEG_FILL_WARNINGS):
            raise ImageReadError(
                f"{name}: truncated or corrupt JPEG ({msg}); part of it would be grey"
            ) from None


@contextlib.contextmanager
def _decode_errors(name: str, max_pixels: int) -> Iterator[None]:
    """Turn everything a decoder can raise (or warn) about bad data into a one-line ImageReadError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Some decoders (TIFF) only *warn* on truncated data and fill the rest with zeros.
            warnings.filterwarnings("error", message=".*[Tt]runcated.*")
            yield
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            f"{name}: image is larger than the {max_pixels:,}-pixel limit (possible decompression bomb)"
        ) from None
    except Warning as exc:  # a decoder warning turned into an error above (truncated data)
        raise ImageReadError(f"{name}: cannot decode image ({str(exc).splitlines()[0]})") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        MemoryError,
        TypeError,
        IndexError,
        KeyError,
        ZeroDivisionError,
        RuntimeError,
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{name}: cannot decode image ({reason})") from None


def check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    """Refuse a declared size before any pixel is decoded (too many pixels, or a side under MIN_SIDE)."""
    if width * height > max_pixels:
        raise ImageReadError(f"{name}: {width}x{height} image is larger than the {max_pixels:,}-pixel limit")
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(f"{name}: {width}x{height} image is too small")


def _decode(img: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Size check on the header, then decode, orient and convert an opened (lazy) Pillow image."""
    w, h = img.size
    check_size(w, h, max_pixels, name)
    img.load()
    img = ImageOps.exif_transpose(img) or img
    return _to_rgb(img)


def open_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image fully into an RGB Pillow image, or raise ImageReadError (one line)."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    with _decode_errors(name, max_pixels):
        if isinstance(source, bytes):
            return _open_bytes(source, name, max_pixels)
        path = Path(source)
        if path.is_dir():
            raise ImageReadError(f"{name}: is a folder, not an image")
        if not path.exists():
            raise ImageReadError(f"{name}: no such file")
        size = path.stat().st_size
        if size == 0:
            raise ImageReadError(f"{name}: empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageReadError(
                f"{name}: file is {size / (1 << 20):,.0f} MiB; the limit is {MAX_FILE_BYTES >> 20} MiB"
            )
        with open(path, "rb") as fh:
            head = fh.read(3)
            fh.seek(0)
            if head == b"\xff\xd8\xff":  # JPEG: its bytes are walked by libjpeg-turbo too
                return _open_bytes(fh.read(), name, max_pixels)
            # Other formats decode from the open file: the file's bytes are not held beside the image.
            return _decode(Image.open(fh), name, max_pixels)
    raise AssertionError("unreachable")  # pragma: no cover - _decode_errors always raises or returns


def _open_bytes(data: bytes, name: str, max_pixels: int) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    if img.format in ("JPEG", "MPO"):
        check_size(*img.size, max_pixels, name)
        _check_jpeg_complete(data, name)
    return _decode(img, name, max_pixels)


def read_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as a ``H x W x 3`` uint8 RGB array (see module docstring for the rules)."""
    img = open_image(source, max_pixels=max_pixels)
    with _decode_errors("<bytes>" if isinstance(source, bytes) else str(source), max_pixels):
        return to_array(img)
    raise AssertionError("unreachable")  # pragma: no cover


def as_rgb_array(image: object, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Path / bytes / PIL image / numpy array -> ``H x W x 3`` uint8 RGB, or a one-line ImageReadError.

    Why here and not in the API: the CLI, the demo and library users must refuse the same things.
    Arrays: ``H x W`` (grey), ``H x W x 3`` or ``x 4`` (alpha dropped); integer or bool dtypes are
    clipped to 0-255, floats in [0, 1] are scaled by 255 (NaN -> 0); object, string or complex
    arrays and sides under ``MIN_SIDE`` (0 x 0 included) are refused. PIL images may be lazily
    opened files: the pixel limit is checked on their declared size before they are decoded, and a
    truncated file is an error like in :func:`read_image`.
    """
    if isinstance(image, (str, os.PathLike, bytes)):
        return read_image(image if isinstance(image, bytes) else Path(image), max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        name = f"PIL image ({image.format or image.mode})"
        with _decode_errors(name, max_pixels):
            return to_array(_decode(image, name, max_pixels))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, max_pixels)
    raise ImageReadError(
        f"cannot restore an object of type {type(image).__name__}; pass a path, PIL image or array"
    )


def _array_to_rgb(arr: np.ndarray, max_pixels: int) -> np.ndarray:
    if arr.dtype.kind not in "buif":
        raise ImageReadError(
            f"array of dtype {arr.dtype} is not an image; pass uint8 (0-255) or float (0-1) pixels"
        )
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageReadError(f"expected an H x W x 3 RGB array, got shape {arr.shape}")
    check_size(arr.shape[1], arr.shape[0], max_pixels, "array")
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            peak = float(arr[finite].max()) if finite.any() else 0.0
            scale = 255.0 if peak <= 1.0 else 1.0
            arr = np.clip(np.nan_to_num(arr.astype(np.float32) * scale, nan=0.0), 0, 255).round()
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3]).copy()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid is in the name, so a later run can tell a dead writer's leftover from a write
    # in progress (facesr.outputs.remove_dead_temps).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give outputs the usual permissions (0666 minus the umask).
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files (``.NAME.*.tmp``) that a killed atomic write left in ``folder``.

    Call it only when nothing else is writing there (e.g. when a training run resumes): an atomic
    write in progress would lose its temporary file. Returns the paths removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.glob(".*.tmp") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes so that ``path`` is either the old file or the complete new one."""
    with _atomic_target(Path(path)) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; it is renamed onto ``path`` on success only."""
    with _atomic_target(Path(path)) as tmp:
        yield tmp


def _pil_for_saving(array: np.ndarray, fmt: str, save_kwargs: dict[str, object]) -> Image.Image:
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {array.dtype}")
    if fmt.upper() == "PNG":
        save_kwargs.setdefault("compress_level", 6)
    return Image.fromarray(array)


def encode_image(array: np.ndarray, fmt: str = "PNG", **save_kwargs: object) -> bytes:
    """Encode an ``H x W x 3`` (or ``H x W``) uint8 array. PNG is written deterministically."""
    img = _pil_for_saving(array, fmt, save_kwargs)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def write_image(path: str | os.PathLike[str], array: np.ndarray, **save_kwargs: object) -> None:
    """Atomically write an image; the format follows the extension (default PNG).

    The encoder writes straight into the temporary file (the same bytes as :func:`encode_image`):
    a large output is not held in memory a second and third time as encoded bytes.
    """
    path = Path(path)
    ext = path.suffix.lower()
    fmt = {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".webp": "WEBP",
        ".bmp": "BMP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }.get(ext, "PNG")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)
    img = _pil_for_saving(array, fmt, save_kwargs)
    with _atomic_target(path) as tmp, open(tmp, "wb") as fh:
        img.save(fh, format=fmt, **save_kwargs)


#: Pillow options for documentation figures saved as JPEG (docs/img/*.jpg): quality 92 with no chroma
#: subsampling (4:4:4), so coloured edges and text stay sharp; a photo-like figure takes 1/4 to 1/2 of
#: its PNG's bytes (PSNR 42-48 dB against the PNG on the docs/img figures).
FIGURE_JPEG: dict[str, object] = {"quality": 92, "subsampling": 0, "optimize": True}


def write_figure(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a documentation figure: :data:`FIGURE_JPEG` for a ``.jpg``/``.jpeg`` path, else as
    :func:`write_image` does (the format follows the suffix)."""
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    write_image(path, array, **(FIGURE_JPEG if jpeg else {}))


def list_images(root: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files under ``root``, sorted (C-locale order of the relative path)."""
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())
