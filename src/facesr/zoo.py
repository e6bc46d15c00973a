"""Model zoo: a name or a weights path -> a ready-to-run :class:`Restorer`.

A *restorer* is any ``nn.Module`` that maps a batch of low-resolution faces (RGB, float in
[0, 1], ``N x 3 x h x w``, aligned to the facesr template) to restored 128x128 faces in the same
range. Baselines are restorers too (``bicubic``), so evaluation treats every method the same way.

Weights are safetensors files whose metadata names the architecture and its arguments
(``facesr.arch``, ``facesr.args``), so a file loads itself; architectures register a builder
with :func:`register_arch`. Named models are listed in ``weights/zoo.json`` with their file,
sha256 and model card; a missing file or a wrong hash is a :class:`~facesr.errors.ModelError`
that says what to do. Nothing is ever downloaded here and nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ZOO_FILE = WEIGHTS_DIR / "zoo.json"
HR_SIZE = 128

#: Modules imported (lazily, on first load) so that their ``@register_arch`` builders exist.
ARCH_MODULES = ("facesr.nets.jdsr", "facesr.nets.cr", "facesr.nets.baselines", "facesr.nets.peers")

_ARCHS: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(**args) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _ARCHS[name] = fn
        return fn

    return deco


def _import_archs() -> None:
    for mod in ARCH_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def build_arch(name: str, args: dict[str, Any]) -> nn.Module:
    """Build a registered architecture from its arguments."""
    if name not in _ARCHS:
        _import_archs()
    if name not in _ARCHS:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHS)) or 'none'}")
    return _ARCHS[name](**args)


class Restorer(nn.Module):
    """Wraps a network so that ``forward(lr) -> sr`` with both in [0, 1].

    ``output_key`` picks the final image when the network returns a dict of intermediates
    (the JDSR generator returns the noise map, denoised LR, coarse image, priors and SR).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        scale: int,
        output_key: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.scale = int(scale)
        self.output_key = output_key
        self.meta = dict(meta or {})

    @property
    def lr_size(self) -> int:
        return HR_SIZE // self.scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        out = self.net(lr)
        if self.output_key is not None:
            out = out[self.output_key]
        return out.clamp(0.0, 1.0)


class Bicubic(nn.Module):
    """Antialiased bicubic up-sampling: the baseline every table starts with."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(
            lr, scale_factor=self.scale, mode="bicubic", align_corners=False, antialias=True
        )


@dataclass(frozen=True)
class ZooEntry:
    """One named model: where its weights are and what it was trained for."""

    name: str
    file: str
    sha256: str
    scale: int
    task: str  # "masked" (JDSR family) or "genuine" (CR family)
    card: str = ""
    description: str = ""
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


def _read_zoo() -> dict[str, ZooEntry]:
    if not ZOO_FILE.is_file():
        return {}
    raw = json.loads(ZOO_FILE.read_text(encoding="utf-8"))
    return {item["name"]: ZooEntry(**item) for item in raw["models"]}


def list_models() -> list[ZooEntry]:
    """Named models, including the built-in bicubic baselines."""
    builtin = [
        ZooEntry(
            name=f"bicubic-x{s}",
            file="",
            sha256="",
            scale=s,
            task="baseline",
            description="antialiased bicubic up-sampling (no weights)",
        )
        for s in (4, 8)
    ]
    return builtin + list(_read_zoo().values())


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(
    net: nn.Module,
    path: str | os.PathLike[str],
    *,
    arch: str,
    args: dict[str, Any],
    scale: int,
    output_key: str | None = None,
    dtype: torch.dtype | None = torch.float16,
    extra: dict[str, str] | None = None,
) -> None:
    """Write ``net``'s state dict as safetensors (atomically) with the metadata to rebuild it."""
    from safetensors.torch import save_file

    from facesr.io import atomic_path

    state = {}
    for k, v in net.state_dict().items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[k] = t.contiguous()
    meta = {
        "facesr.arch": arch,
        "facesr.args": json.dumps(args, sort_keys=True),
        "facesr.scale": str(int(scale)),
        "facesr.output_key": output_key or "",
    }
    meta.update(extra or {})
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def _load_file(path: Path, name: str, scale: int | None, device: str | torch.device) -> Restorer:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors weights file ({exc})") from None
    if "facesr.arch" not in meta:
        raise ModelError(
            f"{path}: safetensors file has no facesr metadata (facesr.arch); "
            "was it written by facesr.zoo.save_weights?"
        )
    try:  # the metadata is file content: a bad value is the file's fault, not a bug here
        file_scale = int(meta.get("facesr.scale", "0"))
        arch_args = json.loads(meta.get("facesr.args", "{}"))
        if not isinstance(arch_args, dict):
            raise TypeError("facesr.args is not a JSON object")
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: invalid facesr metadata ({exc})") from None
    if scale is not None and file_scale and scale != file_scale:
        raise ModelError(f"{name}: model is x{file_scale}, but x{scale} was asked for")
    try:
        net = build_arch(meta["facesr.arch"], arch_args)
    except (ValueError, TypeError) as exc:
        raise ModelError(
            f"{path}: cannot build {meta['facesr.arch']!r} from the file's arguments ({exc})"
        ) from None
    own = net.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not fit architecture {meta['facesr.arch']!r} "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    net.eval().requires_grad_(False)
    restorer = Restorer(
        net,
        name=name,
        scale=file_scale or scale or 4,
        output_key=meta.get("facesr.output_key") or None,
        meta=meta,
    )
    return restorer.to(device)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
) -> Restorer:
    """Load a named zoo model (``jdsr-lite-x4``, ``bicubic``...) or a safetensors path.

    ``bicubic`` needs ``scale`` (or use ``bicubic-x4`` / ``bicubic-x8``). Zoo files are checked
    against their sha256 unless ``verify`` is False.
    """
    name = str(name_or_path)
    if name in ("bicubic", "bicubic-x4", "bicubic-x8"):
        s = int(name[-1]) if name != "bicubic" else scale
        if s is None:
            raise ModelError("bicubic needs a scale: use bicubic-x4 / bicubic-x8 or pass scale")
        if scale is not None and s != scale:
            raise ModelError(f"{name} is x{s}, but x{scale} was asked for")
        return Restorer(Bicubic(s), name=f"bicubic-x{s}", scale=s).to(device)
    zoo = _read_zoo()
    if name in zoo:
        entry = zoo[name]
        if not entry.path.is_file():
            raise ModelError(
                f"model {name!r}: weights file {entry.path} is missing; reinstall facesr "
                "or run `facesr models` to see what is installed"
            )
        if verify and entry.sha256 and sha256_file(entry.path) != entry.sha256:
            raise ModelError(
                f"model {name!r}: {entry.path.name} fails its sha256 check (corrupt or "
                "replaced file); reinstall facesr to restore it"
            )
        return _load_file(entry.path, name, scale, device)
    path = Path(name).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise ModelError(f"weights file {str(path)!r} not found")
        return _load_file(path, path.stem, scale, device)
    known = ", ".join(e.name for e in list_models())
    raise ModelError(f"unknown model {name!r}; known models: {known} (or pass a .safetensors path)")
