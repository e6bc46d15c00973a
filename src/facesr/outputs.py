"""Where a batch run writes: output paths that never replace what the run did not create, a report
that is valid at every moment, and clean-up of temporary files left by killed runs.

Why a module of its own: ``facesr restore -o photos photos/a.jpg`` used to replace an unrelated
``photos/a.png``, an earlier ``report.json`` was replaced, ``--save-faces`` paths of one input could
land on another input's outputs, and a ``kill -9`` left ``.tmp`` files and no report at all
(issue 17). The rules, in one place:

* **Never replace an input**, whatever the options.
* **Never replace a file that existed before the run** unless ``overwrite`` is set (``--overwrite``);
  otherwise the output gets the first free ``_1``, ``_2``... suffix before its extension and the run
  says so. Folders the run creates (``*_faces/``) follow the same rule.
* **Never write two outputs of one run to the same path** (the later one is suffixed), so the
  report names a distinct file for every output.
* **The report is rewritten atomically as the run goes** (:class:`ReportWriter`): first before any
  work, then after each file at most once per ``interval_s``, and at the end with
  ``"complete": true``. A killed run leaves a valid JSON report that lists what was done up to a
  moment before the kill, marked ``"complete": false``.
* **Temporary files of dead writers are removed** (:func:`remove_dead_temps`): every atomic write
  names its temporary file with the writer's process id (``facesr.io``), so a later run removes the
  ones whose process no longer exists and never touches a write in progress.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from facesr.io import atomic_write_text

#: ``.NAME.PID.RANDOM.tmp``: the temporary files of :func:`facesr.io.atomic_write_bytes` and friends.
_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$")
#: Temporary files without a process id (older facesr versions) are removed after this long.
LEGACY_TEMP_AGE_S = 3600.0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_dead_temps(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Delete ``.*.tmp`` files under ``folder`` whose writing process is gone; return them.

    A temporary file whose process id is alive (this process included) is a write in progress and is
    kept; one without a process id is removed only when older than ``LEGACY_TEMP_AGE_S``.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    me = os.getpid()
    removed = []
    for p in sorted(root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")):
        if not p.is_file() or p.is_symlink():
            continue
        m = _TEMP_RE.match(p.name)
        if m is not None:
            pid = int(m.group("pid"))
            if pid == me or _pid_alive(pid):
                continue
        else:
            try:
                if time.time() - p.stat().st_mtime < LEGACY_TEMP_AGE_S:
                    continue
            except OSError:
                continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


class OutputPlan:
    """Hands out output paths for one run under the rules in the module docstring.

    ``protected``: paths that are never replaced (the run's inputs). ``overwrite``: replace files
    that existed before the run (never protected ones). ``suffixed`` lists (wanted, given) pairs.
    """

    def __init__(self, *, protected: Iterable[Path] = (), overwrite: bool = False) -> None:
        self.protected = {Path(p).resolve() for p in protected}
        self.overwrite = overwrite
        self.claimed: set[Path] = set()  # resolved paths this run has handed out (files and folders)
        self.suffixed: list[tuple[Path, Path]] = []

    def _free(self, path: Path, *, folder: bool) -> bool:
        key = path.resolve()
        if key in self.claimed or key in self.protected:
            return False
        if not (path.exists() or path.is_symlink()):
            return True
        if folder:  # an existing folder is reused with --overwrite (its files are claimed one by one)
            return self.overwrite and path.is_dir() and not path.is_symlink()
        return self.overwrite and path.is_file() and not path.is_symlink()

    def _claim(self, path: Path, *, folder: bool) -> Path:
        path = Path(path)
        cand, n = path, 1
        while not self._free(cand, folder=folder):
            cand = (
                path.with_name(f"{path.stem}_{n}{path.suffix}")
                if not folder
                else path.with_name(f"{path.name}_{n}")
            )
            n += 1
        self.claimed.add(cand.resolve())
        if cand != path:
            self.suffixed.append((path, cand))
        return cand

    def file(self, path: str | os.PathLike[str]) -> Path:
        """A path to write ``path``'s output to: ``path`` itself or its first free suffixed variant."""
        return self._claim(Path(path), folder=False)

    def folder(self, path: str | os.PathLike[str]) -> Path:
        """A folder for one input's extra outputs (e.g. ``photo_faces/``) that this run owns."""
        return self._claim(Path(path), folder=True)

    def summary(self) -> str | None:
        """One line about suffixed outputs (None when every output got the path it wanted)."""
        if not self.suffixed:
            return None
        wanted, given = self.suffixed[0]
        more = f" (and {len(self.suffixed) - 1} more)" if len(self.suffixed) > 1 else ""
        hint = "" if self.overwrite else "; --overwrite replaces existing files instead"
        return (
            f"{wanted} already exists or is used by another output, so it was written as {given.name}"
            f"{more}{hint}; inputs are never replaced"
        )


class ReportWriter:
    """Rewrites the run report atomically as the run goes (see the module docstring).

    ``build`` returns the report as a JSON-able dict; the writer adds ``"complete"``.
    """

    def __init__(self, path: Path, build: Callable[[], dict[str, Any]], *, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.build = build
        self.interval_s = float(interval_s)
        self._last = 0.0
        self.write(complete=False)

    def write(self, *, complete: bool) -> None:
        data = dict(self.build())
        data["complete"] = complete
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n")
        self._last = time.monotonic()

    def update(self) -> None:
        """After each file: rewrite unless the last write is less than ``interval_s`` old."""
        if time.monotonic() - self._last >= self.interval_s:
            self.write(complete=False)

    def finish(self) -> None:
        self.write(complete=True)
