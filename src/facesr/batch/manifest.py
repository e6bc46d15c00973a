"""The output folder's state: which output name each input gets, and the per-photo manifest.

Why here and written only by the driver: a rerun must find, for every input, the output name it
was given before (so names never shift when the input list grows) and the last result recorded
for it. Two files hold that, both owned by ``facesr restore-batch``:

* ``.facesr-batch/plan.parquet``: input -> output for every input any run was given, written
  atomically *before* any photo is restored. An existing file that is not in the plan was not made
  by a batch run, so it is never replaced (the input gets the next free name instead).
* ``manifest.jsonl``: one JSON object per finished photo (input, input_sha256, settings_sha256,
  status, reason, face counts, output, output_sha256, timings_s, worker). The driver appends rows
  as workers hand them back and fsyncs each batch, so a kill loses at most the rows in flight
  (their photos are simply done again); a half-written last line is dropped on the next start.
  When a run ends the journal is compacted to one row per input, the last one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from facesr.errors import FacesrError
from facesr.io import atomic_path, atomic_write_bytes

STATE_DIR = ".facesr-batch"
MANIFEST_NAME = "manifest.jsonl"
PLAN_NAME = "plan.parquet"
#: Manifest columns a rerun needs to decide whether a photo is already done.
RESUME_COLUMNS = ("input", "input_sha256", "settings_sha256", "status", "output", "output_sha256")


def _abs(path: Path | str) -> str:
    return os.path.abspath(os.fspath(path))


class OutputFolder:
    """The output folder of a batch: its plan (output names) and manifest journal."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.manifest = self.root / MANIFEST_NAME
        self.plan_path = self.state / PLAN_NAME
        self._lock: IO[str] | None = None

    def prepare(self) -> None:
        """Create the folder (and check it is writable), take the run lock, and repair a journal
        cut mid-line by a kill. The lock (``flock`` on ``.facesr-batch/lock``, released when the
        process ends, however it ends) keeps a second run from writing the same manifest."""
        if self.root.exists() and not self.root.is_dir():
            raise FacesrError(f"output {self.root} exists and is not a folder")
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            probe = self.state / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise FacesrError(f"cannot write to output folder {self.root}: {exc.strerror or exc}") from None
        import fcntl

        if self._lock is None:
            lock = open(self.state / "lock", "a+")  # noqa: SIM115 - held until the process ends
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise FacesrError(
                    f"another facesr restore-batch is writing to {self.root}; wait for it or use another -o"
                ) from None
            self._lock = lock
        if self.manifest.is_file():
            with open(self.manifest, "rb+") as fh:
                data = fh.read()
                if data and not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)

    # ---- plan: input -> output name -------------------------------------------------------------

    def read_plan(self) -> dict[str, str]:
        if not self.plan_path.is_file():
            return {}
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.plan_path, columns=["input", "output"])
        except Exception as exc:  # a plan we cannot read must not be silently replaced
            raise FacesrError(f"cannot read {self.plan_path}: {exc}; move it away to start over") from None
        return dict(zip(table.column("input").to_pylist(), table.column("output").to_pylist(), strict=True))

    def assign_outputs(self, items: Iterable[tuple[Path, Path]]) -> list[tuple[str, str]]:
        """``(input, output)`` absolute paths for this run's inputs; the plan is saved first.

        Names follow ``facesr restore`` (NAME.png, then NAME_1.png ... on a clash); an input seen
        before keeps its output; a name that is taken by another input, by an input photo or by a
        file the batch did not create is skipped.
        """
        plan = self.read_plan()
        items = [(_abs(p), rel) for p, rel in items]
        inputs = {p for p, _ in items}
        taken = set(plan.values()) | inputs | set(plan)
        out: list[tuple[str, str]] = []
        for src, rel in items:
            if src in plan:
                out.append((src, plan[src]))
                continue
            base = Path(_abs(self.root / rel.with_suffix(".png")))
            stem, n, cand = base.with_suffix(""), 1, base
            while str(cand) in taken or cand.exists() or cand.is_symlink():
                cand = Path(f"{stem}_{n}{base.suffix}")
                n += 1
            taken.add(str(cand))
            plan[src] = str(cand)
            out.append((src, str(cand)))
        self._write_plan(plan)
        return out

    def _write_plan(self, plan: dict[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"input": list(plan), "output": list(plan.values())})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(self.plan_path, sink.getvalue().to_pybytes())

    # ---- manifest journal -----------------------------------------------------------------------

    def read_done(self) -> Any:
        """The last manifest row per input (resume columns only) as a pandas DataFrame, or None."""
        if not self.manifest.is_file() or self.manifest.stat().st_size == 0:
            return None
        import pyarrow as pa
        import pyarrow.json as pj

        schema = pa.schema([(c, pa.string()) for c in RESUME_COLUMNS])
        try:
            table = pj.read_json(
                self.manifest,
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
        except Exception as exc:
            raise FacesrError(f"cannot read {self.manifest}: {exc}; move it away to start over") from None
        return table.to_pandas().drop_duplicates("input", keep="last").set_index("input")

    def append(self, rows: list[str]) -> None:
        """Append finished rows (one JSON object each) and fsync: a kill after this loses none."""
        if not rows:
            return
        text = "".join(r + "\n" for r in rows)
        with open(self.manifest, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def compact(self) -> int:
        """Rewrite the journal atomically with one row (the last) per input; returns the row count."""
        if not self.manifest.is_file():
            return 0
        last: dict[str, int] = {}
        with open(self.manifest, "rb") as fh:
            for i, line in enumerate(fh):
                last[json.loads(line)["input"]] = i
        keep = set(last.values())
        with atomic_path(self.manifest) as tmp, open(self.manifest, "rb") as src, open(tmp, "wb") as dst:
            for i, line in enumerate(src):
                if i in keep:
                    dst.write(line)
        return len(keep)
