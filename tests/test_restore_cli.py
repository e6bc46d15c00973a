"""`facesr restore` / `facesr.restore()`: agreement, bad input, safety, zoo errors, lazy import."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facesr.cli import main
from facesr.errors import ModelError
from facesr.io import read_image, write_image
from facesr.nets.registry import register_arch

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
SAMPLE = SAMPLES / "rwmfd_0002_0078.jpg"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_samples_have_faces_that_get_restored() -> None:
    from facesr.restoration.api import restore

    for f in sorted(SAMPLES.glob("*.jpg")):
        res = restore(f, model="bicubic", device="cpu")
        assert len(res.restored) >= 5, f.name


def test_api_and_cli_give_identical_outputs(tmp_path: Path) -> None:
    from facesr.restoration.api import restore

    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    src.write_bytes(SAMPLE.read_bytes())
    rc = main(["restore", str(src), "-o", str(tmp_path / "out"), "--model", "bicubic", "--device", "cpu"])
    assert rc == 0
    cli_img = read_image(tmp_path / "out" / "photo.png")
    for inp in (src, read_image(src), __import__("PIL.Image").Image.open(src)):
        api = restore(inp, model="bicubic", device="cpu")
        assert np.array_equal(api.image, cli_img)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["counts"]["faces_restored"] == len(api.restored) > 0
    assert all("status" in f for f in rep["files"][0]["faces"])


def test_every_bad_input_has_a_one_line_reason_and_the_rest_still_run(tmp_path: Path, capsys) -> None:
    d = tmp_path / "in"
    d.mkdir()
    good = d / "good.jpg"
    good.write_bytes(SAMPLE.read_bytes())
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (d / "truncated.jpg").write_bytes(SAMPLE.read_bytes()[: len(SAMPLE.read_bytes()) // 2])
    (d / "notes.txt").write_text("not an image\n")
    (d / "anim.gif").write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    write_image(d / "noface.jpg", np.full((64, 96, 3), 200, np.uint8))
    big = d / "big.jpg"
    write_image(big, np.zeros((400, 400, 3), np.uint8))
    same = d / "same.png"  # restoring it into -o d would overwrite itself
    same.write_bytes(SAMPLE.read_bytes())
    inputs = sorted(d.iterdir())
    before = {p: _sha(p) for p in inputs}
    rc = main(
        [
            "restore",
            *map(str, inputs),
            "-o",
            str(d),
            "--model",
            "bicubic",
            "--device",
            "cpu",
            "--max-pixels",
            "150000",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert {p: _sha(p) for p in inputs} == before  # inputs never modified
    rep = json.loads((d / "report.json").read_text())
    by_name = {Path(f["input"]).name: f for f in rep["files"]}
    assert by_name["good.jpg"]["status"] == "ok" and (d / "good.png").is_file()
    # a readable photo without a face is written (enlarged) and counts as ok
    assert by_name["noface.jpg"]["status"] == "ok" and read_image(d / "noface.png").shape == (128, 192, 3)
    expect = {
        "corrupt.jpg": ("not a recognised image format", "cannot decode"),
        "truncated.jpg": ("cannot decode", "truncated"),
        "notes.txt": "unsupported file type",
        "anim.gif": "unsupported file type",
        "big.jpg": "pixel limit",
        "same.png": "would overwrite an input",
    }
    for name, words in expect.items():
        item = by_name[name]
        assert item["status"] == "failed", name
        words = (words,) if isinstance(words, str) else words
        assert any(w in item["reason"] for w in words) and "\n" not in item["reason"], (name, item["reason"])
    failed_lines = [ln for ln in err.splitlines() if ln.startswith("facesr: failed:")]
    assert len(failed_lines) == len(expect)
    assert "Traceback" not in err


def test_unwritable_output_folder_is_one_line_usage_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["restore", str(SAMPLE), "-o", str(blocker / "out"), "--model", "bicubic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("facesr: error: cannot write to output folder")


def test_no_partial_files_left_in_output(tmp_path: Path) -> None:
    rc = main(
        [
            "restore",
            str(SAMPLE),
            "-o",
            str(tmp_path),
            "--model",
            "bicubic",
            "--device",
            "cpu",
            "--compare",
            "--save-faces",
        ]
    )
    assert rc == 0
    names = [p.name for p in tmp_path.rglob("*")]
    assert not [n for n in names if n.endswith(".tmp")]
    assert "rwmfd_0002_0078_compare.png" in names and any(n.endswith("_sr.png") for n in names)


class _Tiny(nn.Module):
    """A 'model' for zoo tests: bicubic up-sampling plus one (zero-initialised) conv."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + self.conv(up)


@pytest.fixture
def tiny_zoo(tmp_path: Path, monkeypatch):
    """A zoo with jdsr-lite-x4/x8 and the DEFAULT_MODELS entries pointing at tiny models in tmp_path."""
    import facesr.restoration.api as api
    from facesr import zoo

    register_arch("test-tiny")(_Tiny)
    entries = []
    named = {f"jdsr-lite-x{s}": s for s in (4, 8)} | {n: s for s, n in api.DEFAULT_MODELS.items()}
    for name, s in named.items():
        f = tmp_path / f"{name}.safetensors"
        zoo.save_weights(_Tiny(s), f, arch="test-tiny", args={"scale": s}, scale=s)
        entries.append(
            {
                "name": name,
                "file": f.name,
                "sha256": zoo.sha256_file(f),
                "scale": s,
                "task": "masked",
                "scores": {"psnr": 1.0},
            }
        )
    (tmp_path / "zoo.json").write_text(json.dumps({"models": entries}))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(zoo, "ZOO_FILE", tmp_path / "zoo.json")
    api._cached_model.cache_clear()
    yield tmp_path
    api._cached_model.cache_clear()


def test_default_model_picks_up_installed_jdsr_by_name(tiny_zoo: Path) -> None:
    from facesr.restoration.api import DEFAULT_MODELS, restore

    res = restore(SAMPLE, device="cpu")
    assert not res.warnings
    assert {f.model for f in res.restored} <= set(DEFAULT_MODELS.values()) and res.restored


def test_zoo_wrong_hash_and_missing_file_are_clear_model_errors(tiny_zoo: Path, capsys) -> None:
    from facesr.restoration.api import restore

    f = tiny_zoo / "jdsr-lite-x4.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        restore(SAMPLE, model="jdsr-lite-x4", device="cpu")
    f.unlink()
    with pytest.raises(ModelError, match="missing"):
        restore(SAMPLE, model="jdsr-lite-x4", device="cpu")
    rc = main(["restore", str(SAMPLE), "-o", str(tiny_zoo / "out"), "--model", "jdsr-lite-x4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("facesr: error: model 'jdsr-lite-x4'")
    assert main(["models"]) == 0
    assert "MISSING" in capsys.readouterr().out


def test_import_facesr_is_lazy() -> None:
    """`import facesr` (and importing the restore API) never pulls in data or training code."""
    code = (
        "import json, sys, facesr; a = sorted(sys.modules);"
        "from facesr import restore, load_model, list_models; restore.__name__; b = sorted(sys.modules);"
        "print(json.dumps([a, b]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    after_import, after_api = json.loads(out)
    assert "facesr" in after_import and "torch" not in after_import
    heavy = [m for m in after_api if m.startswith(("facesr.data", "facesr.train"))]
    assert heavy == []


def test_engine_option_is_recorded_and_an_unusable_one_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    src.write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out"
    rc = main(
        ["restore", str(src), "-o", str(out), "--model", "bicubic", "--device", "cpu", "--engine", "torch"]
    )
    assert rc == 0
    assert json.loads((out / "report.json").read_text())["settings"]["engine"] == "torch"
    capsys.readouterr()
    argv = ["restore", str(src), "-o", str(tmp_path / "o2"), "--device", "cpu", "--precision", "bf16"]
    rc = main([*argv, "--engine", "ort"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "engine ort" in err
    assert not (tmp_path / "o2" / "photo.png").exists()
