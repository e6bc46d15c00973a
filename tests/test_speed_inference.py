"""Inference speed levers: each lever's output matches fp32 eager on the CPU, and the table is honest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.errors import FacesrError
from facesr.speed.inference import (
    Lever,
    QualityFaces,
    Runner,
    measure_levers,
    memory_growth,
    parse_lever,
    render_levers,
    run_all,
)
from facesr.zoo import Restorer

TINY = {
    "est_width": 4,
    "est_blocks": 1,
    "est_reduction": 2,
    "unet_widths": [4, 8, 8],
    "unet_blocks": [1, 1, 1, 1, 1],
    "trunk": 8,
    "prior_width": 8,
    "coarse_blocks": 1,
    "encoder_blocks": 1,
    "prior_blocks": 1,
    "hourglass_depth": 2,
    "decoder_blocks": 1,
    "reduction": 2,
}


def tiny_restorer(scale: int = 8) -> Restorer:
    from facesr.nets.jdsr import JDSRGenerator

    torch.manual_seed(0)
    net = JDSRGenerator("lite", scale=scale, **TINY).eval().requires_grad_(False)
    return Restorer(net, name="tiny", scale=scale, output_key="sr")


def faces(n: int = 4, scale: int = 8) -> QualityFaces:
    rng = np.random.default_rng(0)
    s = 128 // scale
    return QualityFaces(
        "random",
        rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8),
        rng.integers(0, 256, (n, 128, 128, 3), np.uint8),
    )


def test_parse_lever() -> None:
    assert parse_lever("fp32") == Lever() and parse_lever("fp32").is_baseline
    assert parse_lever("channels_last+bf16").name == "channels_last+bf16"
    with pytest.raises(FacesrError, match="unknown speed lever"):
        parse_lever("bf17")
    with pytest.raises(FacesrError, match="cannot be combined"):
        parse_lever("ort+bf16")


def _lr(n: int = 3, scale: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, 128 // scale, 128 // scale, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("lever", ["channels_last", "bf16", "bf16+channels_last"])
def test_cpu_levers_match_fp32_eager(lever: str) -> None:
    x = _lr()
    ref = run_all(Runner(tiny_restorer(), Lever(), torch.device("cpu"), 2), x)
    out = run_all(Runner(tiny_restorer(), parse_lever(lever), torch.device("cpu"), 2), x)
    tol = 2e-2 if "bf16" in lever else 1e-5  # bf16 has 8 mantissa bits: ~1/255 on [0, 1] outputs
    assert out.shape == ref.shape == (3, 3, 128, 128)
    assert (out - ref).abs().mean() < tol / 4 and (out - ref).abs().max() < tol * 4


class _SmallSR(torch.nn.Module):
    """conv -> ReLU -> conv + bicubic: a restorer small enough to compile in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(x, size=(128, 128), mode="bicubic", align_corners=False)
        return up + 0.1 * torch.nn.functional.interpolate(self.b(torch.relu(self.a(x))), size=(128, 128))


def small_restorer() -> Restorer:
    torch.manual_seed(0)
    return Restorer(_SmallSR().eval().requires_grad_(False), name="small", scale=8)


@pytest.mark.slow
def test_compiled_cpu_inference_matches_fp32_eager() -> None:
    x = _lr()
    ref = run_all(Runner(small_restorer(), Lever(), torch.device("cpu"), 3), x)
    runner = Runner(small_restorer(), parse_lever("compile+channels_last"), torch.device("cpu"), 3)
    out = run_all(runner, x)
    assert runner.first_call_s > 0
    assert (out - ref).abs().max() < 1e-4


def test_onnx_runtime_matches_and_int8_is_reported() -> None:
    pytest.importorskip("onnxruntime")
    rows = measure_levers(
        tiny_restorer,
        model_name="tiny",
        scale=8,
        device=torch.device("cpu"),
        levers=["ort", "ort_int8", "cuda_graph"],
        batch=2,
        repeats=1,
        faces=faces(),
    )
    by = {r.lever: r for r in rows}
    assert list(by) == ["fp32", "ort", "ort_int8", "cuda_graph"]  # the baseline is inserted first
    assert by["fp32"].speedup == pytest.approx(1.0) and by["fp32"].mean_abs_255 == 0.0
    assert by["ort"].error is None and by["ort"].max_abs_255 < 0.05  # float rounding only
    assert by["ort"].psnr_delta is not None and abs(by["ort"].psnr_delta) < 1e-3
    assert by["ort_int8"].error is None and by["ort_int8"].mean_abs_255 is not None
    assert by["cuda_graph"].error and "CUDA" in by["cuda_graph"].error  # reported, not fatal
    table = "\n".join(render_levers(rows))
    assert "| fp32 | 2 |" in table and "not measured" in table
    json.dumps([r.to_json() for r in rows])


def test_no_memory_growth_over_many_faces() -> None:
    runner = Runner(small_restorer(), Lever(), torch.device("cpu"), 50)
    rep = memory_growth(runner, 2000)
    assert rep["faces"] >= 2000
    assert rep["growth_mb"] < 40  # keeping one output per batch would leak 40 x 9.4 MB here


def test_bench_prints_lever_table_and_folds_gpu_json(tmp_path: Path) -> None:
    from facesr.speed.bench import run_bench

    gpu = tmp_path / "gpu_speed.json"
    gpu.write_text(
        json.dumps(
            {
                "device": "NVIDIA H100",
                "date": "2026-11-23T00:00:00Z",
                "command": "bash scripts/gpu_speed.sh",
                "torch": "2.11",
                "sections": [{"title": "Inference levers", "lines": ["| lever |", "|---|", "| fp32 |"]}],
            }
        )
    )
    out = tmp_path / "B.md"
    spec = "jdsr:size=lite:" + ":".join(f"{k}={json.dumps(v).replace(' ', '')}" for k, v in TINY.items())
    run_bench(
        ["bicubic"],
        [8],
        out=out,
        batch_size=1,
        repeats=1,
        threads=1,
        gpu=False,
        levers=True,
        lever_scales=(8,),
        lever_specs=[("tiny", spec)],
        lever_list=["fp32", "channels_last"],
        quality_faces=2,
        peers=False,
        gpu_json=gpu,
        benchmarks_root=str(tmp_path / "none"),
    )
    text = out.read_text()
    assert "## CPU inference levers, x8" in text and "| channels_last | 1 |" in text
    assert "## GPU (NVIDIA H100)" in text and "| fp32 |" in text
    assert "Load average" in text
