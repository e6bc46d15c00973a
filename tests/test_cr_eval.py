"""genuine-lr evaluation: result files, the grid, and metric sanity on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.eval.genuine import bicubic64, restore64, run_genuine_eval
from facesr.eval.results import read_result
from facesr.nets.cr import build_cr
from facesr.zoo import save_weights


class _StubFaceID:
    """Stand-in for the identity network: a fixed random projection of the 128x128 face."""

    def __init__(self) -> None:
        self.w = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0))

    def embed(self, img01: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.interpolate(img01, size=(16, 16), mode="area")
        return torch.nn.functional.normalize(small.flatten(1) @ self.w, dim=1)


@pytest.fixture
def sets(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    gdir, pdir = tmp_path / "genuine", tmp_path / "prepared"
    gdir.mkdir()
    pdir.mkdir()
    n = 12
    np.save(gdir / "lr16.npy", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
    np.save(gdir / "split.npy", (np.arange(n) % 2).astype(np.uint8))
    (gdir / "meta.jsonl").write_text(
        "".join(json.dumps({"row": i, "path": f"p{i}.jpg"}) + "\n" for i in range(n))
    )
    np.save(pdir / "faces64.npy", rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8))
    np.save(pdir / "split.npy", np.array([0, 1] * 5, np.uint8))
    return gdir, pdir


def _weights(tmp_path: Path) -> Path:
    weights = tmp_path / "cr.safetensors"
    args = {"gc_width": 8, "gc_blocks": 1, "gs_width": 8, "gs_blocks": 1}
    save_weights(build_cr(**args), weights, arch="cr", args=args, scale=8, dtype=None)
    return weights


def test_run_writes_results_strips_and_report(sets: tuple[Path, Path], tmp_path: Path) -> None:
    from facesr.eval.report import generate

    gdir, pdir = sets
    out = tmp_path / "results"
    run_genuine_eval(
        [("bicubic-x4", "bicubic"), ("sr-only", str(_weights(tmp_path))), ("cr", str(_weights(tmp_path)))],
        genuine_dir=gdir,
        prepared_dir=pdir,
        out_dir=out,
        face_id=_StubFaceID(),
        masked_ref=False,
    )
    docs = {p.name: read_result(p) for p in out.glob("*.json")}
    assert set(docs) == {
        f"{b}__{m}.json" for b in ("genuine-lr", "utk-art-x4") for m in ("bicubic-x4", "sr-only", "cr")
    }
    g = docs["genuine-lr__bicubic-x4.json"]
    assert g["format"] == "facesr-eval/2" and g["protocol"]["n_faces"] == 6
    assert len(g["per_image"]) == 6 and "identity_vs_bicubic_input" in g["per_image"][0]
    # bicubic's output IS the bicubic-upsampled input: identity vs input must be 1
    assert g["metrics"]["identity_vs_bicubic_input"] == pytest.approx(1.0, abs=1e-5)
    assert g["metrics"]["frd_se"] > 0 and len(g["frd_bootstrap"]["values"]) == 1000
    # an untrained CR (G_C identity at init, G_S with bicubic skip) stays close to bicubic
    a = docs["utk-art-x4__cr.json"]
    assert a["metrics"]["psnr"] > 5.0 and len(a["per_image"]) == 5
    assert (out / "samples" / "genuine-lr__input.png").is_file()
    assert (out / "samples" / "genuine-lr__cr.png").is_file()
    md, grids = tmp_path / "RESULTS.md", tmp_path / "img"
    generate(out, md, grids)
    text = md.read_text()
    assert "## Characteristic Regularisation" in text and "(reference)" in text
    # identical weights for sr-only and cr: a paired change of exactly zero
    assert "| cr | " in text and "+0.0 % [+0.0, +0.0]" in text
    assert (grids / "grid_genuine-lr.png").is_file()
    first = text
    generate(out, md, grids)
    assert md.read_text() == first  # rebuildable byte-identically


def test_paired_bootstrap_detects_a_real_difference() -> None:
    """Outputs far from the reference get a higher FRD on every paired resample (interval excludes 0)."""
    from facesr.eval.genuine import bootstrap_frd

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(200, 8, generator=g)
    near = torch.randn(60, 8, generator=g)
    far = near + 1.5
    a, b = bootstrap_frd(far, ref, 200), bootstrap_frd(near, ref, 200)
    assert np.percentile(a / b - 1, 2.5) > 0


def test_restore64_uses_native_output() -> None:
    net = build_cr(gc_width=8, gc_blocks=1, gs_width=8, gs_blocks=1).eval()
    x = torch.rand(2, 3, 16, 16)
    y = restore64(net, x)
    assert y.shape == (2, 3, 64, 64) and net.out_size == 128
    with torch.no_grad():
        assert torch.allclose(y, net.gs(net.gc(x)).clamp(0, 1), atol=1 / 255)


def test_bicubic64_shape_and_range() -> None:
    b = bicubic64(torch.rand(3, 3, 16, 16))
    assert b.shape == (3, 3, 64, 64) and b.min() >= 0 and b.max() <= 1


@pytest.mark.slow
def test_facesr_eval_cli_genuine_benchmarks(
    sets: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`facesr eval --benchmark genuine-lr|utk-art-x4` with the real identity network on a tiny workspace."""
    from facesr.cli import main

    gdir, pdir = sets
    ws = tmp_path / "ws"
    (ws / "prepared").mkdir(parents=True)
    gdir.rename(ws / "genuine")
    pdir.rename(ws / "prepared" / "utkface")
    monkeypatch.setenv("FACESR_WORKSPACE", str(ws))
    out = tmp_path / "res"
    weights = _weights(tmp_path)
    for bench in ("genuine-lr", "utk-art-x4"):
        argv = ["eval", "--benchmark", bench, "--model", str(weights), "--name", "cr", "--out", str(out)]
        assert main([*argv, "--device", "cpu"]) == 0
        assert f"{bench}__cr.json" in capsys.readouterr().out
    doc = json.loads((out / "genuine-lr__cr.json").read_text())
    assert doc["model"]["weights_sha256"] and doc["metrics"]["frd"] >= 0
    assert "frd_masked_ref" not in doc["metrics"]  # minimal prepared set: no 128 px faces to mask
    assert main(["eval", "--benchmark", "genuine-lr", "--images", str(tmp_path), "--name", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--model" in err and "\n" not in err
