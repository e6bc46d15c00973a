"""``model.init_from``: start a new run from earlier weights, and carry their training totals on.

Generic (any recipe whose generator is a zoo architecture may warm-start), so it is neither in the loop
nor in one recipe module: the loop reads :func:`prior_totals` for the card, recipes call
:func:`warm_start` and :func:`load_part`.
"""

from __future__ import annotations

import torch
from torch import nn

from facesr.errors import ConfigError, ModelError
from facesr.train.config import TrainConfig


def _read_safetensors(path: str, what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as fh:
            return dict(fh.metadata() or {}), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"{what}: {path!r} is not a readable safetensors file ({exc})") from None


def load_part(net: nn.Module, path: str, what: str) -> dict[str, str]:
    """Load every tensor of a safetensors file into ``net`` (strict, dtype-converted); returns its metadata."""
    meta, state = _read_safetensors(path, what)
    _load_state(net, state, path, what)
    return meta


def _adapt_layout(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Earlier layouts that a warm start may still come from: a ``transpose`` CNN_D into a ``bilinear`` one."""
    own = net.state_dict()
    wants_bilinear = any(k.endswith("up1.proj.weight") for k in own)
    has_transpose = any(k.endswith("up1.weight") and v.dim() == 4 for k, v in state.items())
    if wants_bilinear and has_transpose:
        from facesr.nets.jdsr import transpose_to_bilinear

        return transpose_to_bilinear(state)
    return state


def _load_state(net: nn.Module, state: dict[str, torch.Tensor], path: str, what: str) -> None:
    own = net.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{what}: {path} does not fit the network ({first})") from None


def warm_start(net: nn.Module, source: str, arch: str) -> None:
    """``model.init_from``: start a new run from general-SR weights or from an earlier facesr model.

    A facesr weights file must name the same architecture (its metadata says which); "general-sr" loads the
    shared RLFN x4 weights into an LR-space model's SR module (:func:`facesr.nets.fast.init_from_general_sr`).
    Training totals of the source (``facesr.totals``) are carried on by the run's export, so a model card
    adds up every run behind it.
    """
    if source == "general-sr":
        from facesr.nets.fast import init_from_general_sr

        try:
            init_from_general_sr(net)
        except ModelError as exc:
            raise ConfigError(f"model.init_from=general-sr: {exc}") from None
        return
    meta, state = _read_safetensors(source, "model.init_from")
    if meta.get("facesr.arch") not in (arch, None):
        raise ConfigError(f"model.init_from: {source} is a {meta.get('facesr.arch')!r} model, not {arch!r}")
    _load_state(net, _adapt_layout(net, state), source, "model.init_from")


def prior_totals(cfg: TrainConfig) -> dict[str, float]:
    """Steps, faces and CPU/GPU hours behind ``model.init_from`` (zeros for a fresh or general-SR start)."""
    import json

    src = cfg.model.init_from
    if not src or src == "general-sr":
        return {}
    meta, _ = _read_safetensors(src, "model.init_from")
    try:
        return {k: float(v) for k, v in json.loads(meta.get("facesr.totals", "{}")).items()}
    except (ValueError, TypeError, AttributeError):
        return {}
