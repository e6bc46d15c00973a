"""Load a prepared set written by :mod:`facesr.data.prepare` (the arrays, memory-mapped)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesr.errors import DataError

FILES = ("faces128.npy", "faces64.npy", "landmarks128.npy", "split.npy", "manifest.jsonl", "report.json")


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
        missing = [f for f in FILES if not (root / f).is_file()]
        if missing:
            raise DataError(
                f"prepared set {str(root)!r} is incomplete (missing {', '.join(missing)}); "
                "run `facesr prepare` first"
            )
        mode = "r" if mmap else None
        try:  # np.load never unpickles here (allow_pickle=False); object arrays are a clear error
            f128 = np.load(root / "faces128.npy", mmap_mode=mode)
            f64 = np.load(root / "faces64.npy", mmap_mode=mode)
            lm = np.load(root / "landmarks128.npy", mmap_mode=mode)
            split = np.load(root / "split.npy")
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(
                f"prepared set {str(root)!r} has an unreadable array ({exc}); re-run `facesr prepare`"
            ) from None
        n = len(f128)
        if not (len(f64) == len(lm) == len(split) == n) or f128.shape[1:] != (128, 128, 3):
            raise DataError(
                f"prepared set {str(root)!r} has inconsistent array shapes; re-run `facesr prepare`"
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
