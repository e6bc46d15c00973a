"""facesr: super-resolve low-resolution faces that are masked (JDSR-GAN) or genuinely degraded (CR).

The public API is small and lazy: ``import facesr`` loads no network, data or training code.

>>> from facesr import restore, load_model, list_models   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "list_models", "load_model", "restore"]

if TYPE_CHECKING:  # pragma: no cover
    from facesr.restoration.api import restore
    from facesr.zoo import list_models, load_model


def __getattr__(name: str) -> Any:
    if name in ("load_model", "list_models"):
        from facesr import zoo

        return getattr(zoo, name)
    if name == "restore":
        from facesr.restoration.api import restore

        return restore
    raise AttributeError(f"module 'facesr' has no attribute {name!r}")
