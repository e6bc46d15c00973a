"""What a newcomer sees first (issue 20): --help, `facesr models`, exit codes, where eval writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facesr.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = sorted((REPO / "src" / "facesr" / "samples").glob("*.jpg"))[0]


def _help_at(width: int) -> str:
    env = {"COLUMNS": str(width), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "facesr.cli", "--help"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, timeout=120).stdout


def test_top_level_help_shows_whole_command_summaries() -> None:
    text = _help_at(80)
    flat = " ".join(text.split())  # click used to cut these to "Measure parameters, GFLOPs/face, CPU..."
    assert "CPU latency/throughput and memory (and GPU speed); write BENCHMARKS.md." in flat
    assert "(files, folders, globs) and write the results to -o." in flat
    assert "`facesr prepare utkface`, `facesr benchmarks build`, then `facesr eval" in flat
    assert max(len(line) for line in text.splitlines()) <= 80


def test_models_has_a_header_and_sizes_from_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    from facesr.zoo import list_models

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["name", "in->out", "px", "task", "state"]
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[1:]}
    assert set(rows) == {e.name for e in list_models()}
    assert rows["bicubic-x4"] == "32->128" and rows["bicubic-x8"] == "16->128"
    if "cr-x4" in rows:  # a x4 network (16 -> 64) framed at 128: the name and the sizes agree
        assert rows["cr-x4"] == "16->64->128"


def test_missing_input_is_a_usage_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "nope.jpg"), "-o", str(out), "--model", "bicubic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"facesr: error: {tmp_path / 'nope.jpg'}: no such file; nothing was restored"]
    assert not out.exists()  # nothing was made
    rc = main(["restore", str(SAMPLE), str(tmp_path / "*.png"), "-o", str(out), "--model", "bicubic"])
    assert rc == 2 and "no file matches; nothing was restored" in capsys.readouterr().err
    assert not out.exists()


def test_eval_writes_to_the_workspace_unless_told_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's `facesr eval` leaves the tracked results/ alone; `--out results` writes it on purpose."""
    import facesr.eval.runner as runner
    from test_eval_runner import make_set

    monkeypatch.setattr(runner, "load_eval_set", lambda name, root=None: make_set(name, int(name[-1])))
    monkeypatch.setenv("FACESR_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("FACESR_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = ["eval", "--model", "bicubic", "--benchmark", "utk-mask-x8", "--no-identity", "--device", "cpu"]
    assert main(args) == 0
    written = tmp_path / "ws" / "results" / "utk-mask-x8__bicubic-x8.json"
    assert json.loads(written.read_text())["model"]["name"] == "bicubic-x8"
    assert not (tmp_path / "results").exists()
    assert f"wrote {written}" in capsys.readouterr().out
    assert main([*args, "--out", "results"]) == 0
    assert (tmp_path / "results" / "utk-mask-x8__bicubic-x8.json").is_file()
