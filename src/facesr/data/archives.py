"""Safe extraction of zip and tar archives of face images.

Why this exists: ``zipfile.extractall`` and ``tarfile.extractall`` (without a filter) trust member
names, so an archive can write outside its target (``../evil``, ``/etc/x``), plant a symlink and then
write through it, hard-link to a system file, or expand a few kB into gigabytes. Here every member
is checked *before anything is written*; one bad member rejects the whole archive with a one-line
:class:`~facesr.errors.DataError`. Only regular files and folders are extracted, by copying their
bytes (never through the library's own extract functions), with a cap on the total size.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facesr.errors import DataError

#: Largest total uncompressed size extracted by default (a zip bomb stops here).
MAX_TOTAL_BYTES = 8 << 30
MAX_MEMBERS = 1_000_000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Member:
    name: str  # normalised relative POSIX path
    is_dir: bool
    size: int
    ref: object  # ZipInfo or TarInfo


def _safe_name(archive: Path, raw: str) -> str:
    """Reject absolute paths, drive letters, backslashes and any '..' component."""
    if not raw or "\x00" in raw:
        raise DataError(f"{archive}: member with an empty or invalid name")
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or "\\" in raw:
        raise DataError(f"{archive}: member {raw!r} has an absolute or Windows path; refusing the archive")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        raise DataError(f"{archive}: member {raw!r} points outside the target folder; refusing the archive")
    return "/".join(parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[_Member]:
    out = []
    for info in zf.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer stored no file type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DataError(
                f"{archive}: member {info.filename!r} is a link or special file; refusing the archive"
            )
        name = _safe_name(archive, info.filename)
        out.append(_Member(name, info.is_dir(), info.file_size, info))
    return out


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[_Member]:
    out = []
    for info in tf.getmembers():
        if not (info.isreg() or info.isdir()):
            kind = "link" if (info.issym() or info.islnk()) else "special file"
            raise DataError(f"{archive}: member {info.name!r} is a {kind}; refusing the archive")
        name = _safe_name(archive, info.name)
        out.append(_Member(name, info.isdir(), info.size, info))
    return out


def safe_extract(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, max_total_bytes: int = MAX_TOTAL_BYTES
) -> list[Path]:
    """Extract a .zip / .tar(.gz|.bz2|.xz) into ``target``; return the files written.

    Raises DataError (nothing written) if any member would land outside ``target``, is a symlink,
    hard link or device, or if the declared sizes exceed ``max_total_bytes``. Sizes are enforced
    again while copying, so a member that lies about its size cannot exceed the cap either.
    """
    archive, target = Path(archive), Path(target)
    try:
        if zipfile.is_zipfile(archive):
            opener, lister = zipfile.ZipFile, _zip_members
        elif tarfile.is_tarfile(archive):
            opener, lister = tarfile.open, _tar_members
        else:
            raise DataError(f"{archive}: not a zip or tar archive")
        with opener(archive) as handle:  # type: ignore[operator]
            members = lister(archive, handle)
            if len(members) > MAX_MEMBERS:
                raise DataError(f"{archive}: {len(members):,} members is more than the {MAX_MEMBERS:,} limit")
            declared = sum(m.size for m in members)
            if declared > max_total_bytes:
                raise DataError(
                    f"{archive}: would expand to {declared:,} bytes, over the {max_total_bytes:,} limit"
                )
            return _write(archive, handle, members, target.resolve(), max_total_bytes)
    except DataError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{archive}: cannot read archive ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        ) from None


def _write(archive: Path, handle: object, members: list[_Member], root: Path, budget: int) -> list[Path]:
    written: list[Path] = []
    root.mkdir(parents=True, exist_ok=True)
    for m in members:
        dest = root / m.name
        # Belt and braces: a folder created earlier could be a symlink planted outside this function.
        if not dest.parent.resolve().is_relative_to(root):
            raise DataError(f"{archive}: member {m.name!r} resolves outside the target folder")
        if m.is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            raise DataError(f"{archive}: {dest} is a symlink; refusing to write through it")
        zf = isinstance(handle, zipfile.ZipFile)
        src = handle.open(m.ref) if zf else handle.extractfile(m.ref)  # type: ignore[union-attr, arg-type]
        with src, open(dest, "xb") as out:
            while chunk := src.read(_CHUNK):
                budget -= len(chunk)
                if budget < 0:
                    raise DataError(f"{archive}: expands beyond the size limit; extraction stopped")
                out.write(chunk)
        written.append(dest)
    return written
