"""The training loop on CPU with a tiny model: learning, resume after kill -9, NaN guard, recipes, export."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facesr.train.config import load_train_config
from facesr.train.loop import EMA, Updater, iter_log, load_checkpoint, train
from train_helpers import (
    REPO,
    TINY,
    assert_chain_holds_parts,
    env_1thread,
    facesr_cmd,
    make_prepared,
    run_cli,
    tiny_overrides,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prep") / "tiny")


def _cfg(prepared: Path, out: Path, *more: str):
    return load_train_config(TINY, [*tiny_overrides(prepared, out), "run.threads=1", *more])


def _losses(run: Path, key: str = "G/total") -> list[float]:
    return [r[key] for r in iter_log(run / "log.jsonl") if key in r]


@pytest.mark.slow
def test_tiny_run_learns_and_exports(prepared: Path, tmp_path: Path) -> None:
    from facesr.zoo import load_model

    run = train(_cfg(prepared, tmp_path / "run", "run.steps=50", "run.log_every=5"))
    losses = _losses(run)
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    for name in (
        "weights.safetensors",
        "card.md",
        "loss_curve.png",
        "log.jsonl",
        "config.yaml",
        "images/latest.png",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    model = load_model(run / "weights.safetensors")
    assert model.scale == 4 and model.meta["facesr.recipe"] == "jdsr"
    sr = model(torch.rand(2, 3, 32, 32))
    assert sr.shape == (2, 3, 128, 128) and torch.isfinite(sr).all()
    state = load_checkpoint(run / "ckpt" / "last.pt")
    assert state["step"] == 50 and "recipe:" in state["config_yaml"] and state["git"]
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["images_per_s"] > 0 and record["lr/G"] > 0


def _nets(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "ckpt" / "last.pt")
    out = {f"ema.{k}": v for k, v in state["ema"].items()}
    for net, sd in state["nets"].items():
        out.update({f"{net}.{k}": v for k, v in sd.items()})
    return out


@pytest.mark.slow
def test_kill9_then_resume_is_bit_identical(prepared: Path, tmp_path: Path) -> None:
    common = [
        "run.steps=16",
        "run.ckpt_every=6",
        "run.log_every=4",
        "run.threads=1",
        "run.tensorboard=false",
        "recipe.adv_start_step=4",
    ]  # the critic is on, so its weights and Adam state are resumed too
    ref = tmp_path / "ref"
    done = run_cli("train", str(TINY), *tiny_overrides(prepared, ref), *common)
    assert done.returncode == 0, done.stderr[-2000:]

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        facesr_cmd("train", str(TINY), *tiny_overrides(prepared, cut), *common),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env_1thread(),
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait for the step-6 checkpoint, then kill during the next steps
            ckpt = cut / "ckpt" / "last.pt"
            if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= 6:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint appeared")
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(cut / "ckpt" / "last.pt")["step"] < 16

    resumed = run_cli("train", "--resume", str(cut))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _nets(ref), _nets(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    from safetensors import safe_open

    with (
        safe_open(str(ref / "weights.safetensors"), "pt") as fa,
        safe_open(str(cut / "weights.safetensors"), "pt") as fb,
    ):
        ma, mb = dict(fa.metadata()), dict(fb.metadata())  # (key order is not fixed, so compare parsed)
        # the accumulated totals hold measured time (cpu/gpu hours), which a killed run cannot repeat
        ta, tb = json.loads(ma.pop("facesr.totals")), json.loads(mb.pop("facesr.totals"))
        for key in ("steps", "faces_seen", "runs"):
            assert ta[key] == tb[key], key
        assert ma == mb
        assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())  # noqa: SIM118
    steps = [r["step"] for r in iter_log(cut / "log.jsonl") if "event" not in r]
    assert steps == sorted(set(steps)) == [4, 8, 12, 16]
    assert any(k.startswith("D.") for k in a)


def test_resume_refuses_to_overwrite_and_continues(prepared: Path, tmp_path: Path) -> None:
    from facesr.errors import ConfigError
    from facesr.train.loop import config_for_resume

    run = train(_cfg(prepared, tmp_path / "r", "run.steps=3", "run.tensorboard=false"))
    with pytest.raises(ConfigError, match="--resume"):
        train(_cfg(prepared, tmp_path / "r", "run.steps=3"))
    cfg = config_for_resume(run, ["run.steps=5"])
    assert cfg.run.steps == 5 and Path(cfg.run.out_dir) == run
    train(cfg, resume=True)
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 5


def test_nan_guard_skips_the_update_and_logs_it(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesr.data import datasets

    original = datasets.MaskedFaceBatcher.next_batch
    calls = {"n": 0}

    def poisoned(self):
        batch = original(self)
        if batch["lr_masked"].shape[0] > 4:  # the training batcher, not the 4-face preview batcher
            calls["n"] += 1
            if calls["n"] == 3:
                batch["lr_masked"] = batch["lr_masked"] * float("nan")
        return batch

    monkeypatch.setattr(datasets.MaskedFaceBatcher, "next_batch", poisoned)
    run = train(
        _cfg(
            prepared,
            tmp_path / "nan",
            "run.steps=5",
            "data.batch_size=6",
            "run.log_every=1",
            "run.tensorboard=false",
        )
    )
    events = [r for r in iter_log(run / "log.jsonl") if r.get("event") == "skipped"]
    assert {"step": 3, "event": "skipped", "net": "G"} in events
    state = load_checkpoint(run / "ckpt" / "last.pt")
    assert state["skipped"]["G"] == 1
    assert all(torch.isfinite(v).all() for v in state["nets"]["G"].values())


def test_updater_skips_non_finite_and_clips() -> None:
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    up = Updater("G", list(net.parameters()), opt, grad_clip=0.5, scaler=None)
    before = [p.detach().clone() for p in net.parameters()]
    assert not up(net(torch.full((2, 3), float("inf"))).sum())
    assert up.skipped == 1 and all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert up(100.0 * net(torch.ones(2, 3)).sum())
    step = torch.cat([(a - b.detach()).flatten() for a, b in zip(before, net.parameters(), strict=True)])
    assert step.norm() == pytest.approx(0.5, rel=1e-4)  # SGD lr 1 moves by exactly the clipped norm


def test_ema_tracks_parameters_and_buffers() -> None:
    net = torch.nn.BatchNorm1d(2)
    ema = EMA(net, decay=0.5, start=1)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.running_mean.fill_(4.0)
    net.num_batches_tracked.fill_(7)
    ema.update(net, step=0)  # before start: a copy
    assert torch.equal(ema.module.weight, net.weight) and ema.module.running_mean[0] == 4.0
    with torch.no_grad():
        net.weight.fill_(4.0)
        net.running_mean.fill_(0.0)
    ema.update(net, step=1)
    assert ema.module.weight[0] == 3.0 and ema.module.running_mean[0] == 2.0
    assert ema.module.num_batches_tracked == 7


def test_max_minutes_stops_cleanly_and_exports(prepared: Path, tmp_path: Path) -> None:
    run = train(
        _cfg(prepared, tmp_path / "mm", "run.steps=1000", "run.max_minutes=0.0001", "run.tensorboard=false")
    )
    state = load_checkpoint(run / "ckpt" / "last.pt")
    assert 1 <= state["step"] < 1000
    assert (run / "weights.safetensors").is_file() and "stopped early" in (run / "card.md").read_text()


def test_stop_step_stops_there_with_the_full_schedule(prepared: Path, tmp_path: Path) -> None:
    """Budget-matched baselines stop where the reference run did, under its (unshortened) lr schedule."""
    run = train(
        _cfg(
            prepared,
            tmp_path / "ss",
            "run.steps=8",
            "run.stop_step=3",
            "schedule.milestones=[0.5]",
            "run.tensorboard=false",
        )
    )
    state = load_checkpoint(run / "ckpt" / "last.pt")
    assert state["step"] == 3
    # milestone at round(0.5 * 8) = 4 is not reached by step 3: the lr is still the initial one
    assert state["schedulers"]["G"]["_last_lr"][0] == pytest.approx(
        state["optimizers"]["G"]["param_groups"][0]["initial_lr"]
    )
    assert (run / "weights.safetensors").is_file()
    assert "(stopped at run.stop_step)" in (run / "card.md").read_text()


@pytest.mark.parametrize("recipe", ["sr_only", "two_stage_denoiser", "two_stage_sr"])
def test_baseline_recipes_run(prepared: Path, tmp_path: Path, recipe: str) -> None:
    run = train(
        _cfg(prepared, tmp_path / recipe, f"recipe.name={recipe}", "run.steps=2", "run.tensorboard=false")
    )
    out = "denoiser.safetensors" if recipe == "two_stage_denoiser" else "weights.safetensors"
    assert (run / out).is_file()


def test_two_stage_parts_combine_into_a_restorer(prepared: Path, tmp_path: Path) -> None:
    from facesr.train.recipes.jdsr import combine_two_stage
    from facesr.zoo import load_model

    den = train(
        _cfg(
            prepared,
            tmp_path / "den",
            "recipe.name=two_stage_denoiser",
            "run.steps=2",
            "run.tensorboard=false",
        )
    )
    sr = train(
        _cfg(prepared, tmp_path / "sr", "recipe.name=two_stage_sr", "run.steps=2", "run.tensorboard=false")
    )
    out = combine_two_stage(
        den / "denoiser.safetensors", sr / "weights.safetensors", tmp_path / "two.safetensors"
    )
    model = load_model(out)
    assert model.meta["facesr.arch"] == "jdsr_two_stage"
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 128, 128)
    assert_chain_holds_parts(den, sr, out)  # the chained net holds exactly the two trained parts


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(prepared: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo, DDP) == 1 process with the same global batch.

    Three generator updates (the last with the critic's term) and one critic update. The generators
    agree to float rounding. For the critic we compare its gradient (Adam's first moment after one
    update is 0.5 * grad): its weights cannot be compared tightly, because Adam's first step moves
    every weight by about lr * sign(grad), so gradients that are zero up to rounding move by +-lr.
    """
    common = [
        "run.steps=3",
        "run.log_every=1",
        "run.tensorboard=false",
        "run.threads=1",
        "data.batch_size=4",
        "recipe.adv_start_step=2",
        "run.progress=false",
    ]
    one = run_cli("train", str(TINY), *tiny_overrides(prepared, tmp_path / "one"), *common)
    assert one.returncode == 0, one.stderr[-2000:]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "facesr.cli",
        "train",
        str(TINY),
        *tiny_overrides(prepared, tmp_path / "two"),
        *common,
    ]
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env_1thread(), cwd=REPO)
    assert two.returncode == 0, two.stderr[-3000:]
    sa, sb = (load_checkpoint(tmp_path / r / "ckpt" / "last.pt") for r in ("one", "two"))
    assert sa["world"] == 1 and sb["world"] == 2
    ga, gb = sa["nets"]["G"], sb["nets"]["G"]
    init = _init(prepared, tmp_path)
    assert max(float((ga[k] - init[k]).abs().max()) for k in ga) > 1e-3  # training moved the weights ...
    assert max(float((ga[k] - gb[k]).abs().max()) for k in ga) < 1e-5  # ... the same way in both runs
    da, db = sa["optimizers"]["D"]["state"], sb["optimizers"]["D"]["state"]
    assert da.keys() == db.keys() and len(da) > 0
    for i in da:
        ma, mb = da[i]["exp_avg"], db[i]["exp_avg"]
        assert float((ma - mb).abs().max()) <= 1e-3 * float(ma.abs().max()) + 1e-9, i
    la = [r["G/total"] for r in iter_log(tmp_path / "one" / "log.jsonl")]
    lb = [r["G/total"] for r in iter_log(tmp_path / "two" / "log.jsonl")]
    assert len(la) == 3 and la == pytest.approx(lb, rel=1e-4)


def _init(prepared: Path, tmp_path: Path) -> dict[str, torch.Tensor]:
    """The generator's initial weights under the same seed (what training starts from)."""
    from facesr.train.loop import Context
    from facesr.train.recipes import build_recipe

    cfg = _cfg(prepared, tmp_path / "init")
    torch.manual_seed(cfg.run.seed)
    recipe = build_recipe(cfg, Context(device=torch.device("cpu")))
    return recipe.generator.state_dict()


def test_mask_prob_reaches_the_batcher(prepared: Path, tmp_path: Path) -> None:
    """data.mask_prob=0 trains plain SR (masked LR == clean LR); the default masks every face."""
    from facesr.train.recipes.jdsr import masked_face_batcher

    for prob, masked in ((0.0, False), (1.0, True)):
        cfg = _cfg(prepared, tmp_path / f"p{prob}", f"data.mask_prob={prob}")
        batcher, _, _ = masked_face_batcher(cfg, torch.device("cpu"), 0)
        batch = batcher.next_batch()
        differs = (batch["lr_masked"] - batch["lr_clean"]).abs().amax(dim=(1, 2, 3)) > 0
        assert bool(differs.all()) is masked and bool(differs.any()) is masked
