"""CR staged training: a tiny end-to-end CPU run of every stage, and stage B's frozen G_S."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facesr.config import load
from facesr.errors import ConfigError, DataError
from facesr.train import cr as T
from facesr.zoo import load_model

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "cr_tiny_cpu.yaml"


def _cfg(stage: str, out: Path, init: Path | None = None, steps: int = 3) -> T.CRTrainConfig:
    over = [f"stage={stage}", f"out={out}", f"optim.steps={steps}"]
    if init is not None:
        over.append(f"init={init}")
    return load(T.CRTrainConfig, TINY, over)


@pytest.fixture(scope="module")
def stage_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cr") / "a"
    T.run(_cfg("a", out))
    return out


def _gs(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("gs.")}


def test_all_stages_end_to_end(stage_a: Path, tmp_path: Path) -> None:
    b, c, cyc = tmp_path / "b", tmp_path / "c", tmp_path / "cycle"
    rb = T.run(_cfg("b", b, stage_a / "nets.safetensors"))
    rc = T.run(_cfg("c", c, b / "nets.safetensors"))
    ry = T.run(_cfg("cycle", cyc, stage_a / "nets.safetensors"))
    assert rb["loaded"] == ["gs"] and set(rc["loaded"]) == {"gs", "gc"} and ry["loaded"] == ["up.gs<-gs"]
    for keys, res in (
        (("cc_adv", "content", "cr", "d"), rb),
        (("cycle_lr", "cycle_hr", "pair", "adv_hr"), ry),
    ):
        assert all(k in res["last"] and torch.isfinite(torch.tensor(res["last"][k])) for k in keys)
    x = torch.rand(2, 3, 16, 16)
    for folder, arch in ((stage_a, "cr_sr_only"), (b, "cr"), (c, "cr"), (cyc, "cycle_sr")):
        model = load_model(folder / "model.safetensors")
        assert model.meta["facesr.arch"] == arch
        assert model.lr_size == 16
        assert model(x).shape == (2, 3, 128, 128)
        assert (folder / "log.jsonl").read_text().count("\n") == 3


def test_stage_b_leaves_gs_unchanged_and_trains_gc(stage_a: Path, tmp_path: Path) -> None:
    before = _gs(stage_a / "nets.safetensors")
    T.run(_cfg("b", tmp_path / "b", stage_a / "nets.safetensors", steps=4))
    after = load_file(str(tmp_path / "b" / "nets.safetensors"))
    assert before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # G_C moved away from its identity start (its tail was zero-initialised)
    assert after["gc.tail.weight"].abs().sum() > 0


def test_stage_b_step_gives_gs_no_gradient(stage_a: Path) -> None:
    cfg = _cfg("b", stage_a.parent / "unused", stage_a / "nets.safetensors")
    models = T.build_models(cfg)
    T.init_from(models, cfg)
    optims = T.build_optims(models, cfg)
    assert all(not p.requires_grad for p in models["gs"].parameters())
    assert not any(
        p is q
        for group in optims["g"].param_groups
        for p in group["params"]
        for q in models["gs"].parameters()
    )
    batch = T.load_domains(cfg).batch(4, need_genuine=True)
    T.train_step(batch, models, optims, cfg)
    assert all(p.grad is None for p in models["gs"].parameters())
    assert any(p.grad is not None for p in models["gc"].parameters())


def test_stage_c_keeps_gc_and_changes_gs(stage_a: Path, tmp_path: Path) -> None:
    T.run(_cfg("b", tmp_path / "b", stage_a / "nets.safetensors"))
    T.run(_cfg("c", tmp_path / "c", tmp_path / "b" / "nets.safetensors"))
    b = load_file(str(tmp_path / "b" / "nets.safetensors"))
    c = load_file(str(tmp_path / "c" / "nets.safetensors"))
    assert all(torch.equal(b[k], c[k]) for k in b if k.startswith("gc."))
    assert any(not torch.equal(b[k], c[k]) for k in b if k.startswith("gs."))


def test_stage_b_needs_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs init"):
        T.run(_cfg("b", tmp_path / "b"))


def test_unknown_config_key_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"weights\.crr"):
        load(T.CRTrainConfig, TINY, ["weights.crr=1"])


def test_cli_main_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main([str(TINY), "stage=b", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facesr: error:") and "\n" not in err


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("c*_*.yaml")))
def test_shipped_configs_validate(path: Path) -> None:
    if path.name.startswith(("cr_", "cycle_")):
        load(T.CRTrainConfig, path)


def test_runs_summary_reads_the_run_files(stage_a: Path) -> None:
    md = T.runs_markdown([stage_a])
    assert f"| `{stage_a}` | a | 3 |" in md and "sr_pixel" in md
    with pytest.raises(DataError):
        T.runs_markdown([stage_a.parent / "missing"])


def test_domains_draw_artificial_faces_from_the_masked_pool() -> None:
    hr = np.zeros((4, 64, 64, 3), np.uint8)
    masked = np.full((4, 64, 64, 3), 255, np.uint8)
    gen = np.zeros((4, 16, 16, 3), np.uint8)
    all_masked = T.Domains(hr, gen, "cpu", 0, masked64=masked, mask_share=1.0).batch(8, need_genuine=True)
    assert torch.all(all_masked["hr"] == 1.0) and all_masked["lr_art"].shape == (8, 3, 16, 16)
    none_masked = T.Domains(hr, gen, "cpu", 0, masked64=masked, mask_share=0.0).batch(8, need_genuine=False)
    assert torch.all(none_masked["hr"] == 0.0) and "lr_gen" not in none_masked
