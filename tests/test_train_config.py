"""Training configs: every shipped YAML validates, misspelt keys are named, overrides never exec."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesr.cli import main
from facesr.errors import ConfigError
from facesr.train.config import load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
#: this trainer's configs (the CR trainer keeps its own cr_*/cycle_* files in the same folder)
TRAIN_CONFIGS = [p for p in CONFIGS if p.stem.startswith(("jdsr_", "sr_only_", "two_stage_", "tiny_cpu"))]


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_train_config(path)
    assert cfg.run.steps > 0
    assert cfg.loss, "the loss section is filled with the JDSRLossWeights defaults"


def test_expected_configs_exist() -> None:
    names = {p.stem for p in TRAIN_CONFIGS}
    for scale in (4, 8):
        for stem in (
            "jdsr_lite",
            "jdsr_paper",
            "sr_only_lite",
            "two_stage_denoiser_lite",
            "two_stage_sr_lite",
        ):
            assert f"{stem}_x{scale}" in names
    assert "tiny_cpu" in names


def test_misspelt_yaml_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 0.001\n")
    with pytest.raises(ConfigError, match=r"optim\.lrr: unknown key"):
        load_train_config(bad)


def test_misspelt_section_and_loss_key_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"recipee: unknown key"):
        load_train_config(None, ["recipee.name=jdsr"])
    with pytest.raises(ConfigError, match=r"loss\.pixel_weight_typo: unknown key"):
        load_train_config(None, ["loss.pixel_weight_typo=1"])
    with pytest.raises(ConfigError, match=r"run\.stpes: unknown key"):
        load_train_config(None, ["run.stpes=3"])


def test_overrides_are_typed_and_never_executed() -> None:
    cfg = load_train_config(None, ["optim.lr=2e-4", "data.scale=8", "schedule.milestones=[0.6, 0.9]"])
    assert (
        cfg.optim.lr == pytest.approx(2e-4) and cfg.data.scale == 8 and cfg.schedule.milestones == [0.6, 0.9]
    )
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_train_config(None, ["optim.lr=__import__('os').system('false')"])
    with pytest.raises(ConfigError, match=r"data\.scale"):
        load_train_config(None, ["data.scale=3"])
    with pytest.raises(ConfigError, match="milestones"):
        load_train_config(None, ["schedule.milestones=[0.9, 0.5]"])


def test_cpu_precision_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto stays fp32 on the CPU; bf16 there only with native bf16; fp16 only on CUDA."""
    import torch

    from facesr.train import loop
    from facesr.train.loop import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    monkeypatch.setattr(loop, "cpu_bf16_native", lambda: False)
    with pytest.raises(ConfigError, match="native bf16"):
        resolve_precision("bf16", cpu)
    monkeypatch.setattr(loop, "cpu_bf16_native", lambda: True)
    assert resolve_precision("bf16", cpu) == "bf16"


def test_print_config_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--print-config", str(TRAIN_CONFIGS[0]), "optim.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.0003" in out and "recipe:" in out and "loss:" in out


def test_cli_misspelt_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  stepz: 5\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run.stepz: unknown key" in err
