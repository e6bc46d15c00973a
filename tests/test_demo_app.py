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
    upscale_choices,
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


def test_upscale_is_the_clis_choice(tmp_path: Path) -> None:
    """Issue 16 item 7: the demo takes ``--upscale`` 1, 2, 4, 8 (default the CLI's) and shows that size."""
    from facesr.restoration.api import DEFAULT_UPSCALE, UPSCALES

    assert upscale_choices() == list(UPSCALES) == [1, 2, 4, 8]
    state = DemoState(device="cpu", out_dir=tmp_path / "out")
    photo = tmp_path / "grey.png"
    write_image(photo, np.full((30, 40, 3), 90, np.uint8))
    for asked, n in ((None, DEFAULT_UPSCALE), (1, 1), ("4", 4), (8, 8), (2.0, 2)):
        before, after, _g, out, status, _t = run_restore(str(photo), "bicubic-x4", state, DemoLimits(), asked)
        assert before.shape == (30, 40, 3) and after.shape == (30 * n, 40 * n, 3), asked
        assert read_image(out).shape == after.shape
        assert (f"-> {40 * n}x{30 * n} px (x{n})" in status) == (n > 1), status
    # the output pixel limit lowers the upscale with a note, as `facesr restore` does
    _b, after, _g, _o, status, _t = run_restore(str(photo), AUTO, state, DemoLimits(max_pixels=20_000), 8)
    assert after.shape == (120, 160, 3) and "upscale lowered from 8 to 4" in status
    for bad in (3, "16", "x", 2.5, -1):
        with pytest.raises(FacesrError, match=r"^unknown upscale .*; choose one of 1, 2, 4, 8$"):
            run_restore(str(photo), AUTO, state, DemoLimits(), bad)


def test_page_offers_the_upscale_dropdown() -> None:
    """The page has an upscale dropdown (1/2/4/8, the CLI default selected) wired into Restore."""
    pytest.importorskip("gradio")
    from facesr.demo.app import build_app
    from facesr.restoration.api import DEFAULT_UPSCALE

    app = build_app(device="cpu")
    try:
        comps = {c.get("props", {}).get("elem_id"): c for c in app.config["components"]}
        drop = comps["upscale"]["props"]
        assert [c[1] for c in drop["choices"]] == [1, 2, 4, 8] and drop["value"] == DEFAULT_UPSCALE
        assert f"{DEFAULT_UPSCALE}x (default)" in [c[0] for c in drop["choices"]]
        dep = next(d for d in app.config["dependencies"] if d.get("api_name") == "restore")
        ids = {c["id"]: c.get("props", {}).get("elem_id") for c in app.config["components"]}
        assert [ids[i] for i in dep["inputs"]] == ["upload", "model", "upscale"]
        four = build_app(device="cpu", default_upscale=4)  # the start value of `facesr demo --upscale 4`
        assert [
            c["props"]["value"] for c in four.config["components"] if c["props"].get("elem_id") == "upscale"
        ] == [4]
        four.close()
        with pytest.raises(FacesrError, match="unknown upscale"):
            build_app(device="cpu", default_upscale=3)
    finally:
        app.close()
