"""End to end: the demo in headless Chromium (Debian's chromium driven by Playwright).

Starts ``facesr demo`` on a free localhost port in a subprocess, uploads a real photo through the
page's file input, presses Restore, waits for the result, checks that the output image is shown,
decodes, is the input enlarged by the restore's ``upscale`` and differs from it, that the per-face
table is filled, and saves a screenshot (to a temporary folder; ``FACESR_UPDATE_SCREENSHOT=1``
writes ``docs/img/demo.jpg``, a JPEG made by ``facesr.io.write_figure``, so that a test run leaves
tracked files alone). A second test clicks a bundled example photo instead of uploading and picks 4x
in the upscale dropdown. The server must not advise ``share=True``.

Needs: ``pip install 'facesr[demo]' playwright`` and ``apt-get install -y chromium``
(Playwright never downloads its own browser here; ``/usr/bin/chromium`` is used). Skips with the
reason when any of them is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FACESR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = REPO / "docs" / "img" / "demo.jpg"
MAX_UPLOAD_MB = 5

pytestmark = [pytest.mark.slow]


def _missing() -> str | None:
    if find_spec("gradio") is None:
        return "gradio not installed (pip install 'facesr[demo]')"
    if find_spec("playwright") is None:
        return "python playwright not installed (pip install playwright)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo server exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"demo server did not answer on {url} within {timeout:.0f} s")


def sample_photo(shared_data: Path | None) -> Path:
    """A real photo with faces: a bundled sample if there is one, else one from rwmfd."""
    bundled = sorted((REPO / "src" / "facesr" / "samples").glob("*.jpg"))
    if bundled:
        return bundled[0]
    if shared_data is not None:
        cands = sorted((shared_data / "rwmfd").rglob("*.jpg"))
        if cands:
            return cands[0]
    pytest.skip("no sample photo: src/facesr/samples is empty and ../shared/data is absent")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facesr.cli",
                "demo",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-upload",
                f"{MAX_UPLOAD_MB}mb",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, timeout=120)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert "share=True" not in text, text[-3000:]  # facesr offers --share never only


def _image_at(page, src: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    resp = page.request.get(src)
    assert resp.ok, f"GET {src} -> {resp.status}"
    return np.asarray(Image.open(io.BytesIO(resp.body())).convert("RGB"))


def _screenshot_path(tmp_path: Path) -> Path:
    return DOCS_SCREENSHOT if os.environ.get("FACESR_UPDATE_SCREENSHOT") == "1" else tmp_path / "demo.jpg"


def test_upload_restore_download(demo_server: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from facesr.io import write_figure

    shared = request.getfixturevalue("shared_data") if (REPO.parent / "shared" / "data").is_dir() else None
    photo = sample_photo(shared)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(demo_server, wait_until="domcontentloaded")
            page.locator("#upload input[type=file]").set_input_files(str(photo))
            # The upload finishes when the file component shows the file name.
            page.locator(f'#upload [aria-label="{photo.name}"]').wait_for(timeout=60_000)
            page.locator("#run").click()
            page.locator("#status").get_by_text("face(s) restored").wait_for(timeout=240_000)
            after_img = page.locator("#after img").first
            after_img.wait_for(timeout=30_000)
            before_src = page.locator("#before img").first.get_attribute("src")
            after_src = after_img.get_attribute("src")
            assert before_src and after_src
            before = _image_at(page, before_src)
            after = _image_at(page, after_src)
            original = np.asarray(Image.open(photo).convert("RGB"))
            assert before.shape == original.shape
            h, w = before.shape[:2]
            k = after.shape[0] // h  # the restore's upscale (the status line says which)
            assert k >= 1 and after.shape == (h * k, w * k, 3)
            assert f"(x{k})" in page.locator("#status").inner_text() or k == 1
            small = np.asarray(Image.fromarray(after).resize((w, h), Image.Resampling.BOX))
            assert np.abs(small.astype(np.int16) - before.astype(np.int16)).max() > 0, "output equals input"
            # the per-face table: one row per detected face, with its status
            table = page.locator("#report").inner_text()
            assert "restored" in table and "status" in table
            # The result is offered for download.
            page.locator('#download a[download$="-restored.png"]').wait_for(timeout=30_000)
            shot = _screenshot_path(tmp_path)
            shot.parent.mkdir(parents=True, exist_ok=True)
            png = page.screenshot(full_page=True)  # lossless; write_figure makes the JPEG
            write_figure(shot, np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
        finally:
            browser.close()


def test_clicking_an_example_photo_restores_it(demo_server: str) -> None:
    """The bundled samples are listed as examples; one click fills the upload, Restore restores it,
    at the upscale picked in the page's dropdown (4x here; the page starts at the CLI's default)."""
    from playwright.sync_api import sync_playwright

    from facesr.restoration.api import DEFAULT_UPSCALE

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(demo_server, wait_until="domcontentloaded")
            examples = page.locator("#examples")
            examples.get_by_text("rwmfd_0002_0078").first.click()
            page.locator('#upload [aria-label="rwmfd_0002_0078.jpg"]').wait_for(timeout=60_000)
            upscale = page.locator("#upscale input")
            assert upscale.input_value() == f"{DEFAULT_UPSCALE}x (default)"
            upscale.click()
            page.get_by_role("option", name="4x", exact=True).click()
            assert upscale.input_value() == "4x"
            page.locator("#run").click()
            page.locator("#status").get_by_text("rwmfd_0002_0078.jpg").wait_for(timeout=240_000)
            status = page.locator("#status").inner_text()
            assert "face(s) found" in status and "(x4)" in status, status
            before = _image_at(page, page.locator("#before img").first.get_attribute("src") or "")
            after = _image_at(page, page.locator("#after img").first.get_attribute("src") or "")
            assert after.shape == (4 * before.shape[0], 4 * before.shape[1], 3)
            assert "restored" in page.locator("#report").inner_text()  # the per-face table is filled
        finally:
            browser.close()


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose header (with a correct CRC) claims ``width`` x ``height`` pixels."""
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


BAD_UPLOADS = {
    "not-an-image": ("not-a-photo.png", b"this is text, not a PNG\n" * 10, "not a recognised image format"),
    "too-many-pixels": ("huge.png", _png_declaring(100_000, 100_000), "pixel limit"),
    "too-many-bytes": (
        "big.jpg",
        b"\xff" * (MAX_UPLOAD_MB * 1024 * 1024 + 1),
        "exceed the maximum allowed size",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_gives_one_line_message(demo_server: str, tmp_path: Path, case: str) -> None:
    """Bad uploads show a one-line reason in the page (facesr's or the upload limit's), never a traceback."""
    from playwright.sync_api import sync_playwright

    name, data, expected = BAD_UPLOADS[case]
    bad = tmp_path / name
    bad.write_bytes(data)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(demo_server, wait_until="domcontentloaded")
            page.locator("#upload input[type=file]").set_input_files(str(bad))
            if case != "too-many-bytes":  # an over-size upload is refused before it reaches the handler
                page.locator(f'#upload [aria-label="{bad.name}"]').wait_for(timeout=60_000)
                page.locator("#run").click()
            page.get_by_text(expected).first.wait_for(timeout=60_000)
            assert "Traceback" not in page.content()
        finally:
            browser.close()
