"""facesr.speed.allocator: glibc's malloc thresholds raised for the restore command, nothing elsewhere."""

from __future__ import annotations

import ctypes.util
import platform
from pathlib import Path

import pytest

from facesr.speed import allocator


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_are_accepted_by_glibc() -> None:
    # mallopt returns 0 for a value glibc refuses (e.g. an mmap threshold above its 32 MiB maximum)
    assert allocator.keep_freed_memory() is True


def test_no_c_library_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_freed_memory() is False


def test_the_restore_command_sets_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's restore calls it before any work (even one that then fails on its input)."""
    from facesr.cli import main

    calls: list[bool] = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(True) or True)
    status = main(["restore", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")])
    assert status != 0 and calls == [True]
