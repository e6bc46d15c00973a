"""Which photos a batch restores: folders, globs, single files and manifests of paths.

Why its own module: at 10^6 photos the list of inputs is usually a manifest written by another
tool (a text file of paths, a CSV or Parquet export), not a folder; and it must be read in one
pass with the same naming rules as ``facesr restore`` so that a folder gives the same output
names with either command. Each input comes back as ``(path, name)``: ``name`` is the output name
relative to the output folder before its suffix becomes ``.png`` (the path relative to the folder
given, or the file name, as in ``facesr restore``).
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from facesr.errors import FacesrError

#: Suffixes that mark an input as a manifest (a list of photo paths), not a photo.
MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")
#: Column names accepted for the photo path in a CSV or Parquet manifest, in order of preference.
PATH_COLUMNS = ("path", "input", "file", "filename")


def _manifest_name(raw: str, path: Path) -> Path:
    """A relative path in a manifest keeps its folders in the output name (never above the root)."""
    rel = PurePosixPath(raw.replace("\\", "/"))
    if not rel.is_absolute() and ".." not in rel.parts and rel.parts:
        return Path(*rel.parts)
    return Path(path.name)


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
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FacesrError(f"cannot read manifest {manifest}: {exc}") from None
    except Exception as exc:  # pyarrow's own errors (corrupt Parquet) have no common base here
        raise FacesrError(f"cannot read manifest {manifest}: {type(exc).__name__}: {exc}") from None


def expand_inputs(inputs: tuple[str, ...] | list[str]) -> Iterator[tuple[Path, Path]]:
    """Folders (recursive), globs, files and manifests -> ``(path, name)``, in order, unique.

    A path that does not exist is still yielded: the batch records it as a failed photo ("no
    such file") and the rest runs, as ``facesr restore`` does.
    """
    from facesr.io import list_images

    seen: set[str] = set()

    def fresh(path: Path) -> bool:
        key = os.path.realpath(path)  # as facesr restore: one photo, however it is spelt
        if key in seen:
            return False
        seen.add(key)
        return True

    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            for f in list_images(p):
                if fresh(f):
                    yield f, f.relative_to(p)
        elif p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file():
            for raw in _read_manifest(p):
                f = Path(raw).expanduser()
                f = f if f.is_absolute() else p.parent / f
                if fresh(f):
                    yield f, _manifest_name(raw, f)
        elif not p.exists() and any(ch in item for ch in "*?["):
            files = [Path(m) for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file()]
            for f in files or [p]:
                if fresh(f):
                    yield f, Path(f.name)
        elif fresh(p):
            yield p, Path(p.name)
