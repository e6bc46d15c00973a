"""The demo's request handler without a browser: limits, messages, outputs (gradio not needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesr.demo.app import AUTO, DemoLimits, DemoState, model_choices, run_restore
from facesr.errors import FacesrError
from facesr.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "src" / "facesr" / "samples").glob("*.jpg"))


def test_importing_facesr_and_its_cli_does_not_import_gradio() -> None:
    code = (
        "import sys, facesr, facesr.cli, facesr.demo; assert 'gradio' not in sys.modules, 'gradio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_model_choices_start_with_auto_and_list_the_zoo() -> None:
    choices = model_choices()
    assert choices[0] == AUTO and "bicubic-x4" in choices and "bicubic-x8" in choices


@pytest.mark.skipif(not SAMPLES, reason="no bundled sample photo")
def test_restore_writes_a_downloadable_result(tmp_path: Path) -> None:
    state = DemoState(device="cpu", out_dir=tmp_path)
    before, after, gallery, out, status = run_restore(str(SAMPLES[0]), AUTO, state, DemoLimits())
    assert before.shape == after.shape == read_image(SAMPLES[0]).shape
    assert np.array_equal(read_image(out), after) and Path(out).name.endswith("-restored.png")
    assert "face(s) restored" in status and len(gallery) >= 2
    assert not np.array_equal(before, after)


def test_limits_give_one_line_reasons(tmp_path: Path) -> None:
    state = DemoState(device="cpu", out_dir=tmp_path / "out")
    big = tmp_path / "big.png"
    write_image(big, np.zeros((300, 300, 3), np.uint8))
    with pytest.raises(FacesrError, match="accepts up to"):
        run_restore(str(big), AUTO, state, DemoLimits(max_upload_bytes=100))
    with pytest.raises(FacesrError, match=r"^big\.png: 300x300 image is larger than the 10,000-pixel limit$"):
        run_restore(str(big), AUTO, state, DemoLimits(max_pixels=10_000))
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(FacesrError, match=r"^notes\.jpg: not a recognised image format$"):
        run_restore(str(text), AUTO, state, DemoLimits())
    with pytest.raises(FacesrError, match="upload a photo first"):
        run_restore(None, AUTO, state, DemoLimits())
    with pytest.raises(FacesrError, match="unknown model"):
        run_restore(str(big), "no-such-model", state, DemoLimits())
