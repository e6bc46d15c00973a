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

Memory stays bounded with 10^7 inputs: the driver never holds the input list, the plan or the
journal in Python. While it plans, a scratch SQLite index in the state folder
(``.facesr-batch/index.sqlite``, rebuilt by every run, removed at its end) drops duplicate
inputs, finds free output names and joins each input with its last manifest row; the task table
is then written in blocks (``.facesr-batch/tasks/``, Arrow IPC) that the CPU stage reads on any
node. Every step streams in chunks; what stays resident is SQLite's page cache
(:data:`INDEX_CACHE_MB`) and one chunk of rows.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from facesr.batch.work import TASK_COLUMNS
from facesr.errors import FacesrError
from facesr.io import atomic_path

STATE_DIR = ".facesr-batch"
MANIFEST_NAME = "manifest.jsonl"
PLAN_NAME = "plan.parquet"
INDEX_NAME = "index.sqlite"
TASKS_DIR = "tasks"
#: Manifest columns a rerun needs to decide whether a photo is already done.
RESUME_COLUMNS = ("input", "input_sha256", "settings_sha256", "status", "output", "output_sha256")
#: SQLite page cache of the scratch index: the bound on what planning keeps resident.
INDEX_CACHE_MB = 16
#: Rows handled per step while planning (inserted, named, written).
CHUNK = 8192


def _abs(path: Path | str) -> str:
    return os.path.abspath(os.fspath(path))


@dataclass(frozen=True)
class TaskBlock:
    """One block of the task table on disk: record batch ``index`` of the Arrow IPC file ``path``."""

    path: str
    index: int
    rows: int
    nbytes: int


class OutputFolder:
    """The output folder of a batch: its plan (output names), manifest journal and scratch index."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.manifest = self.root / MANIFEST_NAME
        self.plan_path = self.state / PLAN_NAME
        self.index_path = self.state / INDEX_NAME
        self.tasks_dir = self.state / TASKS_DIR
        self._lock: IO[str] | None = None
        self._db: sqlite3.Connection | None = None

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
            _drop_partial_last_line(self.manifest)

    # ---- the scratch index ----------------------------------------------------------------------

    def _index(self, fresh: bool = False) -> sqlite3.Connection:
        """The scratch index; ``fresh``: a new, empty one (each plan; a killed run's is replaced).
        Only this process opens it, under the run lock, so it needs no journal and is held in
        exclusive mode."""
        if fresh and self._db is not None:
            self._db.close()
            self._db = None
        if self._db is None:
            self.index_path.unlink(missing_ok=True)
            db = sqlite3.connect(self.index_path)
            for pragma in (
                "journal_mode=OFF",
                "synchronous=OFF",
                "locking_mode=EXCLUSIVE",
                "temp_store=FILE",
                f"cache_size=-{INDEX_CACHE_MB * 1024}",
            ):
                db.execute(f"PRAGMA {pragma}")
            db.executescript(
                """
                CREATE TABLE plan(input TEXT PRIMARY KEY, output TEXT NOT NULL);
                CREATE INDEX plan_output ON plan(output);
                CREATE TABLE run(seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
                                 input TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
                CREATE TABLE done(input TEXT PRIMARY KEY, input_sha256 TEXT, settings_sha256 TEXT,
                                  status TEXT, output TEXT, output_sha256 TEXT);
                """
            )
            self._db = db
        return self._db

    def close(self) -> None:
        """Drop the scratch index and the task files (a rerun makes them again)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self.index_path.unlink(missing_ok=True)
        shutil.rmtree(self.tasks_dir, ignore_errors=True)

    # ---- plan: input -> output name -------------------------------------------------------------

    def plan(self, items: Iterable[tuple[str, str, str]]) -> int:
        """Index this run's inputs - ``(key, path, name)`` as :func:`facesr.batch.inputs.candidates`
        yields them - give every new one its output name, save the plan (before any photo is
        restored) and load the manifest's last row per input. Returns the number of inputs
        (duplicates, by ``key`` or by absolute path, counted once: the first one wins).

        Names follow ``facesr restore`` (NAME.png, then NAME_1.png ... on a clash); an input seen
        before keeps its output; a name that is taken by another input, by an input photo or by a
        file the batch did not create is skipped.
        """
        db = self._index(fresh=True)
        self._load_plan(db)
        it = iter(items)
        while True:
            chunk = [row for _, row in zip(range(CHUNK), it, strict=False)]
            if not chunk:
                break
            db.executemany("INSERT OR IGNORE INTO run(key, input, name) VALUES (?, ?, ?)", chunk)
        db.commit()
        self._assign_names(db)
        self._write_plan(db)
        self._load_done(db)
        return int(db.execute("SELECT count(*) FROM run").fetchone()[0])

    def _load_plan(self, db: sqlite3.Connection) -> None:
        if not self.plan_path.is_file():
            return
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.plan_path)
            for batch in pf.iter_batches(columns=["input", "output"], batch_size=CHUNK):
                rows = zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)
                db.executemany("INSERT OR REPLACE INTO plan(input, output) VALUES (?, ?)", rows)
        except Exception as exc:  # a plan we cannot read must not be silently replaced
            raise FacesrError(f"cannot read {self.plan_path}: {exc}; move it away to start over") from None
        db.commit()

    def _assign_names(self, db: sqlite3.Connection) -> None:
        from facesr.batch.inputs import _suffix

        taken_sql = (
            "SELECT EXISTS(SELECT 1 FROM plan WHERE output = ?1) OR EXISTS(SELECT 1 FROM plan WHERE input = ?1)"
            " OR EXISTS(SELECT 1 FROM run WHERE input = ?1)"
        )
        root = _abs(self.root)
        last = 0
        while True:
            new = db.execute(
                "SELECT seq, input, name FROM run r WHERE seq > ? AND NOT EXISTS "
                "(SELECT 1 FROM plan p WHERE p.input = r.input) ORDER BY seq LIMIT ?",
                (last, CHUNK),
            ).fetchall()
            if not new:
                break
            named: dict[str, str] = {}  # this chunk's outputs (inserted below, in one go)
            for seq, src, name in new:
                head, tail = os.path.split(name)  # Path(name).with_suffix(".png"), in strings
                base = os.path.abspath(
                    os.path.join(root, head, tail[: len(tail) - len(_suffix(tail))] + ".png")
                )
                stem, n, cand = base[:-4], 1, base
                while cand in named or db.execute(taken_sql, (cand,)).fetchone()[0] or os.path.lexists(cand):
                    cand = f"{stem}_{n}.png"
                    n += 1
                named[cand] = src
                last = seq
            db.executemany("INSERT INTO plan(output, input) VALUES (?, ?)", named.items())
            db.commit()

    def _write_plan(self, db: sqlite3.Connection) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("input", pa.string()), ("output", pa.string())])
        with atomic_path(self.plan_path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            cur = db.execute("SELECT input, output FROM plan ORDER BY rowid")
            while rows := cur.fetchmany(CHUNK):
                inputs, outputs = zip(*rows, strict=True)
                writer.write_table(pa.table({"input": inputs, "output": outputs}, schema=schema))

    def read_plan(self) -> dict[str, str]:
        """The saved plan as a dict (for tests and small folders: it holds every row)."""
        if not self.plan_path.is_file():
            return {}
        import pyarrow.parquet as pq

        table = pq.read_table(self.plan_path, columns=["input", "output"])
        return dict(zip(table.column("input").to_pylist(), table.column("output").to_pylist(), strict=True))

    def assign_outputs(self, items: Iterable[tuple[Path, Path]]) -> list[tuple[str, str]]:
        """:meth:`plan` for ``(path, name)`` pairs, returning ``(input, output)`` absolute paths in
        order (a list: for tests and small batches; the command streams :meth:`task_batches`)."""
        from facesr.batch.inputs import real_key

        self.plan((real_key(os.fspath(p)), _abs(p), os.fspath(rel)) for p, rel in items)
        return [(b["input"], b["output"]) for batch in self.task_batches(CHUNK) for b in batch.to_pylist()]

    # ---- the manifest's last row per input ------------------------------------------------------

    def _load_done(self, db: sqlite3.Connection) -> None:
        """The journal's last row per input (resume columns only) into the index, streamed."""
        if not self.manifest.is_file() or self.manifest.stat().st_size == 0:
            return
        import pyarrow as pa
        import pyarrow.json as pj

        schema = pa.schema([(c, pa.string()) for c in RESUME_COLUMNS])
        sql = f"INSERT OR REPLACE INTO done({', '.join(RESUME_COLUMNS)}) VALUES ({', '.join('?' * len(RESUME_COLUMNS))})"
        try:
            reader = pj.open_json(
                self.manifest,
                read_options=pj.ReadOptions(block_size=4 << 20),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            for batch in reader:
                cols = [batch.column(c).to_pylist() for c in RESUME_COLUMNS]
                db.executemany(sql, (r for r in zip(*cols, strict=True) if r[0] is not None))
        except Exception as exc:
            raise FacesrError(f"cannot read {self.manifest}: {exc}; move it away to start over") from None
        db.commit()

    def previous(self, path: str) -> dict[str, str] | None:
        """The manifest's last row for input ``path`` (resume columns), as loaded by :meth:`plan`."""
        row = (
            self._index()
            .execute(f"SELECT {', '.join(RESUME_COLUMNS)} FROM done WHERE input = ?", (path,))
            .fetchone()
        )
        return None if row is None else dict(zip(RESUME_COLUMNS, row, strict=True))

    # ---- the task table -------------------------------------------------------------------------

    def task_batches(self, rows: int) -> Iterator[Any]:
        """The task table (:data:`TASK_COLUMNS`, in input order) as Arrow record batches of at most
        ``rows`` rows: each input, its output and its last manifest row."""
        import pyarrow as pa

        schema = pa.schema([(c, pa.string()) for c in TASK_COLUMNS])
        cur = self._index().execute(
            "SELECT r.input, p.output, IFNULL(d.input_sha256, ''), IFNULL(d.settings_sha256, ''),"
            " IFNULL(d.status, ''), IFNULL(d.output_sha256, '')"
            " FROM run r JOIN plan p ON p.input = r.input LEFT JOIN done d ON d.input = r.input ORDER BY r.seq"
        )
        while chunk := cur.fetchmany(rows):
            cols = list(zip(*chunk, strict=True))
            yield pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in cols], schema=schema)

    def write_tasks(self, rows: int, blocks_per_file: int = 64) -> list[TaskBlock]:
        """Write the task table to ``.facesr-batch/tasks/`` in blocks of ``rows`` rows (Arrow IPC
        files of ``blocks_per_file`` record batches each); returns where each block lies."""
        import pyarrow as pa

        shutil.rmtree(self.tasks_dir, ignore_errors=True)
        self.tasks_dir.mkdir(parents=True)
        blocks: list[TaskBlock] = []
        writer, path, sink = None, "", None
        try:
            for batch in self.task_batches(rows):
                if writer is None or len(blocks) % blocks_per_file == 0:
                    if writer is not None:
                        writer.close()
                        sink.close()
                    path = str(self.tasks_dir / f"part-{len(blocks) // blocks_per_file:06d}.arrow")
                    sink = pa.OSFile(path, "wb")
                    writer = pa.ipc.new_file(sink, batch.schema)
                writer.write_batch(batch)
                blocks.append(TaskBlock(path, len(blocks) % blocks_per_file, batch.num_rows, batch.nbytes))
        finally:
            if writer is not None:
                writer.close()
                sink.close()
        return blocks

    # ---- manifest journal -----------------------------------------------------------------------

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
        """Rewrite the journal atomically with one row (the last) per input; returns the row count.

        Streamed: the line number of each input's last row goes through a temporary SQLite file,
        then the kept lines are copied in order."""
        if not self.manifest.is_file():
            return 0
        db = sqlite3.connect("")  # private temporary file
        try:
            db.execute(f"PRAGMA cache_size=-{INDEX_CACHE_MB * 1024}")
            db.execute("CREATE TABLE last(input TEXT PRIMARY KEY, line INTEGER NOT NULL)")
            with open(self.manifest, "rb") as fh:
                numbered = ((json.loads(line)["input"], i) for i, line in enumerate(fh))
                db.executemany("INSERT OR REPLACE INTO last(input, line) VALUES (?, ?)", numbered)
            db.execute("CREATE INDEX last_line ON last(line)")
            keep = (line for (line,) in db.execute("SELECT line FROM last ORDER BY line"))
            kept = 0
            with atomic_path(self.manifest) as tmp, open(self.manifest, "rb") as src, open(tmp, "wb") as dst:
                want = next(keep, None)
                for i, line in enumerate(src):
                    if i == want:
                        dst.write(line)
                        kept += 1
                        want = next(keep, None)
            return kept
        finally:
            db.close()


def _drop_partial_last_line(path: Path) -> None:
    """Cut a last line that a kill left without its newline (reads only the file's end)."""
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return
        pos = end
        while pos > 0:
            step = min(pos, 1 << 16)
            pos -= step
            fh.seek(pos)
            cut = fh.read(step).rfind(b"\n")
            if cut >= 0:
                fh.truncate(pos + cut + 1)
                return
        fh.truncate(0)
