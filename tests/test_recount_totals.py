"""scripts/recount_totals.py takes a run counted twice out of ``facesr.totals`` and keeps the tensors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recount_totals.py"


def _file(path: Path, steps: int, runs: int) -> Path:
    meta = {"facesr.totals": json.dumps({"steps": steps, "runs": runs}), "facesr.arch": "x"}
    save_file({"w": torch.arange(4.0)}, str(path), metadata=meta)
    return path


def test_the_run_counted_twice_is_taken_out(tmp_path: Path) -> None:
    base, replaced = _file(tmp_path / "b.st", 100, 3), _file(tmp_path / "r.st", 130, 4)
    target = _file(tmp_path / "t.st", 180, 5)  # base + the run's 30 steps, counted again on resume, + 20
    cmd = [sys.executable, str(SCRIPT), str(target), "--replaced", str(replaced), "--started-from", str(base)]
    subprocess.run(cmd, check=True, capture_output=True)
    with safe_open(str(target), framework="pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["facesr.totals"]) == {"steps": 150, "runs": 4} and meta["facesr.arch"] == "x"
    assert torch.equal(load_file(str(target))["w"], torch.arange(4.0))
    small = _file(tmp_path / "s.st", 10, 1)  # fewer steps than the part said to be counted twice
    bad = subprocess.run([*cmd[:2], str(small), *cmd[3:]], capture_output=True, text=True)
    assert bad.returncode != 0 and "negative" in bad.stderr and "Traceback" not in bad.stderr
