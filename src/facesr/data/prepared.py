"""Load a prepared set written by :mod:`facesr.data.prepare` (the arrays, memory-mapped)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesr.errors import DataError

FILES = ("faces128.npy", "faces64.npy", "landmarks128.npy", "split.npy", "manifest.jsonl", "report.json")
#: The exact command that prepares each named set the benchmarks and CR are built from, so that every
#: "not prepared" message can name it (CelebA-10k is test-only: it is never trained on).
PREPARE_COMMANDS = {"utkface": "facesr prepare utkface", "celeba10k": "facesr prepare celeba10k --all-test"}


def prepare_command(name: str) -> str:
    """The command that (re)builds the prepared set called ``name``."""
    return PREPARE_COMMANDS.get(name, f"facesr prepare SRC_FOLDER --name {name}")


def missing_reason(root: str | Path) -> str | None:
    """Why ``root`` is not a usable prepared set (not there, or files missing), or None when it is."""
    root = Path(root)
    if not root.is_dir():
        return f"prepared set {str(root)!r} not found"
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        return f"prepared set {str(root)!r} is incomplete (missing {', '.join(missing)})"
    return None


@dataclass
class PreparedSet:
    """Aligned faces (uint8 NHWC), their 68 landmarks in the 128 frame and the split (0 train, 1 test)."""

    root: Path
    faces128: np.ndarray
    faces64: np.ndarray
    landmarks128: np.ndarray
    split: np.ndarray
    report: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path, *, mmap: bool = True) -> PreparedSet:
        """Open ``root``; raises DataError (one line) when files are missing or inconsistent."""
        root = Path(root)
        why = missing_reason(root)
        if why:
            raise DataError(f"{why}; run `{prepare_command(root.name)}` first")
        mode = "r" if mmap else None
        try:  # np.load never unpickles here (allow_pickle=False); object arrays are a clear error
            f128 = np.load(root / "faces128.npy", mmap_mode=mode)
            f64 = np.load(root / "faces64.npy", mmap_mode=mode)
            lm = np.load(root / "landmarks128.npy", mmap_mode=mode)
            split = np.load(root / "split.npy")
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(
                f"prepared set {str(root)!r} has an unreadable array ({exc}); "
                f"re-run `{prepare_command(root.name)}`"
            ) from None
        n = len(f128)
        if not (len(f64) == len(lm) == len(split) == n) or f128.shape[1:] != (128, 128, 3):
            raise DataError(
                f"prepared set {str(root)!r} has inconsistent array shapes; "
                f"re-run `{prepare_command(root.name)}`"
            )
        report = json.loads((root / "report.json").read_text())
        return cls(root=root, faces128=f128, faces64=f64, landmarks128=lm, split=split, report=report)

    def __len__(self) -> int:
        return len(self.faces128)

    def indices(self, split: str) -> np.ndarray:
        """Row indices of ``"train"``, ``"test"`` or ``"all"``."""
        if split == "all":
            return np.arange(len(self))
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; use train, test or all")
        return np.flatnonzero(self.split == (1 if split == "test" else 0))

    def manifest(self) -> list[dict]:
        """The per-file records (one dict per input file, ok and failed)."""
        with open(self.root / "manifest.jsonl", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
