"""Which photos a batch restores: folders, globs, single files and manifests of paths, streamed.

Why its own module: at 10^6 photos the list of inputs is usually a manifest written by another
tool (a text file of paths, a CSV or Parquet export), not a folder; and it must be read in one
pass with the same naming rules as ``facesr restore`` so that a folder gives the same output
names with either command. Nothing here holds the whole list: manifests are read line by line
(Parquet by record batch), folders are walked one directory at a time in the order of
:func:`facesr.io.list_images`, and a listing too long to sort in memory (one directory or one glob
of more than :data:`SORT_IN_MEMORY` entries) is sorted on disk (:func:`sorted_strings`).

:func:`candidates` yields ``(key, path, name)`` per input, duplicates included: ``key`` is the
real path (one photo however it is spelt), ``path`` the absolute path the batch reads and records,
``name`` the output name relative to the output folder before its suffix becomes ``.png`` (the
path relative to the folder given, or the file name, as in ``facesr restore``). The driver drops
duplicates in its on-disk index (:mod:`.manifest`); :func:`expand_inputs` drops them in memory,
for small lists.
"""

from __future__ import annotations

import csv
import functools
import glob
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from facesr.errors import FacesrError

#: Suffixes that mark an input as a manifest (a list of photo paths), not a photo.
MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")
#: Column names accepted for the photo path in a CSV or Parquet manifest, in order of preference.
PATH_COLUMNS = ("path", "input", "file", "filename")
#: Entries of one directory or one glob sorted in memory; more are sorted in a temporary SQLite
#: file (10^6 names held as Python strings would be ~100 MB of driver memory).
SORT_IN_MEMORY = 100_000


def sorted_strings(items: Iterable[str], limit: int | None = None) -> Iterator[str]:
    """``sorted(items)`` (code-point order), in memory up to ``limit`` items (default
    :data:`SORT_IN_MEMORY`), in a temporary SQLite file beyond.

    UTF-8 (with lone surrogates passed through, as ``os.fsdecode`` makes them for undecodable
    bytes) keeps code-point order under byte comparison, so SQLite's BLOB order is Python's.
    """
    limit = SORT_IN_MEMORY if limit is None else limit
    it = iter(items)
    head: list[str] = []
    for s in it:
        head.append(s)
        if len(head) > limit:
            break
    else:
        yield from sorted(head)
        return
    db = sqlite3.connect("")  # a private temporary file, deleted on close
    try:
        db.execute("CREATE TABLE s(k BLOB)")
        rows = (s.encode("utf-8", "surrogatepass") for chunk in (head, it) for s in chunk)
        db.executemany("INSERT INTO s VALUES (?)", ((k,) for k in rows))
        del head
        for (k,) in db.execute("SELECT k FROM s ORDER BY k"):
            yield k.decode("utf-8", "surrogatepass")
    finally:
        db.close()


def _suffix(name: str) -> str:
    """``PurePath(name).suffix``, without making a path object."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def iter_images(root: Path) -> Iterator[tuple[str, str]]:
    """:func:`facesr.io.list_images` of ``root`` (same files, same order) as ``(path, relative
    path)`` strings, one directory at a time.

    ``list_images`` sorts the paths relative to ``root``; a directory's files share the prefix
    ``dir/``, so they are contiguous in that order and sorting each directory's entries by name
    (a sub-directory as ``name/``) and descending into sub-directories in place gives the same
    sequence. Like ``Path.glob('**/*')``: symlinked files count, symlinked directories are not
    entered, unreadable directories are skipped.
    """
    from facesr.io import IMAGE_EXTENSIONS

    def entries(folder: str) -> Iterator[str]:
        try:
            with os.scandir(folder) as it:
                for e in it:
                    try:
                        if e.is_dir() and not e.is_symlink():
                            yield e.name + "/"
                        elif _suffix(e.name).lower() in IMAGE_EXTENSIONS and e.is_file():
                            yield e.name
                    except OSError:
                        continue
        except OSError:
            return

    def walk(folder: str, rel: str) -> Iterator[tuple[str, str]]:
        for name in sorted_strings(entries(folder)):
            if name.endswith("/"):
                yield from walk(os.path.join(folder, name[:-1]), rel + name)
            else:
                yield os.path.join(folder, name), rel + name

    return walk(os.fspath(root), "")


def _manifest_name(raw: str, path: str) -> str:
    """A relative path in a manifest keeps its folders in the output name (never above the root)."""
    rel = raw.replace("\\", "/")
    if not rel.startswith("/"):
        parts = [p for p in rel.split("/") if p and p != "."]
        if parts and ".." not in parts:
            return "/".join(parts)
    return Path(path).name


def _pick_column(columns: list[str], manifest: Path) -> str:
    lower = {c.lower(): c for c in columns}
    for want in PATH_COLUMNS:
        if want in lower:
            return lower[want]
    if len(columns) == 1:
        return columns[0]
    raise FacesrError(
        f"manifest {manifest}: no path column; name one of {', '.join(PATH_COLUMNS)} (found {', '.join(columns)})"
    )


def _read_manifest(manifest: Path) -> Iterator[str]:
    """Raw path strings from a .txt (one per line, # comments), .csv or .parquet manifest."""
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".txt":
            with open(manifest, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield line
        elif suffix == ".csv":
            with open(manifest, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                col = _pick_column(list(reader.fieldnames or []), manifest)
                for row in reader:
                    value = (row.get(col) or "").strip()
                    if value:
                        yield value
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(manifest)
            col = _pick_column(pf.schema_arrow.names, manifest)
            for batch in pf.iter_batches(columns=[col], batch_size=65536):
                for value in batch.column(0).to_pylist():
                    if value:
                        yield str(value)
    except FacesrError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise FacesrError(f"cannot read manifest {manifest}: {exc}") from None
    except Exception as exc:  # pyarrow's own errors (corrupt Parquet) have no common base here
        raise FacesrError(f"cannot read manifest {manifest}: {type(exc).__name__}: {exc}") from None


def _is_manifest(p: Path) -> bool:
    return p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file()


def check_manifests(inputs: Iterable[str]) -> None:
    """Open every manifest among ``inputs`` and find its path column (a one-line FacesrError
    otherwise), so that a wrong manifest stops the batch before its output folder is made."""
    for item in inputs:
        p = Path(item).expanduser()
        if _is_manifest(p):
            for _ in _read_manifest(p):
                break


@functools.lru_cache(maxsize=1 << 16)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def real_key(path: str) -> str:
    """``os.path.realpath(path)`` with the folder's part cached: one ``lstat`` per photo instead
    of one per path component (10^6 manifest lines under a handful of folders)."""
    head, tail = os.path.split(path)
    if tail in ("", ".", "..") or os.path.islink(path):
        return os.path.realpath(path)
    return os.path.join(_real_dir(head or "."), tail)


def candidates(inputs: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """Folders (recursive), globs, files and manifests -> ``(key, path, name)``, in order,
    duplicates included (see the module docstring). Lazy: nothing is read before it is asked for.

    A path that does not exist is still yielded: the batch records it as a failed photo ("no
    such file") and the rest runs, as ``facesr restore`` does.
    """
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            for s, rel in iter_images(p):
                yield real_key(s), os.path.abspath(s), rel
        elif _is_manifest(p):
            base = os.fspath(p.parent)
            for raw in _read_manifest(p):
                s = os.path.expanduser(raw)
                s = s if os.path.isabs(s) else os.path.join(base, s)
                yield real_key(s), os.path.abspath(s), _manifest_name(raw, s)
        elif not p.exists() and any(ch in item for ch in "*?["):
            found = False
            for m in sorted_strings(glob.iglob(item, recursive=True)):
                if os.path.isfile(m):
                    found = True
                    yield real_key(m), os.path.abspath(m), os.path.basename(m)
            if not found:
                s = os.fspath(p)
                yield real_key(s), os.path.abspath(s), p.name
        else:
            s = os.fspath(p)
            yield real_key(s), os.path.abspath(s), p.name


def expand_inputs(inputs: Iterable[str]) -> Iterator[tuple[Path, Path]]:
    """``(path, name)`` per photo, in order, each photo once (duplicates dropped in memory: for
    lists that fit in it; the batch driver drops them in its on-disk index instead)."""
    seen: set[str] = set()
    for key, path, name in candidates(inputs):
        if key not in seen:
            seen.add(key)
            yield Path(path), Path(name)
