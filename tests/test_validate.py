"""Validation during training (run.val_every / data.val_faces) and the time-to-quality reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.cli import main
from facesr.data.datasets import MaskedFaceBatcher
from facesr.errors import ConfigError
from facesr.train.config import load_train_config
from facesr.train.loop import iter_log, train
from facesr.train.validate import carve_validation, holdout_positions, time_to_quality
from train_helpers import TINY, make_prepared, tiny_overrides


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prep") / "tiny")


def _cfg(prepared: Path, out: Path, *more: str):
    return load_train_config(TINY, [*tiny_overrides(prepared, out), "run.threads=1", *more])


def test_holdout_is_seeded_and_refuses_the_whole_split() -> None:
    a, b = holdout_positions(100, 10, 0), holdout_positions(100, 10, 0)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, holdout_positions(100, 10, 1))
    with pytest.raises(ConfigError, match="val_faces"):
        holdout_positions(10, 10, 0)


def test_carved_faces_never_reach_training_batches(prepared: Path) -> None:
    batcher = MaskedFaceBatcher(prepared, "train", 4, "cpu", 5, 0, data=prepared.parent)
    all_rows = set(batcher.rows.tolist())
    val = carve_validation(batcher, 4, seed=0)
    held = set(val["index"].tolist())
    assert len(held) == 4 and held <= all_rows
    assert set(batcher.rows.tolist()) == all_rows - held and len(batcher.faces) == len(batcher.rows)
    seen = set()
    for _ in range(3 * len(batcher.rows) // 5 + 1):  # three epochs
        seen |= set(batcher.next_batch()["index"].tolist())
    assert seen == all_rows - held
    # The same seed gives the same validation faces, masks and 8-bit inputs.
    again = carve_validation(MaskedFaceBatcher(prepared, "train", 4, "cpu", 5, 0, data=prepared.parent), 4, 0)
    assert torch.equal(again["lr_masked"], val["lr_masked"]) and torch.equal(again["hr"], val["hr"])
    assert torch.equal(val["lr_masked"], (val["lr_masked"] * 255).round() / 255)


def test_val_every_writes_timed_records_and_ttq_reads_them(prepared: Path, tmp_path: Path) -> None:
    run = train(
        _cfg(
            prepared,
            tmp_path / "run",
            "run.steps=10",
            "run.val_every=4",
            "data.val_faces=4",
            "run.tensorboard=false",
            "recipe.adversarial=false",
        )
    )
    recs = [r for r in iter_log(run / "log.jsonl") if r.get("event") == "val"]
    assert [r["step"] for r in recs] == [4, 8, 10]
    assert all(r["val/faces"] == 4 and 0 < r["val/ssim"] <= 1 and r["val/psnr"] > 5 for r in recs)
    assert [r["elapsed_s"] for r in recs] == sorted(r["elapsed_s"] for r in recs)
    assert "held out for validation" in (run / "card.md").read_text()
    # Training records are still the only ones the loss curve and the card read.
    assert all("val/psnr" not in r for r in iter_log(run / "log.jsonl") if "event" not in r)
    first = recs[0]["val/psnr"]
    ttq = time_to_quality(run, first)
    assert ttq["reached"] and ttq["step"] == 4 and ttq["elapsed_s"] == recs[0]["elapsed_s"]
    assert not time_to_quality(run, 99.0)["reached"]


def test_val_every_without_faces_is_a_config_error(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="val_faces"):
        _cfg(prepared, tmp_path / "x", "run.val_every=5")


def test_ttq_cli_with_reference_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        {"step": 5, "elapsed_s": 1.0, "images": 80, "G/total": 1.0},
        {"step": 5, "event": "val", "elapsed_s": 1.5, "images": 80, "val/psnr": 20.0, "val/ssim": 0.5},
        {"step": 10, "event": "val", "elapsed_s": 120.0, "images": 160, "val/psnr": 24.5, "val/ssim": 0.7},
        '{"step": 15, "event": "val", "elapsed_s"',  # a line cut by a kill
    ]
    log.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    ref = tmp_path / "two_stage.json"
    ref.write_text(json.dumps({"val/psnr": 24.0}))
    assert main(["time-to-quality", str(log), "--reference", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "at step 10 after 2.0 min" in out
    assert main(["time-to-quality", str(log), "--target", "30"]) == 0
    assert "never reached" in capsys.readouterr().out
    assert main(["time-to-quality", str(tmp_path / "missing.jsonl"), "--target", "1"]) == 2
