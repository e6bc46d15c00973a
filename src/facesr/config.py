"""Typed, validated configs: YAML files in ``configs/`` plus ``key.sub=value`` overrides.

Each recipe defines its config as pydantic models derived from :class:`Strict`, which forbids
unknown keys, so a misspelt key is an error that names it (BasicSR silently ignores them).
Overrides from the command line are parsed with ``yaml.safe_load`` (so ``optim.lr=2e-4`` gives a
float and ``model.size=lite`` a string) and are never passed to ``exec`` or ``eval``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from facesr.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment.

    ``inf`` and ``nan`` are refused in every float field: ``optim.lr=.inf`` passes ``gt=0`` and would
    train to all-non-finite weights without a single error.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


#: Largest config file read (bytes); real configs are a few kB.
MAX_YAML_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``).

    Why: aliases let a 9-line file describe a billion-element tree ("billion laughs"); PyYAML
    builds it with shared references, but validating or copying it expands it into gigabytes.
    No facesr config needs them, so the first alias is a one-line error, before anything grows.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"YAML aliases (*{event.anchor}) are not allowed in configs "
                f"(line {event.start_mark.line + 1}); write the value out"
            )
        return super().compose_node(parent, index)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases (see :class:`_NoAliasLoader`); YAML errors propagate."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (["a", "b", "c"], parsed value) using YAML scalars only."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts or any(not p.replace("_", "").replace("-", "").isalnum() for p in parts):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        value = safe_load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value ({exc.__class__.__name__})") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.sub=value`` override set (nested dicts created)."""
    out = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing files and syntax errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes is too large for a config file")
    try:
        data = safe_load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming the first offending key, e.g. ``optim.lrr: unknown key``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<root>"
    if err["type"] == "extra_forbidden":
        what = "unknown key (misspelt?)"
    elif err["type"] == "missing":
        what = "required key is missing"
    else:
        what = err["msg"]
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {what}{more}"


def build(model: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Validate ``data`` against ``model`` and raise a one-line ConfigError on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load(model: type[T], path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> T:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    return build(model, data, str(path) if path is not None else "config")


def dump(cfg: BaseModel) -> str:
    """Serialise a config to YAML (stable key order) for checkpoints and model cards."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
