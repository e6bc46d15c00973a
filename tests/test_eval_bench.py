"""facesr bench: FLOP counting convention, spec parsing, and a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facesr.errors import FacesrError
from facesr.speed.bench import run_bench
from facesr.speed.models import count_flops, parse_spec


def test_flop_count_convention() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, torch.zeros(1, 3, 16, 16)) == 2 * 8 * 3 * 9 * 16 * 16  # multiply-add = 2
    assert parse_spec("jdsr:size=lite:width=32") == ("jdsr", {"size": "lite", "width": 32})
    with pytest.raises(FacesrError, match="key=value"):
        parse_spec("jdsr:lite")


def test_bench_writes_table(tmp_path: Path) -> None:
    out = tmp_path / "B.md"
    run_bench(
        ["bicubic"],
        [8],
        out=out,
        json_out=tmp_path / "b.json",
        batch_size=2,
        repeats=1,
        threads=1,
        gpu=False,
        command="facesr bench --models bicubic",
        levers=False,
        peers=False,
    )
    text = out.read_text()
    assert "## x8 (16x16 -> 128x128)" in text and "## x4" not in text
    assert "| `bicubic` | 0 | 0.000 |" in text and "torch " + torch.__version__ in text
    assert (tmp_path / "b.json").is_file()
    with pytest.raises(FacesrError, match="scale must be 4 or 8"):
        run_bench(["bicubic"], [3], out=out, gpu=False)
