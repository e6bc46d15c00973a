"""`facesr restore-batch` on a real two-node Ray cluster (loopback only), killed and resumed.

One test, one cluster (starting Ray nodes is most of the cost on 2 cores): a first run loses a
restore worker (SIGKILL) and then its driver mid-run; the rerun must finish every photo exactly
once - every output byte-identical to ``facesr restore`` with the same settings, no duplicate
output, one manifest row per photo, no temporary file left - and must skip what the first run
finished. The cluster lives in its own network and pid namespaces (tests/ray_cluster.py), so every
process it starts ends with it, whatever happens to the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="pip install 'facesr[ray]'")

import ray_cluster
from facesr.cli import main
from facesr.io import read_image, write_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
#: Crops of the bundled samples with one or two faces each: the work per photo stays small.
CROPS = [
    ("rwmfd_0002_0078.jpg", (0, 0, 128, 100)),
    ("rwmfd_0002_0078.jpg", (128, 40, 256, 167)),
    ("rwmfd_0002_0032.jpg", (0, 0, 128, 100)),
    ("rwmfd_0006_0036.jpg", (60, 20, 200, 140)),
    ("rwmfd_0006_0060.jpg", (0, 30, 140, 160)),
    ("rwmfd_0006_0060.jpg", (120, 0, 256, 120)),
]
#: The same restore settings for `facesr restore` (the reference) and `facesr restore-batch`.
OPTS = ["--model", "bicubic", "--device", "cpu", "--engine", "torch", "--upscale", "1"]
RESTORER = "MapWorker(MapBatches(Restorer))"


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for i, (name, (x0, y0, x1, y1)) in enumerate(CROPS):
        arr = read_image(SAMPLES / name)
        x1, y1 = min(x1, arr.shape[1]), min(y1, arr.shape[0])
        paths.append(folder / f"photo{i}.png")
        write_image(paths[-1], np.ascontiguousarray(arr[y0:y1, x0:x1]))
    return paths


def _rows(manifest: Path) -> list[dict]:
    if not manifest.is_file():
        return []
    lines = manifest.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            return  # the run ended first; the caller checks what it left
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    why = ray_cluster.available()
    if why:
        pytest.skip(why)
    c = ray_cluster.Cluster(nodes=2, cpus=2)
    try:
        try:
            c.start()
        except RuntimeError as exc:
            # Known open problem (issue 18): on the 2026-12-01 machine the namespace holder exited within
            # ~30 s without output; the reason is printed here so the skip is visible, not silent.
            pytest.skip(f"the two-node Ray cluster did not start here: {exc}")
        yield c
    finally:
        c.stop()
        assert not c.alive(), "a process of the Ray cluster outlived the test"


@pytest.mark.skip(
    reason="known open problem (issue 18): on the 2026-12-01 machine the cluster sometimes does not start, "
    "and when it does the worker-kill step races the run (IndexError: the restore workers were gone when "
    "listed); to be fixed before issue 18 is closed"
)
def test_killed_worker_and_driver_then_rerun_gives_every_photo_once_identical_to_restore(
    cluster: ray_cluster.Cluster, tmp_path: Path
) -> None:
    inputs = _inputs(tmp_path / "in")
    ref = tmp_path / "ref"
    assert main(["restore", str(tmp_path / "in"), "-o", str(ref), *OPTS]) == 0
    out = tmp_path / "out"
    manifest = out / "manifest.jsonl"
    # 1.5 CPUs per restore worker on nodes of 2: one worker per node, both nodes restore.
    cmd = [sys.executable, "-m", "facesr.cli", "restore-batch", str(tmp_path / "in"), "-o", str(out), *OPTS]
    cmd += [
        "--address",
        cluster.address,
        "--workers",
        "2",
        "--cpus-per-worker",
        "1.5",
        "--photos-per-call",
        "1",
    ]

    log1 = open(tmp_path / "run1.log", "w")  # noqa: SIM115 - closed below
    first = cluster.popen(cmd, stdout=log1, stderr=subprocess.STDOUT)
    try:

        def restorers() -> list[int]:
            return [pid for pid, args in cluster.processes() if RESTORER in args]

        _wait(lambda: len(restorers()) == 2, 240, "both restore workers", first)
        workers = restorers()
        _wait(lambda: len(_rows(manifest)) >= 1, 240, "the first finished photo", first)
        cluster.kill(workers[0])  # a worker dies mid-run (Ray restarts it and retries its photo)
        done_at_kill = len(_rows(manifest))
        _wait(lambda: len(_rows(manifest)) > done_at_kill, 120, "a photo after the worker kill", first)
        drivers = [
            pid for pid, args in cluster.processes() if "restore-batch" in args and "nsenter" not in args
        ]
        for pid in drivers:
            cluster.kill(pid)  # then the driver dies too: the run is cut short
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        log1.close()
    finished_first = {r["input"] for r in _rows(manifest) if r["status"] == "ok"}
    assert len(finished_first) >= 1, (tmp_path / "run1.log").read_text()[-3000:]

    second = cluster.run(cmd, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = second.stdout.strip().splitlines()[-1]
    n = len(inputs)
    assert f"of {n} in" in summary and "0 failed" in summary, summary
    assert f"{len(finished_first)} already done" in summary, summary  # the rerun skipped them

    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(p.name for p in ref.glob("*.png")) == [f"photo{i}.png" for i in range(n)]
    for name in pngs:  # byte-identical to facesr restore with the same settings
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    rows = _rows(manifest)
    assert len(rows) == n and {r["input"] for r in rows} == {str(p) for p in inputs}
    assert all(r["status"] == "ok" and r["settings_sha256"] == rows[0]["settings_sha256"] for r in rows)
    assert not [p for p in out.rglob("*.tmp")], "a half-written file was left"
    # The driver joined both nodes (2 + 2 CPUs), and each of the 2 restore workers needs 1.5 of a
    # node's 2 CPUs, so they ran on different nodes.
    assert "2 restore worker(s) on cpu (4 CPUs" in second.stderr, second.stderr[-2000:]
    assert len(workers) == 2, workers
    assert all(r["node"] for r in rows)
