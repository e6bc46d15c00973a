"""Issue 17, outputs: nothing the run did not create is replaced; a killed batch leaves a valid report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facesr.cli import main
from facesr.outputs import OutputPlan, ReportWriter, remove_dead_temps

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
SAMPLE = SAMPLES / "rwmfd_0002_0078.jpg"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_plan_suffixes_existing_files_and_collisions(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"theirs")
    (tmp_path / "a_1.png").write_bytes(b"theirs too")
    plan = OutputPlan(protected=[tmp_path / "in.jpg"])
    assert plan.file(tmp_path / "a.png") == tmp_path / "a_2.png"
    assert plan.file(tmp_path / "b.png") == tmp_path / "b.png"
    assert plan.file(tmp_path / "b.png") == tmp_path / "b_1.png"  # two outputs never share a path
    assert plan.file(tmp_path / "in.jpg") == tmp_path / "in_1.jpg"  # an input is never handed out
    (tmp_path / "a_faces").mkdir()
    assert plan.folder(tmp_path / "a_faces") == tmp_path / "a_faces_1"
    assert "a_2.png" in (plan.summary() or "") and "--overwrite" in (plan.summary() or "")


def test_plan_overwrite_replaces_existing_but_never_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"old")
    (tmp_path / "a_faces").mkdir()
    plan = OutputPlan(protected=[tmp_path / "in.png"], overwrite=True)
    assert plan.file(tmp_path / "a.png") == tmp_path / "a.png"
    assert plan.folder(tmp_path / "a_faces") == tmp_path / "a_faces"
    assert plan.file(tmp_path / "in.png") == tmp_path / "in_1.png"
    assert plan.file(tmp_path / "a.png") == tmp_path / "a_1.png"


def test_dead_temps_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    sub = tmp_path / "x"
    sub.mkdir()
    dead = sub / f".a.png.{_dead_pid()}.k2j3.tmp"
    live = tmp_path / f".b.png.{os.getpid()}.abcd.tmp"
    legacy_new = tmp_path / ".c.png.zz9.tmp"
    legacy_old = tmp_path / ".d.png.zz8.tmp"
    other = tmp_path / "keep.tmp"  # not a facesr temp name
    for p in (dead, live, legacy_new, legacy_old, other):
        p.write_bytes(b"x")
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    removed = remove_dead_temps(tmp_path)
    assert sorted(removed) == sorted([dead, legacy_old])
    assert live.exists() and legacy_new.exists() and other.exists()


def test_atomic_writes_name_their_temp_with_the_pid(tmp_path: Path) -> None:
    from facesr.io import atomic_path

    with atomic_path(tmp_path / "out.png") as tmp:
        assert f".{os.getpid()}." in tmp.name
        tmp.write_bytes(b"x")
        assert remove_dead_temps(tmp_path) == []  # a write in progress is never removed
    assert (tmp_path / "out.png").read_bytes() == b"x"


def test_report_writer_is_valid_at_every_step(tmp_path: Path) -> None:
    items: list[int] = []
    w = ReportWriter(tmp_path / "report.json", lambda: {"files": list(items)}, interval_s=0.0)
    assert json.loads((tmp_path / "report.json").read_text()) == {"files": [], "complete": False}
    items.append(1)
    w.update()
    assert json.loads((tmp_path / "report.json").read_text())["files"] == [1]
    w.finish()
    assert json.loads((tmp_path / "report.json").read_text())["complete"] is True


def _restore(*args: str) -> int:
    return main(["restore", *args, "--model", "bicubic", "--device", "cpu", "--engine", "torch"])


def test_cli_never_replaces_an_unrelated_file_or_report(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(SAMPLE.read_bytes())
    (photos / "a.png").write_bytes(b"an unrelated file")
    (photos / "report.json").write_text('{"mine": true}')
    assert _restore(str(photos / "a.jpg"), "-o", str(photos)) == 0
    err = capsys.readouterr().err
    assert (photos / "a.png").read_bytes() == b"an unrelated file"
    assert json.loads((photos / "report.json").read_text()) == {"mine": True}
    rep = json.loads((photos / "report_1.json").read_text())
    assert rep["complete"] is True and rep["files"][0]["output"] == str(photos / "a_1.png")
    assert (photos / "a_1.png").is_file() and "--overwrite" in err
    # --overwrite replaces files that existed before the run, but never an input
    assert _restore(str(photos / "a.jpg"), "-o", str(photos), "--overwrite") == 0
    assert (photos / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert (photos / "a.jpg").read_bytes() == SAMPLE.read_bytes()


def test_cli_save_faces_never_collide_with_other_outputs(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a_faces").mkdir(parents=True)
    (src / "a.jpg").write_bytes(SAMPLE.read_bytes())
    # an input whose output is exactly where a.jpg's first face crop would go
    (src / "a_faces" / "face00_sr.jpg").write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out"
    assert _restore(str(src), "-o", str(out), "--save-faces") == 0
    rep = json.loads((out / "report.json").read_text())
    written = [f["output"] for f in rep["files"]] + [e for f in rep["files"] for e in f["extra_outputs"]]
    assert len(written) == len(set(written)) and all(Path(p).is_file() for p in written)


@pytest.mark.slow
def test_kill9_mid_batch_leaves_a_valid_partial_report_and_no_temps(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"p{i:02d}.jpg").write_bytes(sorted(SAMPLES.glob("*.jpg"))[i % 4].read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "facesr.cli", "restore", str(src), "-o", str(out), "--model", "bicubic"]
    cmd += ["--device", "cpu", "--engine", "torch"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = out / "report.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if report.is_file() and len(json.loads(report.read_text()).get("files", [])) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the batch finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    rep = json.loads(report.read_text())  # valid JSON, written atomically
    assert rep["complete"] is False and 2 <= len(rep["files"]) < 12
    assert all(Path(f["output"]).is_file() for f in rep["files"] if f["status"] == "ok")
    # whatever the kill left behind (a temp file of the write in progress), the next run removes it
    (out / f".p99.png.{proc.pid}.abcd.tmp").write_bytes(b"half")
    assert _restore(str(src / "p00.jpg"), "-o", str(out / "again")) == 0  # a run into another folder
    assert list(out.glob(".*.tmp"))  # ... does not touch this one
    assert _restore(str(src / "p00.jpg"), "-o", str(out), "--overwrite") == 0
    assert not list(out.rglob("*.tmp"))
