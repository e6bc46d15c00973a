"""Issue 17, demo: option limits, concurrent first requests, one load per model, clean-up on signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from facesr.cli import main


@pytest.mark.parametrize("value", ["1e400mb", "nanmb", "infkb", "-5mb", "0", "2gb", "abc"])
def test_bad_max_upload_is_a_usage_error(value: str, capsys) -> None:
    rc = main(["demo", "--max-upload", value])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--max-upload" in err


def test_concurrent_quiet_output_restores_stdout() -> None:
    """Two threads silencing fds 1/2 at once must leave them pointing where they did before."""
    from facesr.restoration.onnx import _quiet_output

    before = [os.fstat(fd).st_ino for fd in (1, 2)]
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        with _quiet_output():
            time.sleep(0.05)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [os.fstat(fd).st_ino for fd in (1, 2)] == before


def test_first_requests_at_once_load_a_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from facesr import zoo
    from facesr.restoration import api

    calls: list[str] = []

    def slow_load(name, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        time.sleep(0.2)
        return zoo.Restorer(zoo.Bicubic(4), name=name, scale=4)

    monkeypatch.setattr(zoo, "load_model", slow_load)
    api._cached_model.cache_clear()
    try:
        results: list[object] = []
        threads = [
            threading.Thread(target=lambda: results.append(api._cached_model("m-h17", 4, "cpu", "torch")))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls == ["m-h17"] and len({id(r) for r in results}) == 1
    finally:
        api._cached_model.cache_clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_removes_its_temporary_folders_on_signals(tmp_path: Path, sig: signal.Signals) -> None:
    pytest.importorskip("gradio")
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "facesr.cli", "demo", "--port", str(port), "--model", "bicubic-x4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                time.sleep(0.5)
        made = sorted(p.name for p in tmp_path.glob("facesr-demo-*"))
        assert len(made) == 2, made  # results and uploads
        proc.send_signal(sig)
        # 13 s on an idle 2-core machine; over 60 s once in CI beside the Ray cluster test: a bound, not a speed
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in err, err[-2000:]
    assert not list(tmp_path.glob("facesr-demo-*"))


def test_page_gets_atomically_written_files_of_its_own_request(tmp_path: Path) -> None:
    """Gradio writes arrays it is handed to a pixel-hash path in place, so two requests with the
    same photo could rewrite the file a browser is reading (the truncated response of 1 in 80):
    the handler hands it files written atomically into the request's own folder instead."""
    import numpy as np

    from facesr.demo.app import AUTO, DemoLimits, DemoState, page_files, run_restore
    from facesr.io import read_image

    photo = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples" / "rwmfd_0002_0078.jpg"
    state = DemoState(out_dir=tmp_path / "results")
    answers = [run_restore(str(photo), AUTO, state, DemoLimits()) for _ in range(2)]
    pages = [page_files(a) for a in answers]
    for (before, after, gallery, out, _s, _t), page in zip(answers, pages, strict=True):
        b, a, crops, download = page[0], page[1], page[2], page[3]
        assert all(isinstance(p, str) for p in (b, a, download, *(c for c, _ in crops)))
        folder = Path(out).parent
        assert {Path(p).parent for p in (b, a, *(c for c, _ in crops))} == {folder}
        assert np.array_equal(read_image(b), before) and np.array_equal(read_image(a), after)
        assert all(
            np.array_equal(read_image(c), img) for (c, _), (img, _) in zip(crops, gallery, strict=True)
        )
    assert Path(pages[0][0]).parent != Path(pages[1][0]).parent  # same photo, separate files
    assert not list((tmp_path / "results").rglob("*.tmp"))


def test_demo_output_is_bounded_by_its_pixel_limit(tmp_path: Path) -> None:
    """The demo's upscale is lowered so the result stays within --max-megapixels (the memory bound)."""
    import numpy as np
    from PIL import Image

    from facesr.demo.app import DemoLimits, DemoState, run_restore

    src = tmp_path / "flat.png"
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(src)
    _b, after, _g, _o, status, _t = run_restore(
        str(src), "bicubic-x4", DemoState(out_dir=tmp_path / "r"), DemoLimits(max_pixels=200_000)
    )
    assert after.shape[0] * after.shape[1] <= 200_000 and "upscale lowered" in status
