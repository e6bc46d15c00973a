"""The run's log file and the one-line hardware description, shared by the loop, cards and summaries.

A leaf of :mod:`facesr.train` (the loop writes ``log.jsonl``; the card, the run summaries and validation
read it), so that reading a log never imports the loop.
"""

from __future__ import annotations

import contextlib
import json
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def iter_log(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a run's log.jsonl (skipping a line cut by a kill)."""
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            yield json.loads(line)


def hardware() -> str:
    """A short description of the machine (for cards and logs)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
