"""Where facesr reads data from and writes its working files to.

The face data is never copied into the repository. It is read from a configurable root:
the ``--data`` flag wins, then the ``FACESR_DATA`` environment variable, then ``../shared/data``
relative to the current directory (the layout of a checkout next to ``shared/``).

Prepared sets, frozen benchmarks, evaluation results and training runs go under a *workspace*:
``FACESR_WORKSPACE`` or ``./workspace`` (git-ignored).

Caches (the ONNX graphs of the restore engine, evaluation embeddings) are not work products: they
go to the user's cache folder, ``FACESR_CACHE`` or the platform's (``$XDG_CACHE_HOME/facesr`` or
``~/.cache/facesr`` on Linux, via platformdirs), so that ``facesr restore`` run in any folder
leaves nothing behind in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from facesr.errors import DataError

DEFAULT_DATA = Path("..") / "shared" / "data"


def data_root(override: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Path:
    """Return the shared face-data folder (flag > ``FACESR_DATA`` > ``../shared/data``)."""
    if override:
        root = Path(override)
    elif os.environ.get("FACESR_DATA"):
        root = Path(os.environ["FACESR_DATA"])
    else:
        root = DEFAULT_DATA
    root = root.expanduser()
    if must_exist and not root.is_dir():
        raise DataError(f"face data folder {str(root)!r} not found; pass --data DIR or set FACESR_DATA")
    return root


def workspace(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the workspace folder for prepared sets, benchmarks and runs (created on demand)."""
    root = Path(override or os.environ.get("FACESR_WORKSPACE") or "workspace").expanduser()
    return root


def cache_dir(kind: str | None = None) -> Path:
    """The user's facesr cache folder (``FACESR_CACHE`` > the platform's), or its ``kind`` sub-folder.

    Not created here: the caller creates it when it writes, and falls back to a temporary folder
    when it cannot (a read-only home).
    """
    env = os.environ.get("FACESR_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("facesr", appauthor=False))
    return root / kind if kind else root


def prepared_dir(name: str, override: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a prepared (aligned) face set, e.g. ``workspace/prepared/utkface``."""
    return workspace(override) / "prepared" / name


def benchmarks_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding the frozen benchmark sets (``FACESR_BENCHMARKS`` or ``workspace/benchmarks``)."""
    if os.environ.get("FACESR_BENCHMARKS") and override is None:
        return Path(os.environ["FACESR_BENCHMARKS"]).expanduser()
    return workspace(override) / "benchmarks"
