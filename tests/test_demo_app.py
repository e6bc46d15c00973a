"""The demo's request handler without a browser: limits, messages, outputs (gradio not needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesr.demo.app import (
    AUTO,
    REPORT_HEADERS,
    SAMPLES_DIR,
    DemoLimits,
    DemoState,
    face_report,
    model_choices,
    run_restore,
    sample_photos,
)
from facesr.errors import FacesrError
from facesr.io import IMAGE_EXTENSIONS, read_image, write_image

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
    before, after, gallery, out, status, report = run_restore(str(SAMPLES[0]), AUTO, state, DemoLimits())
    from facesr.restoration.api import restore

    ref = restore(SAMPLES[0], device="cpu")  # the demo shows what the API returns: same size, same faces
    h, w = read_image(SAMPLES[0]).shape[:2]
    assert before.shape == (h, w, 3) and after.shape == ref.image.shape == (
        h * ref.upscale,
        w * ref.upscale,
        3,
    )
    assert np.array_equal(read_image(out), after) and Path(out).name.endswith("-restored.png")
    assert f"{w}x{h} px -> {w * ref.upscale}x{h * ref.upscale} px (x{ref.upscale})" in status
    assert "face(s) restored" in status and len(gallery) == 2 * len(ref.restored) >= 2
    # one table row per detected face, restored or not, with its status and (if skipped) why
    assert len(report) == len(ref.faces) and all(len(row) == len(REPORT_HEADERS) for row in report)
    assert [row[1] for row in report] == [f.status for f in ref.faces]
    assert [row[0] for row in report] == [f.face.index + 1 for f in ref.faces]
    assert all(row[6] for row in report if row[1] == "skipped")
    assert {row[4] for row in report if row[1] == "restored"} <= set(model_choices())


def test_face_report_reads_plain_objects_too() -> None:
    """The table is duck-typed: a result without ``to_json`` still gives a row."""

    class Face:
        index, box, status, reason, model, mask = 2, [10, 20, 40, 60], "skipped", "too small", "", None

    assert face_report([Face()]) == [[3, "skipped", "10, 20, 30, 40", "", "", "", "too small"]]


def test_upload_types_are_the_cli_list(tmp_path: Path) -> None:
    """The demo takes the files `facesr restore` takes (facesr.io.IMAGE_EXTENSIONS), BMP and TIFF too."""
    state = DemoState(device="cpu", out_dir=tmp_path / "out")
    assert {".bmp", ".tif", ".tiff", ".jpg", ".png", ".webp"} <= set(IMAGE_EXTENSIONS)
    photo = tmp_path / "grey.bmp"
    write_image(tmp_path / "grey.png", np.full((40, 60, 3), 128, np.uint8))
    from PIL import Image

    Image.open(tmp_path / "grey.png").save(photo)
    assert "0 face(s) found" in run_restore(str(photo), "bicubic-x4", state, DemoLimits())[4]
    gif = tmp_path / "anim.gif"
    Image.open(tmp_path / "grey.png").save(gif)
    with pytest.raises(FacesrError, match=r"^anim\.gif: unsupported file type '\.gif'; use \.jpg, "):
        run_restore(str(gif), AUTO, state, DemoLimits())


def test_samples_are_offered_as_examples() -> None:
    assert sample_photos() == SAMPLES and all(p.parent == SAMPLES_DIR for p in SAMPLES)


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
