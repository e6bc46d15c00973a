"""Config validation: misspelt keys are named, overrides never exec."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesr.config import Strict, apply_overrides, load, parse_override
from facesr.errors import ConfigError


class Optim(Strict):
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)


class Cfg(Strict):
    name: str = "run"
    optim: Optim = Optim()


def test_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: exp\noptim:\n  lr: 0.001\n")
    cfg = load(Cfg, path, ["optim.lr=2e-4", "optim.betas=[0.9, 0.99]"])
    assert cfg.name == "exp" and cfg.optim.lr == pytest.approx(2e-4) and cfg.optim.betas == (0.9, 0.99)


def test_misspelt_key_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim\.lrr: unknown key"):
        load(Cfg, path)
    with pytest.raises(ConfigError, match=r"optim\.lr_typo: unknown key"):
        load(Cfg, None, ["optim.lr_typo=1"])


def test_wrong_type_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load(Cfg, None, ["optim.lr=fast"])
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load(Cfg, path)


def test_override_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    parts, value = parse_override(f"name=__import__('os').system('touch {marker}')")
    assert parts == ["name"] and isinstance(value, str)  # a plain string, not evaluated
    with pytest.raises(ConfigError):  # YAML tags that would construct Python objects are refused
        apply_overrides({}, [f"name=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()
