"""The ``facesr`` command: one entry point, one sub-command per job.

Sub-commands live in :mod:`facesr.commands` (one module per area, each with ``register(group)``).
Those modules import only click and the standard library at import time, so ``facesr --help``
is fast; each command imports the heavy code (torch, data, training) inside its body.

User errors (:class:`facesr.errors.FacesrError`) print one line ``facesr: error: ...`` and exit
with status 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from facesr import __version__
from facesr.commands import batch as _batch
from facesr.commands import data as _data
from facesr.commands import demo as _demo
from facesr.commands import eval as _eval
from facesr.commands import export as _export
from facesr.commands import genuine as _genuine
from facesr.commands import gpu as _gpu
from facesr.commands import restore as _restore
from facesr.commands import train as _train
from facesr.commands.helpfmt import FullHelpGroup
from facesr.errors import FacesrError


@click.group(
    cls=FullHelpGroup,  # every command's whole summary in --help, not click's 45-character cut
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="facesr")
def cli() -> None:
    """Restore low-resolution masked or degraded faces (JDSR-GAN, Characteristic Regularisation).

    Start with `facesr restore photo.jpg -o out/` (bundled models, nothing to prepare) and
    `facesr models`. Scoring on the benchmarks needs, in order: `facesr prepare utkface`,
    `facesr benchmarks build`, then `facesr eval --model jdsr-fast-x4 --benchmark utk-mask-x4`.
    `facesr COMMAND --help` explains each command.
    """


for _module in (_restore, _batch, _data, _train, _eval, _genuine, _export, _demo, _gpu):
    _module.register(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (FacesrError -> one line on stderr, status 2)."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="facesr", standalone_mode=False
        )
    except FacesrError as exc:
        print(f"facesr: error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.Abort:
        print("facesr: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        print("facesr: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
