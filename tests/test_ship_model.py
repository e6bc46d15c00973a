"""scripts/ship_model.py refuses to replace a shipped model with a run that scores worse."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ship_module():
    spec = importlib.util.spec_from_file_location("ship_model", REPO / "scripts" / "ship_model.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(path: Path, psnr: float, weights_sha: str, clean: bool = False) -> Path:
    path.write_text(
        json.dumps(
            {
                "model": {"weights_sha256": weights_sha},
                "protocol": {
                    "benchmark": "utk-mask-x4",
                    "complete": True,
                    "n_faces": 1000,
                    "input": "unmasked LR (lr_clean/)" if clean else "masked LR (lr/)",
                },
                "metrics": {"psnr": psnr},
            }
        )
    )
    return path


def test_refuses_a_worse_run_and_accepts_a_better_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship = _ship_module()
    zoo_file = tmp_path / "zoo.json"
    zoo_file.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "m",
                        "scores": {
                            "utk-mask-x4": {"psnr": 24.0},
                            "utk-mask-x4 (unmasked input)": {"psnr": 33.0},
                        },
                    }
                ]
            }
        )
    )
    monkeypatch.setattr(ship.zoo, "ZOO_FILE", zoo_file)
    shipped, run = tmp_path / "shipped.safetensors", tmp_path / "run.safetensors"
    shipped.write_bytes(b"old weights")
    run.write_bytes(b"new weights")
    sha = ship.zoo.sha256_file(run)
    with pytest.raises(SystemExit, match="score the run first"):
        ship.refuse_worse("m", run, shipped, [], False)
    worse = _result(tmp_path / "w.json", 23.5, sha)
    with pytest.raises(
        SystemExit, match=r"refusing to replace m: utk-mask-x4 PSNR 23\.50 dB < shipped 24\.00"
    ):
        ship.refuse_worse("m", run, shipped, [worse], False)
    ship.refuse_worse("m", run, shipped, [worse], True)  # --replace-worse: a deliberate trade
    worse_clean = _result(tmp_path / "wc.json", 32.0, sha, clean=True)
    better = _result(tmp_path / "b.json", 24.5, sha)
    with pytest.raises(SystemExit, match="unmasked input"):
        ship.refuse_worse("m", run, shipped, [better, worse_clean], False)
    ship.refuse_worse(
        "m", run, shipped, [better, _result(tmp_path / "bc.json", 33.1, sha, clean=True)], False
    )
    other = _result(tmp_path / "o.json", 30.0, "0" * 64)
    with pytest.raises(SystemExit, match="scores another weights file"):
        ship.refuse_worse("m", run, shipped, [other], False)
    ship.refuse_worse("new-name", run, tmp_path / "absent.safetensors", [], False)  # nothing shipped yet
