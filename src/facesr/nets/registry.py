"""The architecture registry: name -> builder. A leaf: it imports nothing from facesr but the errors.

Networks register themselves here (``@register_arch("jdsr")``) and import nothing else of the model
zoo, so building a network never loads weights I/O; :mod:`facesr.zoo` imports the network modules
(``ARCH_MODULES``) and builds from this table. Registering a name twice with a different builder is an
error: the second would silently replace the first, and a weights file naming that architecture would
build the wrong network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facesr.errors import ModelError

Builder = Callable[..., Any]

_ARCHS: dict[str, Builder] = {}


def register_arch(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(**args) -> nn.Module`` under ``name`` (a duplicate name is an error).

    Registering the *same* builder again is allowed (a module imported twice under pytest, a fixture that
    runs per test); a different builder under a taken name raises :class:`facesr.errors.ModelError`.
    """

    def deco(fn: Builder) -> Builder:
        old = _ARCHS.get(name)
        if old is not None and old is not fn:
            where = f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)!s}"
            raise ModelError(f"architecture {name!r} is already registered (by {where})")
        _ARCHS[name] = fn
        return fn

    return deco


def get_builder(name: str) -> Builder | None:
    """The builder registered as ``name``, or None."""
    return _ARCHS.get(name)


def arch_names() -> list[str]:
    """Every registered architecture name, sorted."""
    return sorted(_ARCHS)
