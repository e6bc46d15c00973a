"""Safe image reading and atomic file writing.

Every image that enters facesr goes through :func:`read_image`, so that bad input always
produces an :class:`~facesr.errors.ImageReadError` with a one-line reason instead of a
traceback, a hang or a memory blow-up:

* EXIF orientation is applied (phones store portrait photos rotated);
* grayscale, palette, RGBA/LA (composited on white), CMYK and 16-bit images become 8-bit RGB;
* a pixel-count limit guards against decompression bombs (Pillow's own warning is an error);
* truncated files are errors, never silently padded with grey.

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
#: Smallest side accepted, in pixels.
MIN_SIDE = 2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# Never let Pillow pad a truncated file with grey; that would hide corrupt input.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr8 = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image fully into an RGB Pillow image, or raise ImageReadError (one line)."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            fh: io.BufferedIOBase | io.BytesIO = io.BytesIO(source)
        else:
            path = Path(source)
            if path.is_dir():
                raise ImageReadError(f"{name}: is a folder, not an image")
            if not path.exists():
                raise ImageReadError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise ImageReadError(f"{name}: empty file (0 bytes)")
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        with fh, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Some decoders (TIFF) only *warn* on truncated data and fill the rest with zeros.
            warnings.filterwarnings("error", message=".*[Tt]runcated.*")
            img = Image.open(fh)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageReadError(f"{name}: {w}x{h} image is larger than the {max_pixels:,}-pixel limit")
            if min(w, h) < MIN_SIDE:
                raise ImageReadError(f"{name}: {w}x{h} image is too small")
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
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


def read_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as a ``H x W x 3`` uint8 RGB array (see module docstring for the rules)."""
    return np.asarray(open_image(source, max_pixels=max_pixels), dtype=np.uint8).copy()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def encode_image(array: np.ndarray, fmt: str = "PNG", **save_kwargs: object) -> bytes:
    """Encode an ``H x W x 3`` (or ``H x W``) uint8 array. PNG is written deterministically."""
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {array.dtype}")
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt.upper() == "PNG":
        save_kwargs.setdefault("compress_level", 6)
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def write_image(path: str | os.PathLike[str], array: np.ndarray, **save_kwargs: object) -> None:
    """Atomically write an image; the format follows the extension (default PNG)."""
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
    atomic_write_bytes(path, encode_image(array, fmt, **save_kwargs))


def list_images(root: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files under ``root``, sorted (C-locale order of the relative path)."""
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())
