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

    from facesr.zoo import verify_known_sha256

    try:
        verify_known_sha256(path)  # a zoo file or one with a .sha256 sidecar: its recorded hash
    except ModelError as exc:
        raise ConfigError(f"{what}: {exc}") from None
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
    """Earlier layouts that a warm start may still come from: a ``transpose`` CNN_D into a ``bilinear`` one,
    and a CNN_D without the positional face prior into one with it (:func:`add_face_prior`)."""
    own = net.state_dict()
    wants_bilinear = any(k.endswith("up1.proj.weight") for k in own)
    has_transpose = any(k.endswith("up1.weight") and v.dim() == 4 for k, v in state.items())
    if wants_bilinear and has_transpose:
        from facesr.nets.jdsr import transpose_to_bilinear

        state = transpose_to_bilinear(state)
    return add_face_prior(own, state)


def add_face_prior(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Warm-start a denoiser with ``prior_channels`` from one without: the prior keeps its fresh start and
    CNN_D's first conv gets zero weights for the new input channels, so the warm-started model computes
    exactly what the source did until training gives the prior a use (tested)."""
    out = dict(state)
    for key in [k for k in own if k.endswith("denoiser.face_prior") and k not in state]:
        prefix = key[: -len("face_prior")]
        first = prefix + "unet.enc1.0.conv.weight"
        old, new = state.get(first), own.get(first)
        if old is None or new is None or old.shape[1] >= new.shape[1]:
            continue
        pad = old.new_zeros(old.shape[0], new.shape[1] - old.shape[1], *old.shape[2:])
        out[first] = torch.cat([old, pad], dim=1)
        out[key] = own[key].clone()
    return out


def _load_state(
    net: nn.Module, state: dict[str, torch.Tensor], path: str, what: str, strict: bool = True
) -> None:
    own = net.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{what}: {path} does not fit the network ({first})") from None


def warm_start(net: nn.Module, source: str, arch: str, only: list[str] | None = None) -> None:
    """``model.init_from``: start a new run from general-SR weights or from an earlier facesr model.

    A facesr weights file must name the same architecture (its metadata says which); "general-sr" loads the
    shared RLFN x4 weights into an LR-space model's SR module (:func:`facesr.nets.fast.init_from_general_sr`).
    Training totals of the source (``facesr.totals``) are carried on by the run's export, so a model card
    adds up every run behind it. ``only`` (``model.init_only``) restricts the load to parameters under those
    name prefixes; within them every tensor must fit and be used, the rest of the network keeps its fresh
    initialisation.
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
    state = _adapt_layout(net, state)
    if only:  # the named part only, every tensor of it checked by _restrict; the rest stays fresh
        _load_state(net, _restrict(net, state, only, source), source, "model.init_from", strict=False)
        return
    _load_state(net, state, source, "model.init_from")


def _restrict(
    net: nn.Module, state: dict[str, torch.Tensor], only: list[str], source: str
) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` under the ``only`` prefixes, checked against the network's own."""
    own = net.state_dict()

    def under(key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in only)

    wanted = {k for k in own if under(k)}
    if not wanted:
        raise ConfigError(f"model.init_only: no parameter of the network is under {only}")
    missing = sorted(wanted - set(state))
    if missing:
        raise ConfigError(f"model.init_only: {source} lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
    return {k: state[k] for k in wanted}


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


def checkpoint_prior_totals(state: dict, cfg: TrainConfig) -> dict[str, float]:
    """The prior totals a checkpoint recorded when its run started (``prior_totals`` then), or, for a
    checkpoint written before that key existed, :func:`prior_totals` read now.

    Why recorded: ``model.init_from`` is often the shipped file, and the run's own export may replace it
    before a resume or an export from a checkpoint; reading it again then counts the run twice.
    """
    prior = state.get("prior_totals")
    return dict(prior) if prior is not None else prior_totals(cfg)
