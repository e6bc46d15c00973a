"""Issue 17, training: alias bombs, non-finite lr, corrupt checkpoints and incompatible resumes."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from facesr.config import load, read_yaml
from facesr.errors import ConfigError, DataError
from facesr.train.config import TrainConfig, load_train_config
from facesr.train.loop import (
    PREV_CKPT_NAME,
    config_for_resume,
    load_checkpoint,
    load_resume_checkpoint,
    save_checkpoint,
    train,
)
from train_helpers import TINY, make_prepared, tiny_overrides

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_bomb_is_refused_before_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases") as err:
        load(TrainConfig, path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "line 2" in str(err.value) and "\n" not in str(err.value)
    assert peak < 5_000_000 and time.perf_counter() - t0 < 2.0


def test_alias_in_an_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="aliases"):
        load(TrainConfig, None, ["model.overrides={a: &x [1, 2], b: *x}"])


def test_oversized_and_binary_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import facesr.config as fc

    big = tmp_path / "big.yaml"
    big.write_text("run: {steps: 10}\n" + "# pad\n" * 100)
    monkeypatch.setattr(fc, "MAX_YAML_BYTES", 200)
    with pytest.raises(ConfigError, match="too large"):
        read_yaml(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match=r"UTF-8|invalid YAML"):
        read_yaml(binary)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
@pytest.mark.parametrize("key", ["optim.lr", "optim.d_lr", "optim.grad_clip", "data.mask_prob"])
def test_non_finite_numbers_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(TrainConfig, None, [f"{key}={value}"])


def test_checksummed_checkpoint_catches_a_flipped_byte(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    state = {"step": 3, "w": torch.arange(4096, dtype=torch.float32)}
    save_checkpoint(path, state)
    assert torch.equal(load_checkpoint(path)["w"], state["w"])
    raw = bytearray(path.read_bytes())
    # flip one byte inside the float data (the tensor's values, not the zip structure)
    needle = torch.arange(4096, dtype=torch.float32)[1000:1004].numpy().tobytes()
    at = bytes(raw).index(needle)
    raw[at + 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256"):
        load_checkpoint(path)


def test_previous_checkpoint_is_kept_and_used_when_last_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    assert not (tmp_path / PREV_CKPT_NAME).exists()
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(tmp_path / PREV_CKPT_NAME)["step"] == 1
    path.write_bytes(path.read_bytes()[:100])  # a bad write / a damaged disk
    assert load_resume_checkpoint(path)["step"] == 1
    assert (tmp_path / "last.pt.corrupt").is_file() and not path.exists()
    save_checkpoint(path, {"step": 3})  # the good previous checkpoint is not rotated away by this
    assert load_checkpoint(tmp_path / PREV_CKPT_NAME)["step"] == 1


def test_legacy_plain_checkpoints_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"step": 7}, path)
    assert load_checkpoint(path)["step"] == 7


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile_train")
    prepared = make_prepared(root / "prep" / "tiny", n=12, n_test=2)
    cfg = load_train_config(
        TINY,
        [
            *tiny_overrides(prepared, root / "run"),
            "run.threads=1",
            "run.steps=2",
            "run.ckpt_every=1",
            "run.tensorboard=false",
            "run.progress=false",
            "run.export=false",
            "recipe.adv_start_step=100",
        ],
    )
    return train(cfg)


def test_incompatible_resume_override_is_one_line(tiny_run: Path) -> None:
    assert (tiny_run / "ckpt" / PREV_CKPT_NAME).is_file()
    cfg = config_for_resume(tiny_run, ["run.steps=3", "model.overrides.trunk=16"])
    with pytest.raises(ConfigError, match="does not fit the config") as err:
        train(cfg, resume=True)
    assert "\n" not in str(err.value)
    assert load_checkpoint(tiny_run / "ckpt" / "last.pt")["step"] == 2  # nothing was written


def test_init_from_weights_are_hash_checked(tmp_path: Path) -> None:
    """Issue 17: training's ``model.init_from`` (and ``critic_init_from``, ``cr.init``) read a weights file
    by path; a zoo file or one with a ``.sha256`` sidecar is checked against that hash first."""
    from torch import nn

    from facesr.checksums import sha256_file
    from facesr.train.warmstart import load_part
    from facesr.zoo import WEIGHTS_DIR, list_models, verify_known_sha256

    net = nn.Linear(2, 2)
    path = tmp_path / "init.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    sidecar = tmp_path / "init.safetensors.sha256"
    sidecar.write_text(sha256_file(path) + "  init.safetensors\n")
    load_part(net, str(path), "model.init_from")  # the recorded hash matches
    sidecar.write_text("0" * 64 + "\n")
    with pytest.raises(ConfigError, match=r"model\.init_from: .*sha256") as err:
        load_part(net, str(path), "model.init_from")
    assert "\n" not in str(err.value)
    # the shipped zoo files pass as they are (the check reads the zoo's own record)
    shipped = [m for m in list_models() if m.file and (WEIGHTS_DIR / m.file).is_file()]
    assert shipped
    verify_known_sha256(WEIGHTS_DIR / shipped[0].file)
