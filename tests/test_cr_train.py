"""CR staged training through the ONE training loop (`facesr train`): a tiny end-to-end CPU run of every
stage, stage B's frozen G_S, resume, and the config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.errors import ConfigError
from facesr.train.config import load_train_config
from facesr.train.loop import Context, load_checkpoint, train
from facesr.train.recipes import build_recipe
from facesr.train.recipes import cr as T
from facesr.zoo import load_model

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "cr_tiny_cpu.yaml"


def _cfg(recipe: str, out: Path, init: Path | None = None, *more: str):
    over = [f"recipe.name={recipe}", f"run.out_dir={out}", *more]
    if init is not None:
        over.append(f"cr.init={init}")
    return load_train_config(TINY, over)


def _ckpt(run: Path) -> dict:
    return load_checkpoint(run / "ckpt" / "last.pt")


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix + ".")}


@pytest.fixture(scope="module")
def stage_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(_cfg("cr_a", tmp_path_factory.mktemp("cr") / "a"))


def test_all_stages_end_to_end(stage_a: Path, tmp_path: Path) -> None:
    b = train(_cfg("cr_b", tmp_path / "b", stage_a))
    c = train(_cfg("cr_c", tmp_path / "c", b))
    cyc = train(_cfg("cycle", tmp_path / "cycle", stage_a))
    x = torch.rand(2, 3, 16, 16)
    for run, arch, keys in (
        (stage_a, "cr_sr_only", ("G/sr_pixel",)),
        (b, "cr", ("G/cc_adv", "G/content", "G/cr", "D/total")),
        (c, "cr", ("G/sr_pixel",)),
        (cyc, "cycle_sr", ("G/cycle_lr", "G/cycle_hr", "G/pair", "G/adv_hr", "D/total")),
    ):
        model = load_model(run / "weights.safetensors")
        assert model.meta["facesr.arch"] == arch and model.meta["facesr.learned_scale"] == "4"
        assert model.lr_size == 16 and model.hr_size == 128  # stated in the file, not derived from scale 8
        assert (model.meta["facesr.lr_size"], model.meta["facesr.hr_size"]) == ("16", "128")
        y = model(x)
        assert y.shape == (2, 3, 128, 128) and torch.isfinite(y).all()
        lines = [ln for ln in (run / "log.jsonl").read_text().splitlines() if ln]
        assert len(lines) == 3
        import json

        last = json.loads(lines[-1])
        assert all(k in last and np.isfinite(last[k]) for k in keys), (run, last)
        assert (run / "images" / "latest.png").is_file() and (run / "card.md").is_file()
        assert _ckpt(run)["step"] == 3
    # stage C continued from B: G_C identical, G_S moved
    sb, sc = _ckpt(b)["ema"], _ckpt(c)["ema"]
    assert all(torch.equal(sb[k], sc[k]) for k in _part(sb, "gc"))
    assert any(not torch.equal(sb[k], sc[k]) for k in _part(sb, "gs"))


def test_stage_b_leaves_gs_unchanged_and_trains_gc(stage_a: Path, tmp_path: Path) -> None:
    before = _part(_ckpt(stage_a)["ema"], "gs")  # what stage B loads (the stage A export, fp32)
    b = train(_cfg("cr_b", tmp_path / "b", stage_a, "run.steps=4"))
    state = _ckpt(b)
    trained, ema = state["nets"]["G"], state["ema"]
    assert before and all(torch.equal(before[k], trained[k]) for k in before)
    assert all(torch.equal(before[k], ema[k]) for k in before)
    # G_C moved away from its identity start (its tail was zero-initialised) and only G and D have optimisers
    assert trained["gc.tail.weight"].abs().sum() > 0
    assert set(state["optimizers"]) == {"G", "D"}


def test_stage_c_through_consistifier_keeps_gc(stage_a: Path, tmp_path: Path) -> None:
    """cr.c_input=consistified: G_S is fine-tuned on G_C(x_a); G_C stays fixed."""
    b = train(_cfg("cr_b", tmp_path / "b", stage_a))
    c = train(_cfg("cr_c", tmp_path / "c", b, "cr.c_input=consistified"))
    sb, sc = _ckpt(b)["ema"], _ckpt(c)["ema"]
    assert all(torch.equal(sb[k], sc[k]) for k in _part(sb, "gc"))
    assert any(not torch.equal(sb[k], sc[k]) for k in _part(sb, "gs"))


def test_stage_b_step_gives_gs_no_gradient(stage_a: Path, tmp_path: Path) -> None:
    from facesr.train.loop import Updater

    cfg = _cfg("cr_b", tmp_path / "unused", stage_a, "loss.cc_identity=1")
    ctx = Context(device=torch.device("cpu"))
    recipe = build_recipe(cfg, ctx)
    g_params = recipe.trainable()["G"]
    assert all(not p.requires_grad for p in recipe.gs.parameters())
    assert not any(p is q for p in g_params for q in recipe.gs.parameters())
    ups = {k: Updater(k, v, torch.optim.Adam(v, lr=1e-3), None, None) for k, v in recipe.trainable().items()}
    batcher, _, _ = T.cr_batcher(cfg, torch.device("cpu"), 0)
    logs = recipe.step(batcher.next_batch(), 0, ups)
    assert {"G/cc_adv", "G/content", "G/cr", "G/cc_identity", "D/total"} <= set(logs)
    assert all(p.grad is None for p in recipe.gs.parameters())
    assert any(p.grad is not None for p in recipe.gc.parameters())


def test_resume_continues_bit_for_bit(stage_a: Path, tmp_path: Path) -> None:
    full = train(_cfg("cr_b", tmp_path / "full", stage_a, "run.steps=4"))
    half = train(_cfg("cr_b", tmp_path / "half", stage_a, "run.steps=4", "run.stop_step=2"))
    assert _ckpt(half)["step"] == 2
    train(_cfg("cr_b", tmp_path / "half", stage_a, "run.steps=4"), resume=True)
    a, b = _ckpt(full), _ckpt(half)
    assert b["step"] == 4
    for net in ("G", "D"):
        assert all(torch.equal(a["nets"][net][k], b["nets"][net][k]) for k in a["nets"][net])


def test_stage_b_needs_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs cr\.init"):
        train(_cfg("cr_b", tmp_path / "b"))


def test_missing_init_is_one_line_error(tmp_path: Path) -> None:
    from facesr.errors import DataError

    with pytest.raises(DataError, match="not found"):
        train(_cfg("cr_b", tmp_path / "b", tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("loss.crr=1", r"loss\.crr: unknown key"),
        ("cr.nets.gc_widht=4", r"cr\.nets\.gc_widht: unknown key"),
        ("loss.content=-1", r"loss\.content"),
    ],
)
def test_unknown_or_bad_keys_are_one_line_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_train_config(TINY, [override])


def test_cr_section_belongs_to_cr_recipes() -> None:
    with pytest.raises(ConfigError, match="cr section"):
        load_train_config(TINY, ["recipe.name=jdsr"])


def test_cr_recipes_are_x4_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="x4"):
        train(_cfg("cr_a", tmp_path / "a", None, "data.scale=8"))


def test_alias_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facesr.cli import main

    assert main(["train", str(TINY), "recipe.name=cr_b", f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facesr: error:") and "\n" not in err


@pytest.mark.parametrize(
    "path", sorted([*(REPO / "configs").glob("cr_*.yaml"), REPO / "configs" / "cycle_baseline.yaml"])
)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_train_config(path)
    assert cfg.recipe.name in ("cr_a", "cr_b", "cr_c", "cycle")
    T.CRSection.model_validate(cfg.cr)


def test_runs_summary_reads_the_run_files(stage_a: Path) -> None:
    from facesr.train.runs import runs_table

    md = runs_table([stage_a])
    assert f"| `{stage_a}` | cr_a | 3 |" in md and "G/sr_pixel" in md


def test_batcher_draws_artificial_faces_from_the_masked_pool() -> None:
    hr = np.zeros((4, 64, 64, 3), np.uint8)
    masked = np.full((4, 64, 64, 3), 255, np.uint8)
    gen = np.zeros((4, 16, 16, 3), np.uint8)
    all_masked = T.CRBatcher(hr, gen, 8, "cpu", 0, masked64=masked, mask_share=1.0).next_batch()
    assert torch.all(all_masked["hr"] == 1.0) and all_masked["lr_art"].shape == (8, 3, 16, 16)
    none_masked = T.CRBatcher(hr, None, 8, "cpu", 0, masked64=masked, mask_share=0.0).next_batch()
    assert torch.all(none_masked["hr"] == 0.0) and "lr_gen" not in none_masked


def test_batcher_state_round_trip() -> None:
    hr = (np.arange(6 * 64 * 64 * 3) % 251).astype(np.uint8).reshape(6, 64, 64, 3)
    b = T.CRBatcher(hr, None, 3, "cpu", 0)
    b.next_batch()
    state = b.state_dict()
    x = b.next_batch()["hr"]
    b.load_state_dict(state)
    assert torch.equal(b.next_batch()["hr"], x)
