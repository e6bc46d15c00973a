"""Helpers shared by the data tests: a tiny prepared set built from the committed fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

FIX = Path(__file__).parent / "fixtures" / "data"


def make_prepared(root: Path, *, n_test: int = 2) -> Path:
    """Prepare ``utkface`` (4 fixture faces) and ``celeba10k`` (1 face) under ``root/prepared``."""
    from facesr.data.prepare import prepare

    prep = root / "prepared"
    src = root / "src_utk"
    shutil.copytree(FIX / "utk", src)
    prepare(src, prep / "utkface", workers=1, n_test=n_test, progress=False)
    prepare(FIX / "celeba", prep / "celeba10k", workers=1, n_test=None, progress=False)
    return prep
