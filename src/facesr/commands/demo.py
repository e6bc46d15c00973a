"""`facesr demo`: a local web page to try restoring photos (Gradio, optional extra ``facesr[demo]``).

Only click and the standard library are imported here; gradio and torch load inside the command.
"""

from __future__ import annotations

import click

#: Largest --max-upload accepted: beyond this a single upload is not a photo.
MAX_UPLOAD_LIMIT = 1 << 30


def _parse_size(text: str) -> int:
    """'20mb' / '500kb' / '1048576' -> bytes; inf, nan, zero, negative or > 1 GB are usage errors."""
    import math

    t = text.strip().lower()
    for suffix, mult in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("b", 1)):
        if t.endswith(suffix):
            t, factor = t[: -len(suffix)], mult
            break
    else:
        factor = 1
    try:
        value = float(t) * factor
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size like 20mb") from None
    if not math.isfinite(value) or value < 1:
        raise click.BadParameter(f"{text!r} is not a size like 20mb (at least 1 byte)")
    if value > MAX_UPLOAD_LIMIT:
        raise click.BadParameter(f"{text!r} is larger than the {MAX_UPLOAD_LIMIT >> 20} MB this demo allows")
    return int(value)


@click.command("demo")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (127.0.0.1 keeps the demo on this machine).",
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--share",
    type=click.Choice(["never"]),
    default="never",
    show_default=True,
    help="Public share links are not offered: they need a tunnel binary downloaded at run time.",
)
@click.option("--model", "default_model", default=None, help="Model selected at start (default: automatic).")
@click.option(
    "--upscale",
    type=click.Choice(["1", "2", "4", "8"]),
    default=None,
    help="Upscale selected at start (default 2, as facesr restore); the page offers 1, 2, 4 and 8.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="cpu", show_default=True)
@click.option(
    "--max-upload",
    default="20mb",
    show_default=True,
    callback=lambda ctx, param, value: _parse_size(value),
    help="Largest upload accepted (e.g. 20mb, 500kb; at most 1gb).",
)
@click.option(
    "--max-megapixels",
    default=16.0,
    show_default=True,
    type=click.FloatRange(0.01, 64.0),
    help="Largest image accepted, in millions of pixels.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Photos restored at the same time; more requests wait in the queue.",
)
@click.option(
    "--queue-size",
    default=32,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Requests allowed to wait; beyond that users are told the queue is full.",
)
def demo_cmd(
    host: str,
    port: int,
    share: str,
    default_model: str | None,
    upscale: str | None,
    device: str,
    max_upload: int,
    max_megapixels: float,
    concurrency: int,
    queue_size: int,
) -> None:
    """Serve a local web page: upload a photo, pick a model and upscale, see before/after and download the result."""
    from importlib.util import find_spec

    from facesr.errors import FacesrError

    if find_spec("gradio") is None:
        raise FacesrError("the demo needs gradio: pip install 'facesr[demo]'")
    from facesr.demo.app import AUTO, DemoLimits, launch

    limits = DemoLimits(
        max_upload_bytes=max_upload,
        max_pixels=int(max_megapixels * 1e6),
        concurrency=concurrency,
        queue_size=queue_size,
    )
    launch(
        host=host,
        port=port,
        device=device,
        limits=limits,
        default_model=default_model or AUTO,
        default_upscale=int(upscale) if upscale else None,
    )


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
    group.add_command(demo_cmd)
