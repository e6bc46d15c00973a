"""Training speed levers: on-device bookkeeping (run.sync=log), channels_last, and the step benchmark."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from facesr.errors import ConfigError
from facesr.train.config import load_train_config
from facesr.train.loop import EMA, Meter, Updater, cpu_bf16_native, iter_log, load_checkpoint, train
from train_helpers import REPO, TINY, make_prepared, tiny_overrides


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prep") / "tiny")


def _updater(deferred: bool) -> tuple[torch.nn.Linear, Updater]:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    up = Updater("G", list(net.parameters()), opt, grad_clip=0.5, scaler=None)
    up.deferred = deferred
    return net, up


def test_deferred_updater_skips_non_finite_on_the_device() -> None:
    net, up = _updater(deferred=True)
    before = [p.detach().clone() for p in net.parameters()]
    up(net(torch.full((2, 3), float("inf"))).sum())
    assert isinstance(up.last_norm, torch.Tensor) and float(up.last_norm) == 0.0  # no sync needed
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert float(up.last_skipped) == 1.0 and up.skipped == 0  # counted on the device ...
    up.settle()
    assert up.skipped == 1 and up.pending is None  # ... and read once at log/checkpoint time
    up(net(torch.ones(2, 3)).sum())
    assert not all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_deferred_updates_equal_the_per_step_checked_updates() -> None:
    (a, up_a), (b, up_b) = _updater(deferred=False), _updater(deferred=True)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        up_a(a(x).pow(2).sum())
        up_b(b(x).pow(2).sum())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_sync_log_needs_fused_adam() -> None:
    with pytest.raises(ConfigError, match="fused Adam"):
        load_train_config(None, ["run.sync=log", "optim.impl=foreach"])
    assert load_train_config(None, ["run.sync=log"]).run.sync == "log"


def test_meter_keeps_tensors_on_device_until_flush() -> None:
    m = Meter()
    m.add({"a": torch.tensor(1.0), "b": 2.0}, 4)
    m.add({"a": torch.tensor(3.0), "b": 4.0}, 4)
    assert isinstance(m.sums["a"], torch.Tensor)
    out = m.flush()
    assert out["a"] == pytest.approx(2.0) and out["b"] == pytest.approx(3.0)


def test_foreach_ema_equals_per_tensor_lerp() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = EMA(net, decay=0.9, start=0)
    ref = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, step=5)
    for k, v in net.state_dict().items():
        want = ref[k].lerp(v.to(ref[k].dtype), 0.1) if ref[k].is_floating_point() else v
        assert torch.equal(ema.module.state_dict()[k], want), k


def test_training_with_sync_log_and_channels_last_skips_a_nan_step(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesr.data import datasets

    original = datasets.MaskedFaceBatcher.next_batch
    calls = {"n": 0}

    def poisoned(self):
        batch = original(self)
        if batch["lr_masked"].shape[0] > 4:
            calls["n"] += 1
            if calls["n"] == 2:
                batch["lr_masked"] = batch["lr_masked"] * float("nan")
        return batch

    monkeypatch.setattr(datasets.MaskedFaceBatcher, "next_batch", poisoned)
    cfg = load_train_config(
        TINY,
        [
            *tiny_overrides(prepared, tmp_path / "run"),
            "run.threads=1",
            "run.steps=4",
            "run.log_every=2",
            "data.batch_size=6",
            "run.tensorboard=false",
            "run.sync=log",
            "run.channels_last=true",
        ],
    )
    run = train(cfg)
    state = load_checkpoint(run / "ckpt" / "last.pt")
    assert state["skipped"]["G"] == 1  # the NaN step was skipped on the device and counted
    assert all(torch.isfinite(v).all() for v in state["nets"]["G"].values())
    logs = [r for r in iter_log(run / "log.jsonl") if "G/total" in r]
    assert [r["step"] for r in logs] == [2, 4] and logs[0]["skipped/G"] == pytest.approx(0.5)


def test_bench_train_runs_every_cpu_lever_path(prepared: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_train
    finally:
        sys.path.pop(0)
    out = tmp_path / "train.json"
    doc = bench_train.main(
        [
            "--config",
            str(REPO / "configs" / "jdsr_lite_x4.yaml"),
            "--tiny",
            "--batch",
            "2",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--faces",
            "8",
            "--threads",
            "1",
            "--prepared",
            str(prepared),
            "--data",
            str(prepared.parent),
            "--levers",
            "fp32,fused+sync_log+channels_last,bf16",
            "--json-out",
            str(out),
        ]
    )
    rows = {r["lever"]: r for r in doc["rows"]}
    assert rows["fp32"]["speedup"] == pytest.approx(1.0) and rows["fp32"]["images_per_s"] > 0
    assert rows["fused+sync_log+channels_last"]["error"] is None
    assert rows["fused+sync_log+channels_last"]["data_ms"] > 0
    if cpu_bf16_native():  # the CPU computes bf16 natively: the lever runs and is measured
        assert rows["bf16"]["error"] is None and rows["bf16"]["images_per_s"] > 0
    else:  # emulated bf16 is refused, and the row says why
        assert "native bf16" in rows["bf16"]["error"]
    assert json.loads(out.read_text())["rows"][0]["lever"] == "fp32"


def test_gpu_busy_profile_runs_without_a_gpu() -> None:
    from facesr.speed.training import _gpu_busy

    calls = []
    busy, syncs = _gpu_busy(calls.append, 5, 3, torch.device("cpu"))
    assert calls == [5, 6, 7] and busy == 0.0 and syncs == 0.0  # no GPU: no kernel time, no syncs
