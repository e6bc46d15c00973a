"""The Ray Data job: tasks -> prepare: read, decode, detect (CPU tasks) -> restore (actor pool, CPU
or GPU) -> driver.

Why Ray Data rather than a launcher of our own: it already streams blocks with back-pressure (so
10^6 inputs never sit decoded in memory), retries the work of a dead worker, restarts actors,
and mixes CPU and GPU workers in one pipeline - the documented batch-inference pattern
(``map_batches`` with a callable class on an actor pool). The driver only receives each photo's
manifest row and appends it to the journal (:mod:`.manifest`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facesr.batch.manifest import TaskBlock
from facesr.batch.settings import RestoreSettings
from facesr.batch.work import TASK_COLUMNS, Restorer, prepare
from facesr.errors import FacesrError

INSTALL_HINT = 'facesr restore-batch needs Ray; install it with: pip install "facesr[ray]"'


def require_ray() -> Any:
    """Import Ray (and Ray Data) or raise the one-line install hint."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise FacesrError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, *, num_cpus: int | None = None) -> dict[str, float]:
    """``ray.init()`` on this machine, or join the cluster at ``address``; returns its resources."""
    ray = require_ray()
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": "WARNING"}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray raises plain Exception too ("timed out during startup")
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FacesrError(f"cannot start or join {where}: {first}") from None
    return dict(ray.cluster_resources())


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class Shape:
    """How the restore stage is laid out on the cluster."""

    workers: int  # restore actors (each loads the models once)
    cpus_per_worker: float
    gpus_per_worker: float
    photos_per_call: int  # photos per map_batches call (also the rows per input block)
    prepare_cpus: float = 0.5  # each read/hash/decode/detect task


def plan_shape(
    resources: dict[str, float],
    device: str,
    *,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float | None,
    photos_per_call: int,
    prepare_cpus: float = 0.5,
) -> Shape:
    """Default: one restore worker per GPU, else as many as fit in the CPUs left for reading.

    Restore actors hold their CPUs for the whole run, so at least ``prepare_cpus`` must stay free
    for the read/decode tasks or the pipeline waits forever; asking for more is a usage error.
    """
    gpus = resources.get("GPU", 0.0)
    budget = resources.get("CPU", 0.0) - prepare_cpus
    if device == "cuda":
        g = 1.0 if gpus_per_worker is None else gpus_per_worker
        n = workers or max(1, int(gpus // g) if g > 0 else 1)
    else:
        g = 0.0
        n = workers or max(1, int(budget // cpus_per_worker))
    if n * cpus_per_worker > budget + 1e-9:
        raise FacesrError(
            f"{n} restore worker(s) x {cpus_per_worker:g} CPU leave less than {prepare_cpus:g} of the cluster's "
            f"{resources.get('CPU', 0.0):g} CPUs for reading photos; use fewer --workers or a smaller --cpus-per-worker"
        )
    return Shape(
        workers=n,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=g,
        photos_per_call=photos_per_call,
        prepare_cpus=prepare_cpus,
    )


#: Most task rows per input block: with 10^6 inputs, ~4,000 blocks (each a prepare task that
#: streams its decoded photos on in batches of --photos-per-call, never a block of all 256).
MAX_BLOCK_ROWS = 256


def block_rows(n: int, shape: Shape) -> int:
    """Rows per input block: small runs spread over every worker, large ones in bounded blocks."""
    spread = math.ceil(n / max(1, 4 * shape.workers))  # a few blocks per worker keep them all busy
    return max(1, min(MAX_BLOCK_ROWS, max(shape.photos_per_call, math.ceil(n / 1000)), spread))


def _task_source_class() -> Any:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class _TaskSource(Datasource):
        """The task table's blocks on disk (:meth:`OutputFolder.write_tasks`) as a Ray Data source.

        Why not ``ray.data.from_arrow``: it runs one remote task per block just to read its
        metadata before anything starts (4,000 tasks for 10^6 photos; on a loaded 2-core machine
        one such round took minutes), and it needs the whole table in the driver's memory. Here
        each read task names one record batch of an Arrow IPC file in the output folder (which
        every node sees) and reads it where it runs; the driver holds only the list of blocks
        and knows their metadata.
        """

        def __init__(self, blocks: list[TaskBlock]) -> None:
            self.blocks = blocks

        def estimate_inmemory_data_size(self) -> int:
            return sum(b.nbytes for b in self.blocks)

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: Any = None, data_context: Any = None
        ) -> list:
            import pyarrow as pa

            schema = pa.schema([(c, pa.string()) for c in TASK_COLUMNS])
            return [
                ReadTask(
                    lambda b=b: [read_task_block(b)],
                    BlockMetadata(num_rows=b.rows, size_bytes=b.nbytes, exec_stats=None),
                    schema=schema,
                )
                for b in self.blocks
            ]

    return _TaskSource


def read_task_block(block: TaskBlock) -> Any:
    """One block of the task table as a pyarrow Table (read into memory; the file stays closed)."""
    import pyarrow as pa

    with pa.OSFile(block.path, "rb") as fh:
        return pa.Table.from_batches([pa.ipc.open_file(fh).get_batch(block.index)])


def task_source(blocks: list[TaskBlock]) -> Any:
    """A :class:`_TaskSource` (the class is made on first use: Ray is imported only when a batch runs)."""
    return _task_source_class()(blocks)


def run(
    blocks: list[TaskBlock],
    settings: RestoreSettings,
    shape: Shape,
    on_rows: Callable[[list[str], list[str]], None],
) -> None:
    """Run the job over the task table's ``blocks`` (:meth:`OutputFolder.write_tasks`), calling
    ``on_rows(statuses, row_json)`` on the driver for every block of finished photos."""
    ray = require_ray()
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    if not blocks:
        return
    # The read tasks ask for what prepare asks for, so Ray Data fuses the two into one task.
    ds = ray.data.read_datasource(task_source(blocks), ray_remote_args={"num_cpus": shape.prepare_cpus})
    ds = ds.map_batches(
        prepare,
        fn_kwargs={
            "settings_sha256": settings.sha256,
            "max_pixels": settings.max_pixels,
            "min_face": None if settings.aligned else settings.min_face,
            "threads": settings.threads,
        },
        batch_format="numpy",
        batch_size=shape.photos_per_call,
        num_cpus=shape.prepare_cpus,
    )
    ds = ds.map_batches(
        Restorer,
        fn_constructor_kwargs={"settings": settings},
        compute=ActorPoolStrategy(size=shape.workers),
        num_cpus=shape.cpus_per_worker,
        num_gpus=shape.gpus_per_worker or None,
        batch_size=shape.photos_per_call,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        on_rows([str(s) for s in batch["status"]], [str(r) for r in batch["row"]])


__all__ = [
    "INSTALL_HINT",
    "TASK_COLUMNS",
    "Shape",
    "connect",
    "disconnect",
    "plan_shape",
    "require_ray",
    "run",
]
