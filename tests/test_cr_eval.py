"""genuine-lr evaluation: result files, the grid, and metric sanity on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.eval.genuine import bicubic64, grid, restore64, run_genuine_eval
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


def test_run_writes_results_and_grid(sets: tuple[Path, Path], tmp_path: Path) -> None:
    gdir, pdir = sets
    weights = tmp_path / "cr.safetensors"
    args = {"gc_width": 8, "gc_blocks": 1, "gs_width": 8, "gs_blocks": 1}
    save_weights(build_cr(**args), weights, arch="cr", args=args, scale=8, dtype=None)
    out, png = tmp_path / "results", tmp_path / "grid.png"
    summary = run_genuine_eval(
        [("bicubic", "bicubic"), ("cr", str(weights))],
        genuine_dir=gdir,
        prepared_dir=pdir,
        out_dir=out,
        grid_path=png,
        face_id=_StubFaceID(),
        masked_ref=False,
    )
    assert [s["name"] for s in summary] == ["bicubic", "cr"]
    docs = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(docs) == {
        "genuine-lr__bicubic.json",
        "genuine-lr__cr.json",
        "utk-art-x4__bicubic.json",
        "utk-art-x4__cr.json",
    }
    g = docs["genuine-lr__bicubic.json"]
    assert g["format"] == "facesr-eval/1" and g["protocol"]["n_faces"] == 6
    # bicubic's output IS the bicubic-upsampled input: identity vs input must be 1
    assert g["metrics"]["identity_vs_bicubic_input"] == pytest.approx(1.0, abs=1e-5)
    # an untrained CR (G_C identity at init, G_S with bicubic skip) stays close to bicubic
    assert docs["utk-art-x4__cr.json"]["metrics"]["psnr"] > 5.0
    assert png.is_file() and (out / "genuine-lr__summary.md").read_text().count("|") > 10


def test_restore64_uses_native_output() -> None:
    net = build_cr(gc_width=8, gc_blocks=1, gs_width=8, gs_blocks=1).eval()
    x = torch.rand(2, 3, 16, 16)
    y = restore64(net, x)
    assert y.shape == (2, 3, 64, 64) and net.out_size == 128
    with torch.no_grad():
        assert torch.allclose(y, net.gs(net.gc(x)).clamp(0, 1), atol=1 / 255)


def test_bicubic64_and_grid_shapes() -> None:
    x = torch.rand(3, 3, 16, 16)
    b = bicubic64(x)
    assert b.shape == (3, 3, 64, 64)
    img = grid((x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8), [("bicubic", b)], [0, 2], tile=32)
    assert img.shape == (14 + 2 * 32, 2 * 32, 3)
