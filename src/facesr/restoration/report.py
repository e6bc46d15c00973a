"""The per-run report of ``facesr restore``: what was read, found, restored, skipped and why.

Why: a batch run over a folder must be auditable afterwards - every file and every face has a
status and, when it was not restored, a one-line reason. The JSON is written atomically next to
the outputs (``report.json``); the summary line is what the CLI prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facesr.io import atomic_write_text

REPORT_VERSION = 2


@dataclass
class RunReport:
    """Accumulates per-file results; ``to_json`` is the report format documented in docs/restore.md."""

    settings: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _t0: float = field(default_factory=time.perf_counter)

    def add_ok(
        self,
        path: Path | str,
        output: Path | str,
        faces: list[dict[str, Any]],
        timings: dict[str, float],
        extra_outputs: list[str] | None = None,
        *,
        upscale: int = 1,
        size: list[int] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.files.append(
            {
                "input": str(path),
                "status": "ok",
                "output": str(output),
                "upscale": upscale,
                "output_size": size or [],
                "notes": notes or [],
                "faces": faces,
                "timings_s": {k: round(v, 4) for k, v in timings.items()},
                "extra_outputs": extra_outputs or [],
            }
        )

    def add_failed(
        self,
        path: Path | str,
        reason: str,
        faces: list[dict[str, Any]] | None = None,
        timings: dict[str, float] | None = None,
    ) -> None:
        self.files.append(
            {
                "input": str(path),
                "status": "failed",
                "reason": reason,
                "faces": faces or [],
                "timings_s": {k: round(v, 4) for k, v in (timings or {}).items()},
            }
        )

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def counts(self) -> dict[str, int]:
        faces = [f for item in self.files for f in item["faces"]]
        return {
            "files": len(self.files),
            "ok": sum(f["status"] == "ok" for f in self.files),
            "failed": sum(f["status"] == "failed" for f in self.files),
            "faces_found": len(faces),
            "faces_restored": sum(f["status"] == "restored" for f in faces),
            "faces_kept": sum(f["status"] == "kept" for f in faces),
            "faces_skipped": sum(f["status"] == "skipped" for f in faces),
            "faces_masked": sum(f.get("mask") is True for f in faces),
        }

    def skip_reasons(self, status: str = "skipped") -> dict[str, int]:
        """Skipped (or kept) faces by reason kind ("too small", "low score", ...)."""
        out: dict[str, int] = {}
        for item in self.files:
            for f in item["faces"]:
                if f["status"] == status:
                    kind = f["reason"].split(" (")[0]
                    out[kind] = out.get(kind, 0) + 1
        return out

    def summary(self) -> str:
        c = self.counts
        skips = ", ".join(f"{v} {k}" for k, v in sorted(self.skip_reasons().items()))
        kept = ", ".join(f"{v} {k}" for k, v in sorted(self.skip_reasons("kept").items()))
        return (
            f"{c['ok']}/{c['files']} files written, {c['failed']} failed; faces: {c['faces_found']} found "
            f"({c['faces_masked']} masked), {c['faces_restored']} restored, {c['faces_kept']} kept"
            + (f" ({kept})" if kept else "")
            + f", {c['faces_skipped']} skipped"
            + (f" ({skips})" if skips else "")
            + f"; {time.perf_counter() - self._t0:.1f} s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "started_unix": round(self.started, 3),
            "elapsed_s": round(time.perf_counter() - self._t0, 4),
            "settings": self.settings,
            "counts": self.counts,
            "skipped_by_reason": self.skip_reasons(),
            "kept_by_reason": self.skip_reasons("kept"),
            "warnings": self.warnings,
            "files": self.files,
        }

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
