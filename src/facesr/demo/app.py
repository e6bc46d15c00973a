"""The Gradio app behind ``facesr demo``.

Why it is built this way:

* **Uploads arrive as files, not decoded images.** A ``gr.Image`` input would let Gradio decode
  the upload with Pillow before facesr sees it, bypassing the pixel limit (a 20 kB PNG can
  declare 100,000 x 100,000 pixels). The upload is a ``gr.File`` and is decoded only by
  :func:`facesr.io.read_image`, with this demo's own byte and pixel limits.
* **Every user error is a one-line message in the page** (``gr.Error``), never a traceback: the
  :class:`~facesr.errors.FacesrError` text is shown as it is.
* **Bounded concurrency.** Restoring is CPU/GPU bound, so the queue runs at most
  ``concurrency`` jobs at once and holds at most ``queue_size`` waiting ones; more users wait
  in line (or are told the queue is full) instead of crashing the server by exhausting memory.
* **Models are loaded once** and shared between requests (one lock per load, none per call).
* **Results are written atomically** into a private folder that is pruned by age, so a
  long-running demo does not fill the disk.
* **The page gets files, never arrays.** Gradio saves an array it is handed under a name made from
  a hash of its pixels, written in place: two requests with the same photo write the same file
  while the first one's browser may still be reading it (a truncated image, 1 of 80 concurrent
  requests in the probe of issue 17). The handler writes before, after and every face crop
  atomically into the request's own folder and hands Gradio those paths, which it copies into
  its cache atomically (:func:`page_files`).
* **Bounded output**: the restored photo may be at most ``max_pixels`` too (the upscale is lowered
  with a note otherwise), so one request's memory is bounded by the demo's own pixel limit.
* **One list of accepted files**: the upload takes exactly :data:`facesr.io.IMAGE_EXTENSIONS`,
  the list ``facesr restore`` takes, and the page names them from that list.
* **The same choices as ``facesr restore``**: the model and ``--upscale`` (1, 2, 4, 8; the default
  is the CLI's, :data:`facesr.restoration.api.DEFAULT_UPSCALE`), both checked again on the server
  because the ``/restore`` endpoint can be called without the page.
* **What the restore result exposes is shown**: the photo at its output size (``upscale`` times
  the input), a per-face table (status, model, mask, reason: :func:`face_report`) and the face
  crops; the bundled sample photos are offered as examples to click.
* **No public link**: Gradio is launched quiet, so it does not advise ``share=True``, which
  facesr never offers (``--share never``); facesr prints the local address itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesr.errors import FacesrError

#: The dropdown entry that lets the restore pipeline choose the model per face.
AUTO = "auto (by face size)"

#: The bundled sample photos (package data), offered as clickable examples in the page.
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
#: Display height of the Before / After images (px); the page's CSS scales small photos up to it.
IMAGE_HEIGHT = 520
#: Make small photos fill their pane (a 256 px sample would otherwise sit small in the middle).
CSS = "#before img, #after img { width: 100%; height: 100%; object-fit: contain; }"
#: Columns of the per-face table (:func:`face_report`).
REPORT_HEADERS = ["face", "status", "box x, y, w, h (px)", "face px", "model", "mask", "reason"]

#: Attribute names a per-face result may use for the face before / after restoring. The restore
#: pipeline owns that class; reading it by duck typing keeps the demo decoupled from its layout.
_BEFORE_KEYS = ("before", "crop", "lr", "input", "aligned", "face_in")
_AFTER_KEYS = ("after", "restored", "sr", "output", "face_out")


@dataclass(frozen=True)
class DemoLimits:
    """What one request may ask of the server."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16_000_000
    concurrency: int = 1
    queue_size: int = 32
    keep_results_s: float = 3600.0


@dataclass
class DemoState:
    """Per-server state: the device and the folder results are written to.

    Models are not cached here: :func:`facesr.restoration.api.restore` caches models and the detector
    per process, so every request after the first reuses them.
    """

    device: str = "cpu"
    out_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facesr-demo-")))

    def prune(self, max_age_s: float) -> None:
        """Delete result folders older than ``max_age_s`` (best effort)."""
        cutoff = time.time() - max_age_s
        if not self.out_dir.is_dir():
            return
        for folder in self.out_dir.iterdir():
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder)
            except OSError:
                pass


def model_choices() -> list[str]:
    """Dropdown entries: automatic choice first, then every zoo model (bicubic baselines included)."""
    from facesr.zoo import list_models

    return [AUTO, *[m.name for m in list_models()]]


def _as_uint8_rgb(img: Any) -> np.ndarray | None:
    """Best-effort conversion of a face image (array, tensor or PIL image) to HxWx3 uint8."""
    if img is None:
        return None
    if hasattr(img, "detach"):  # torch tensor, CHW or NCHW in [0, 1]
        from facesr.pixels import quantise_half_up

        t = img.detach().float().cpu()
        if t.ndim == 4:
            t = t[0]
        if t.ndim == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        img = quantise_half_up(t).numpy()
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        return None
    return arr[..., :3]


def _pick(obj: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        val = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
        if val is not None:
            return val
    return None


def face_gallery(faces: Sequence[Any]) -> list[tuple[np.ndarray, str]]:
    """Gallery items: for each face, its crop before and after restoring (with captions)."""
    items: list[tuple[np.ndarray, str]] = []
    for k, face in enumerate(faces, start=1):
        i = _face_number(face, k)  # the same number as in the per-face table
        before = _as_uint8_rgb(_pick(face, _BEFORE_KEYS))
        after = _as_uint8_rgb(_pick(face, _AFTER_KEYS))
        model = _pick(face, ("model", "model_name"))
        suffix = f" ({model})" if isinstance(model, str) else ""
        if before is not None:
            items.append((before, f"{i}: before"))
        if after is not None:
            items.append((after, f"{i}: after{suffix}"))
    return items


def _face_number(face: Any, default: int) -> int:
    """1-based number of a face in detection order (its ``face.index`` + 1), as in report.json."""
    index = getattr(getattr(face, "face", face), "index", None)
    return int(index) + 1 if isinstance(index, int) else default


def sample_photos() -> list[Path]:
    """The bundled sample photos (empty when the package was installed without them)."""
    from facesr.io import IMAGE_EXTENSIONS

    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _face_json(face: Any) -> dict[str, Any]:
    """A per-face result as the report's JSON (``to_json``), else from its attributes."""
    if hasattr(face, "to_json"):
        return dict(face.to_json())
    inner = getattr(face, "face", face)
    return {
        "index": getattr(inner, "index", None),
        "box": list(getattr(inner, "box", []) or []),
        "status": getattr(face, "status", ""),
        "reason": getattr(face, "reason", ""),
        "model": getattr(face, "model", ""),
        "mask": getattr(face, "mask", None),
    }


def face_report(faces: Sequence[Any]) -> list[list[Any]]:
    """One table row per detected face (restored, kept or skipped), columns :data:`REPORT_HEADERS`."""
    rows = []
    for i, face in enumerate(faces, start=1):
        j = _face_json(face)
        box = [float(v) for v in j.get("box") or []]
        where = (
            f"{box[0]:.0f}, {box[1]:.0f}, {box[2] - box[0]:.0f}, {box[3] - box[1]:.0f}"
            if len(box) == 4
            else ""
        )
        native = j.get("native_px")
        mask = j.get("mask")
        rows.append(
            [
                _face_number(face, i),
                str(j.get("status", "")),
                where,
                f"{native:.0f}" if isinstance(native, (int, float)) and native else "",
                str(j.get("model") or ""),
                "" if mask is None else ("yes" if mask else "no"),
                str(j.get("reason") or ""),
            ]
        )
    return rows


def upscale_choices() -> list[int]:
    """Dropdown entries for the upscale: exactly the values ``facesr restore --upscale`` takes."""
    from facesr.restoration.api import UPSCALES

    return list(UPSCALES)


def upscale_label(n: int) -> str:
    """``2x (default)`` for the CLI's default, else ``4x``."""
    from facesr.restoration.api import DEFAULT_UPSCALE

    return f"{n}x" + (" (default)" if n == DEFAULT_UPSCALE else "")


def _upscale_value(upscale: Any) -> int:
    """The upscale the page (an int) or an API caller (int or its text) asked for; else FacesrError."""
    from facesr.restoration.api import DEFAULT_UPSCALE

    if upscale is None or upscale == "":
        return DEFAULT_UPSCALE
    text = str(upscale).strip().lower().removeprefix("x").removesuffix("x")
    if isinstance(upscale, float) and upscale.is_integer():
        text = str(int(upscale))
    n = int(text) if text.isdigit() else 0
    if n not in upscale_choices():
        raise FacesrError(
            f"unknown upscale {upscale!r}; choose one of {', '.join(map(str, upscale_choices()))}"
        )
    return n


def run_restore(
    path: str | None,
    model_name: str,
    state: DemoState,
    limits: DemoLimits,
    upscale: Any = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, str]], str, str, list[list[Any]]]:
    """Restore one uploaded photo; raise FacesrError with a one-line reason for bad input.

    ``upscale``: 1, 2, 4 or 8 (None: the CLI's default). Returns (before, after, face gallery,
    path of the result PNG, status line, per-face table).
    """
    from facesr.io import IMAGE_EXTENSIONS, read_image, write_image
    from facesr.restoration.api import restore

    if not path:
        raise FacesrError("upload a photo first")
    # Only listed models: the API endpoint must not become a way to load arbitrary files on the server.
    if model_name not in model_choices():
        raise FacesrError(f"unknown model {model_name!r}; choose one from the list")
    factor = _upscale_value(upscale)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise FacesrError("the upload could not be read; try again") from None
    if size > limits.max_upload_bytes:
        raise FacesrError(
            f"file is {size / (1 << 20):.1f} MB; this demo accepts up to "
            f"{limits.max_upload_bytes / (1 << 20):.0f} MB"
        )
    name = Path(path).name
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:  # the same files `facesr restore` takes, and no others
        raise FacesrError(
            f"{name}: unsupported file type {suffix or '(none)'!r}; use {', '.join(IMAGE_EXTENSIONS)}"
        )
    try:
        image = read_image(path, max_pixels=limits.max_pixels)
    except FacesrError as exc:
        # read_image names the temporary upload path; show the user's file name instead.
        raise FacesrError(str(exc).replace(str(path), name)) from None
    t0 = time.perf_counter()
    result = restore(
        image,
        model=None if model_name == AUTO else model_name,
        device=state.device,
        upscale=factor,
        max_pixels=limits.max_pixels,
        max_output_pixels=limits.max_pixels,
    )
    elapsed = time.perf_counter() - t0
    after = _as_uint8_rgb(result.image)
    if after is None:
        raise FacesrError("the restore pipeline returned no image")
    faces = list(getattr(result, "faces", []) or [])
    restored = [f for f in faces if getattr(f, "status", "restored") == "restored"]
    state.prune(limits.keep_results_s)
    out = state.out_dir / uuid.uuid4().hex / f"{Path(name).stem[:60] or 'photo'}-restored.png"
    write_image(out, after)
    size = f"{image.shape[1]}x{image.shape[0]} px"
    if after.shape[:2] != image.shape[:2]:
        size += f" -> {after.shape[1]}x{after.shape[0]} px (x{getattr(result, 'upscale', '?')})"
    status = (
        f"{name}: {size}, {len(faces)} face(s) found, "
        f"{len(restored)} face(s) restored in {elapsed:.2f} s ({model_name})."
    )
    if not restored:
        status += " No face could be restored, so the output is the input" + (
            ", enlarged." if after.shape[:2] != image.shape[:2] else "."
        )
    for note in [*(getattr(result, "notes", []) or []), *(getattr(result, "warnings", []) or [])]:
        status += f"\n\nNote: {note}"
    return image, after, face_gallery(restored), str(out), status, face_report(faces)


def release_memory() -> None:
    """Give the heap memory freed by a request back to the system (glibc ``malloc_trim``; a no-op elsewhere).

    Why: Gradio runs requests on a pool of threads, and glibc keeps what each thread's arena freed
    (and raises its mmap threshold after large frees), so the server's resident size climbed by
    ~400 MB over 80 small requests and stayed there (benchmarks/fuzz/demo_load.py, issue 17).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def page_files(
    result: tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, str]], str, str, list[list[Any]]],
) -> tuple[str, str, list[tuple[str, str]], str, str, list[list[Any]]]:
    """:func:`run_restore`'s answer with every image as a file in the request's own folder.

    The after image is the result PNG itself; before and the face crops are written beside it
    (atomically). Why: see the module docstring (Gradio's in-place cache writes of arrays).
    """
    from facesr.io import write_image

    before, _after, gallery, out, status, table = result
    folder = Path(out).parent
    before_path = folder / "before.png"
    write_image(before_path, before)
    crops = []
    for k, (img, caption) in enumerate(gallery):
        path = folder / f"face-{k:03d}.png"
        write_image(path, img)
        crops.append((str(path), caption))
    return str(before_path), out, crops, out, status, table


def build_app(
    *,
    device: str = "cpu",
    limits: DemoLimits | None = None,
    default_model: str = AUTO,
    default_upscale: int | None = None,
) -> Any:
    """Build (but do not launch) the Blocks app. Imports gradio."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    limits = limits or DemoLimits()
    state = DemoState(device=device)
    choices = model_choices()
    if default_model not in choices:
        raise FacesrError(f"unknown model {default_model!r}; choose one of: {', '.join(choices)}")
    start_upscale = _upscale_value(default_upscale)

    def handler(path: str | None, model_name: str, upscale: Any = None) -> tuple[Any, ...]:
        try:
            return page_files(run_restore(path, model_name, state, limits, upscale))
        except FacesrError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        finally:
            release_memory()

    from facesr.io import IMAGE_EXTENSIONS

    mb = limits.max_upload_bytes / (1 << 20)
    with gr.Blocks(title="facesr demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# facesr: restore small faces\n"
            f"Upload a photo ({', '.join(IMAGE_EXTENSIONS)}; up to {mb:.0f} MB and "
            f"{limits.max_pixels / 1e6:.0f} megapixels) or click an example, then press Restore. Every "
            "face found is restored and pasted back into the photo, enlarged by the chosen upscale. Processing happens on this "
            "machine; nothing is sent anywhere else."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="Photo", file_types=list(IMAGE_EXTENSIONS), type="filepath", elem_id="upload"
                )
                samples = sample_photos()
                if samples:
                    gr.Examples(
                        examples=[[str(p)] for p in samples],
                        inputs=[upload],
                        label="Example photos (bundled crowd shots with masked faces)",
                        example_labels=[p.stem for p in samples],
                        elem_id="examples",
                    )
            with gr.Column():
                model = gr.Dropdown(choices=choices, value=default_model, label="Model", elem_id="model")
                upscale = gr.Dropdown(
                    choices=[(upscale_label(n), n) for n in upscale_choices()],
                    value=start_upscale,
                    label="Upscale: the result is N times larger (as facesr restore --upscale)",
                    elem_id="upscale",
                )
                run = gr.Button("Restore", variant="primary", elem_id="run")
                status = gr.Markdown(elem_id="status")
        with gr.Row(equal_height=True):
            before = gr.Image(
                label="Before", format="png", interactive=False, height=IMAGE_HEIGHT, elem_id="before"
            )
            after = gr.Image(
                label="After", format="png", interactive=False, height=IMAGE_HEIGHT, elem_id="after"
            )
        report = gr.Dataframe(
            headers=REPORT_HEADERS,
            label="Faces found (one row per face; the restored ones are shown below)",
            interactive=False,
            wrap=True,
            elem_id="report",
        )
        faces = gr.Gallery(
            label="Restored faces (before / after, numbered as in the table)",
            columns=8,
            height=240,
            object_fit="contain",
            elem_id="faces",
        )
        download = gr.File(label="Download the result", interactive=False, elem_id="download")
        run.click(
            handler,
            inputs=[upload, model, upscale],
            outputs=[before, after, faces, download, status, report],
            api_name="restore",
            concurrency_limit=limits.concurrency,
        )
    app.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    app.facesr_state = state  # type: ignore[attr-defined]  # for launch(allowed_paths=...)
    return app


def launch(
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
    limits: DemoLimits | None = None,
    default_model: str = AUTO,
    default_upscale: int | None = None,
    quiet: bool = False,
) -> None:
    """Build and serve the demo until interrupted (no public share link, ever).

    Uploads go to a private temporary folder (``GRADIO_TEMP_DIR``) and results to another; both are
    removed when the server stops, on Ctrl+C (SIGINT) and on SIGTERM alike: both are turned into the
    KeyboardInterrupt that Gradio's serving loop already handles (SIGINT explicitly, as a background
    process inherits it ignored). Unless ``quiet``, one
    line on stderr says where the page is (Gradio's own start-up lines are silenced).
    """
    import signal
    import sys
    import threading

    limits = limits or DemoLimits()
    uploads = Path(tempfile.mkdtemp(prefix="facesr-demo-uploads-"))
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    app = build_app(
        device=device, limits=limits, default_model=default_model, default_upscale=default_upscale
    )
    folders = (uploads, app.facesr_state.out_dir)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def _stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        # SIGINT too: a process started in the background by a shell (``facesr demo &``, nohup, a CI
        # runner) inherits SIGINT as *ignored*, and then ``kill -INT`` left the server running for good
        # (the signal test hung in a CI run started that way). The demo says Ctrl+C stops it; it does.
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _stop)
    if not quiet:
        print(
            f"facesr demo: http://{host}:{port} (no public link: --share never; Ctrl+C to stop)",
            file=sys.stderr,
            flush=True,
        )
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            max_file_size=limits.max_upload_bytes,
            # the results, and the bundled samples that the examples show (package data, read-only)
            allowed_paths=[str(app.facesr_state.out_dir), str(SAMPLES_DIR)],
            show_error=True,
            quiet=True,  # Gradio's own lines advise share=True, which facesr never offers
            css=CSS,
            footer_links=["api"],
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
        )
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        # e.g. the port is taken, or Gradio's own check that it can reach the server timed out (an
        # overloaded machine): one line, never Gradio's advice to share a public link.
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        if "share=True" in reason:
            reason = f"the server at http://{host}:{port} did not answer Gradio's start-up check in time"
        raise FacesrError(f"the demo could not start: {reason}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            app.close()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
