"""`facesr restore-batch` on a real two-node Ray cluster (loopback only), killed and resumed.

One test, one cluster (starting Ray nodes and workers is most of the cost on 2 cores; the
reference `facesr restore` runs meanwhile, at a lower priority, in a process of its own). The first run is
frozen (SIGSTOP of its driver, so no new work is handed out and the run cannot end meanwhile)
once both restore workers are up and a photo is done; a restore worker is then SIGKILLed - mid-run
by construction, not by timing - the driver goes on, and is SIGKILLed itself after the next
finished photo. The rerun must finish every photo exactly once - every output byte-identical to
``facesr restore`` with the same settings, no duplicate output, one manifest row per photo, no
temporary file left - and must skip what the first run finished. The cluster lives in its own
network and pid namespaces (tests/ray_cluster.py), so every process it starts ends with it,
whatever happens to the test; the test is bounded by pytest-timeout and by each wait's own limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="pip install 'facesr[ray]'")

import ray_cluster
from facesr.io import read_image, write_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
#: Crops of the bundled samples (about 7 faces each; 0.3 CPU-s per photo): the work per photo
#: stays small, and there are enough of them that the first run is still busy when it is frozen
#: (it has finished one or two photos then, and one more after the worker kill).
CROPS = [
    ("rwmfd_0002_0078.jpg", (0, 0, 128, 100)),
    ("rwmfd_0002_0078.jpg", (128, 40, 256, 167)),
    ("rwmfd_0002_0032.jpg", (0, 0, 128, 100)),
    ("rwmfd_0006_0036.jpg", (60, 20, 200, 140)),
    ("rwmfd_0006_0060.jpg", (0, 30, 140, 160)),
    ("rwmfd_0006_0060.jpg", (120, 0, 256, 120)),
    ("rwmfd_0002_0032.jpg", (100, 20, 230, 130)),
    ("rwmfd_0006_0036.jpg", (0, 0, 140, 120)),
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
        paths.append(folder / f"photo{i:02d}.png")
        write_image(paths[-1], np.ascontiguousarray(arr[y0:y1, x0:x1]))
    return paths


def _rows(manifest: Path) -> list[dict]:
    if not manifest.is_file():
        return []
    lines = manifest.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:  # type: ignore[no-untyped-def]
    """Poll ``cond`` every 50 ms; fail (with the run's log) when it times out or the run ends first."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(
                f"run 1 ended (exit {proc.returncode}) before {what}: {log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}: {log.read_text()[-3000:]}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The input photos, and the reference ``OMP_NUM_THREADS=1 facesr restore`` of them started
    in the background (niced: it fills the gaps while the cluster starts, never delays it)."""
    why = ray_cluster.available()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("batch")
    inputs = _inputs(root / "in")
    ref = root / "ref"
    cmd = [sys.executable, "-m", "facesr.cli", "restore", str(root / "in"), "-o", str(ref), *OPTS]
    # One torch thread, the batch's default: output bytes follow the torch thread count.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: os.nice(10),
    )
    try:
        yield root, inputs, ref, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(photos):  # type: ignore[no-untyped-def]
    """The two-node cluster (after ``photos``, so the reference restore runs while it starts)."""
    t0 = time.monotonic()
    c = ray_cluster.Cluster(nodes=2, cpus=2)
    try:
        c.start()  # a cluster that does not start is a failure, with the holder's log in the message
        c.start_s = time.monotonic() - t0  # type: ignore[attr-defined]
        yield c
    finally:
        c.stop()
        assert not c.alive(), "a process of the Ray cluster outlived the test"


def test_killed_worker_and_driver_then_rerun_gives_every_photo_once_identical_to_restore(
    photos, cluster: ray_cluster.Cluster, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    root, inputs, ref, reference = photos
    n = len(inputs)
    out = tmp_path / "out"
    manifest = out / "manifest.jsonl"
    # 1.5 CPUs per restore worker on nodes of 2: one worker per node, both nodes restore.
    cmd = [sys.executable, "-m", "facesr.cli", "restore-batch", str(root / "in"), "-o", str(out), *OPTS]
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

    def restorers() -> list[int]:
        return [pid for pid, args in cluster.processes() if RESTORER in args]

    def drivers() -> list[int]:
        return [pid for pid, args in cluster.processes() if "restore-batch" in args and "nsenter" not in args]

    log1 = tmp_path / "run1.log"
    with open(log1, "w") as fh:
        first = cluster.popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: len(restorers()) == 2 and _rows(manifest), 360, "both workers and a photo", first, log1)
        (driver,) = drivers()
        t_freeze = time.monotonic() - t_start
        cluster.kill(driver, signal.SIGSTOP)  # frozen: the run can neither end nor hand out work now
        workers = restorers()
        done_at_kill = len(_rows(manifest))
        assert len(workers) == 2 and done_at_kill < n, (workers, done_at_kill)
        cluster.kill(workers[0])  # a restore worker dies mid-run (Ray restarts it, retries its photo)
        cluster.kill(driver, signal.SIGCONT)
        os.kill(first.pid, signal.SIGCONT)  # nsenter stopped itself when its child stopped
        _wait(lambda: len(_rows(manifest)) > done_at_kill, 120, "a photo after the worker kill", first, log1)
        cluster.kill(driver)  # then the driver dies too: the run is cut short
        first.wait(timeout=60)
        t_first = time.monotonic() - t_start
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    finished_first = {r["input"] for r in _rows(manifest) if r["status"] == "ok"}
    assert done_at_kill <= len(finished_first) < n, (done_at_kill, len(finished_first))

    second = cluster.run(cmd, timeout=300)
    t_second = time.monotonic() - t_start
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = second.stdout.strip().splitlines()[-1]
    assert f"of {n} in" in summary and "0 failed" in summary, summary
    assert f"{n - len(finished_first)} restored, {len(finished_first)} already done" in summary, summary

    ref_log, _ = reference.communicate(timeout=300)
    t_reference = time.monotonic() - t_start
    assert reference.returncode == 0, ref_log[-3000:]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(p.name for p in ref.glob("*.png")) == [f"photo{i:02d}.png" for i in range(n)]
    for name in pngs:  # byte-identical to facesr restore with the same settings
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    rows = _rows(manifest)
    assert len(rows) == n and {r["input"] for r in rows} == {str(p) for p in inputs}
    assert all(r["status"] == "ok" and r["settings_sha256"] == rows[0]["settings_sha256"] for r in rows)
    assert not [p for p in out.rglob("*.tmp")], "a half-written file was left"
    # The driver joined both nodes (2 + 2 CPUs), and each of the 2 restore workers needs 1.5 of a
    # node's 2 CPUs, so they ran on different nodes.
    assert "2 restore worker(s) on cpu (4 CPUs" in second.stderr, second.stderr[-2000:]
    assert all(r["node"] for r in rows)
    print(
        f"cluster start {cluster.start_s:.0f} s; test body {time.monotonic() - t_start:.0f} s: run 1 frozen at "  # type: ignore[attr-defined]
        f"{t_freeze:.0f} s, killed at {t_first:.0f} s, run 2 done at {t_second:.0f} s, reference waited for "
        f"until {t_reference:.0f} s; run 1 finished {len(finished_first)}/{n}; load average {os.getloadavg()[0]:.1f}"
    )
