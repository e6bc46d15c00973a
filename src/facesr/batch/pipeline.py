"""The Ray Data job: tasks -> prepare (CPU tasks) -> restore (actor pool, CPU or GPU) -> driver.

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
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise FacesrError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
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
    prepare_cpus: float = 0.25  # each read/hash/decode task


def plan_shape(
    resources: dict[str, float],
    device: str,
    *,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float | None,
    photos_per_call: int,
    prepare_cpus: float = 0.25,
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


def run(
    tasks: Any,
    settings: RestoreSettings,
    shape: Shape,
    on_rows: Callable[[list[str], list[str]], None],
) -> None:
    """Run the job over ``tasks`` (a pyarrow table with :data:`TASK_COLUMNS`), calling
    ``on_rows(statuses, row_json)`` on the driver for every block of finished photos."""
    ray = require_ray()
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    n = tasks.num_rows
    if n == 0:
        return
    rows_per_block = max(1, min(shape.photos_per_call, math.ceil(n / shape.workers)))
    blocks = [tasks.slice(i, rows_per_block) for i in range(0, n, rows_per_block)]
    ds = ray.data.from_arrow(blocks)
    ds = ds.map_batches(
        prepare,
        fn_kwargs={"settings_sha256": settings.sha256, "max_pixels": settings.max_pixels},
        batch_format="numpy",
        batch_size=None,
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
