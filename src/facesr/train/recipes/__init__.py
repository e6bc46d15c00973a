"""The recipe registry: what ``recipe.name`` may be, and the one place the training loop asks for a recipe.

A recipe decides what trains on what: its networks, its batcher (``make_batcher``), its losses and its
config sections. Each recipe module registers its classes with :func:`register_recipe`; the loop
(:mod:`facesr.train.loop`) and the config (:mod:`facesr.train.config`) only call :func:`recipe_class`,
:func:`build_recipe`, :func:`make_batcher` and :func:`validate_recipe_config`, so they name no recipe.
The modules of :data:`RECIPE_MODULES` are imported on the first lookup (as the zoo does for networks), so
importing the loop or the config imports no network or loss code.

A recipe class provides (see :class:`facesr.train.recipes.jdsr.Recipe` and
:class:`facesr.train.recipes.cr.CRRecipe`):

* ``make_batcher(cfg, data_device, seed) -> (batcher, preview_batch, description)`` (classmethod); the
  batcher has ``next_batch()``, ``state_dict()`` and ``load_state_dict()``;
* ``loss_weights``: the pydantic class that validates the ``loss`` section;
* ``sections``: the extra config sections it owns (e.g. ``{"cr": CRSection}``), validated here;
* ``check_config(cfg)`` (classmethod): recipe-specific rules, raising ``ValueError`` with the message;
* the instance contract the loop uses: ``nets``, ``generator``, ``trainable()``, ``sync_manually``,
  ``bind()``, ``step()``, ``preview()``, ``export()``, ``headline``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from facesr.errors import ConfigError

#: Modules imported (lazily, on the first lookup) so that their ``@register_recipe`` classes exist.
RECIPE_MODULES = ("facesr.train.recipes.jdsr", "facesr.train.recipes.cr")
#: Config sections that belong to one recipe family (TrainConfig fields validated by the recipe).
OWNED_SECTIONS = ("cr",)

_RECIPES: dict[str, type] = {}


def register_recipe(*names: str) -> Callable[[type], type]:
    """Class decorator: register a recipe under ``names``; a name registered twice is an error."""

    def deco(cls: type) -> type:
        for name in names:
            if name in _RECIPES and _RECIPES[name] is not cls:
                raise ValueError(
                    f"recipe {name!r} is registered twice ({_RECIPES[name].__qualname__}, {cls.__qualname__})"
                )
            _RECIPES[name] = cls
        return cls

    return deco


def _import_recipes() -> None:
    for mod in RECIPE_MODULES:
        importlib.import_module(mod)


def recipe_names() -> list[str]:
    """Every registered recipe name, sorted."""
    _import_recipes()
    return sorted(_RECIPES)


def recipe_class(name: str, source: str = "config") -> type:
    """The class registered as ``name``; an unknown name is a one-line ConfigError listing the known ones."""
    if name not in _RECIPES:
        _import_recipes()
    if name not in _RECIPES:
        raise ConfigError(
            f"{source}: recipe.name: unknown recipe {name!r}; known: {', '.join(sorted(_RECIPES))}"
        )
    return _RECIPES[name]


def build_recipe(cfg: Any, ctx: Any) -> Any:
    """The recipe named by ``cfg.recipe.name``, built for the run context ``ctx``."""
    return recipe_class(cfg.recipe.name)(cfg, ctx)


def make_batcher(cfg: Any, data_device: Any, seed: int) -> tuple[Any, Any, str]:
    """The batcher of the recipe named by ``cfg.recipe.name``, its fixed preview batch and a description."""
    return recipe_class(cfg.recipe.name).make_batcher(cfg, data_device, seed)


def _validated(cls: type, data: dict[str, Any], section: str, source: str) -> dict[str, Any]:
    """``data`` validated by ``cls`` with defaults filled in, or a one-line ConfigError naming the key."""
    try:
        return cls.model_validate(data).model_dump(mode="json")  # type: ignore[attr-defined]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join([section, *(str(p) for p in err["loc"])])
        what = "unknown key (misspelt?)" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{source}: {loc}: {what}") from None


def validate_recipe_config(cfg: Any, source: str) -> Any:
    """Check the parts of ``cfg`` that its recipe owns and fill in their defaults (one-line errors).

    The ``loss`` section is checked against the recipe's ``loss_weights``, each section the recipe owns
    against its class, an owned section of another recipe family is an error, and the recipe's own
    ``check_config`` rules run last.
    """
    cls = recipe_class(cfg.recipe.name, source)
    owned: dict[str, type] = dict(getattr(cls, "sections", {}))
    for section in OWNED_SECTIONS:
        if getattr(cfg, section) and section not in owned:
            users = sorted(n for n in recipe_names() if section in getattr(_RECIPES[n], "sections", {}))
            raise ConfigError(f"{source}: the {section} section is only used by recipes {users}")
    for section, model in owned.items():
        setattr(cfg, section, _validated(model, getattr(cfg, section), section, source))
    cfg.loss = _validated(cls.loss_weights, cfg.loss, "loss", source)
    try:
        cls.check_config(cfg)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg
