"""Model zoo: a name or a weights path -> a ready-to-run :class:`Restorer`.

A *restorer* is any ``nn.Module`` that maps a batch of low-resolution faces (RGB, float in
[0, 1], ``N x 3 x h x w``, aligned to the facesr template) to restored 128x128 faces in the same
range. Baselines are restorers too (``bicubic``), so evaluation treats every method the same way.

Weights are safetensors files whose metadata names the architecture and its arguments
(``facesr.arch``, ``facesr.args``), so a file loads itself; architectures register a builder
with :func:`register_arch`. Named models are listed in ``weights/zoo.json`` with their file,
sha256 and model card; a missing file or a wrong hash is a :class:`~facesr.errors.ModelError`
that says what to do. Nothing is ever downloaded here and nothing is unpickled.

A model carries its input and output size (``facesr.lr_size``, ``facesr.hr_size``, written by
:func:`save_weights`; :attr:`Restorer.lr_size`, :attr:`Restorer.hr_size`), so nothing derives a model's
input from its scale. Files written before these keys existed fall back to the sizes their other
metadata implies (:func:`model_sizes`): the CR files' ``facesr.hr_native // facesr.learned_scale``
(16), else ``128 // facesr.scale``, and an output of 128; so every shipped file loads unchanged.

A weights file is content, not code, and is checked before it runs (issue 17): the metadata's size,
nesting and numbers are bounded, ``facesr.scale`` must be one of :data:`SCALES`, the architecture
is first built on PyTorch's ``meta`` device (no memory) and its tensor names and shapes must match
the file's exactly, NaN/inf weights are refused, and a forward pass on the meta device must give
a 3-channel image (which also checks ``facesr.output_key``). Every file that is loaded is
hash-checked where a hash is known: zoo entries (also when named by path), a ``<file>.sha256``
sidecar next to any weights file, the bundled detector/identity weights
(:func:`facesr.checksums.verify_bundled`) and the shared general-SR weights by file name
(:func:`facesr.checksums.verify_pretrained`).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.checksums import sha256_file, verify_pretrained
from facesr.errors import ModelError
from facesr.geometry import HR_SIZE, input_size
from facesr.nets.registry import arch_names, get_builder

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ZOO_FILE = WEIGHTS_DIR / "zoo.json"
#: Up-scaling factors a weights file may declare (``facesr.scale``): the 128 px output frame
#: divided by the model's input frame.
SCALES = (2, 4, 8)
#: The largest input or output side a weights file may declare (``facesr.lr_size``, ``facesr.hr_size``).
MAX_SIDE = 1024
#: Bounds on the metadata of a weights file: JSON size of ``facesr.args``, its nesting depth, list
#: lengths and numbers (a width of 10**9 would try to allocate terabytes before any check).
MAX_ARGS_BYTES = 64 * 1024
MAX_ARGS_DEPTH = 6
MAX_ARG_NUMBER = 65_536
MAX_ARG_ITEMS = 256

#: The network modules, imported on the first build so that their ``@register_arch`` builders
#: (:mod:`facesr.nets.registry`) exist; the networks themselves import nothing of the zoo.
ARCH_MODULES = (
    "facesr.nets.jdsr",
    "facesr.nets.fast",
    "facesr.nets.fast_mix",
    "facesr.nets.cr",
    "facesr.nets.baselines",
    "facesr.nets.peers",
)


def _import_archs() -> None:
    for mod in ARCH_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def build_arch(name: str, args: dict[str, Any]) -> nn.Module:
    """Build a registered architecture from its arguments."""
    if get_builder(name) is None:
        _import_archs()
    builder = get_builder(name)
    if builder is None:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(arch_names()) or 'none'}")
    return builder(**args)


class Restorer(nn.Module):
    """Wraps a network so that ``forward(lr) -> sr`` with both in [0, 1].

    ``output_key`` picks the final image when the network returns a dict of intermediates
    (the JDSR generator returns the noise map, denoised LR, coarse image, priors and SR).
    ``lr_size`` / ``hr_size`` are the sides of the aligned face it takes and gives (default
    ``128 // scale`` and 128); ``scale`` is their ratio, kept for names and listings only.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        scale: int,
        output_key: str | None = None,
        meta: dict[str, str] | None = None,
        lr_size: int | None = None,
        hr_size: int | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.scale = int(scale)
        self.output_key = output_key
        self.meta = dict(meta or {})
        self.hr_size = int(hr_size or HR_SIZE)
        self.lr_size = int(lr_size or input_size(self.scale, self.hr_size))

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
    #: Input and output sides as ``zoo.json`` states them (its ``lr_size`` / ``hr_size``); 0: not stated.
    declared_lr_size: int = 0
    declared_hr_size: int = 0

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file

    @cached_property
    def sizes(self) -> tuple[int, int]:
        """(input side, output side): as ``zoo.json`` states them, else as the weights file's header
        says (:func:`model_sizes`; reading it loads no tensors), else ``128 // scale`` and 128."""
        if self.declared_lr_size and self.declared_hr_size:
            return self.declared_lr_size, self.declared_hr_size
        meta: dict[str, str] = {}
        if self.file and self.path.is_file():
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(self.path), framework="pt", device="cpu") as fh:
                    meta = dict(fh.metadata() or {})
            except (SafetensorError, OSError, ValueError):  # a broken file fails where it is loaded
                meta = {}
        try:
            lr, hr = model_sizes(meta, self.scale, self.path)
        except ModelError:  # likewise
            lr, hr = input_size(self.scale), HR_SIZE
        return self.declared_lr_size or lr, self.declared_hr_size or hr

    @property
    def lr_size(self) -> int:
        """The side of the aligned face the model takes (``sizes[0]``)."""
        return self.sizes[0]

    @property
    def hr_size(self) -> int:
        """The side of the face it gives (``sizes[1]``)."""
        return self.sizes[1]


def _read_zoo() -> dict[str, ZooEntry]:
    if not ZOO_FILE.is_file():
        return {}
    raw = json.loads(ZOO_FILE.read_text(encoding="utf-8"))
    out = {}
    for item in raw["models"]:
        item = dict(item)
        for key in ("lr_size", "hr_size"):
            if key in item:
                item[f"declared_{key}"] = int(item.pop(key))
        out[item["name"]] = ZooEntry(**item)
    return out


def get_entry(name: str) -> ZooEntry | None:
    """The named model's entry (the built-in bicubic baselines included), or None."""
    return next((e for e in list_models() if e.name == name), None)


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
        for s in (2, 4, 8)
    ]
    return builtin + list(_read_zoo().values())


def _known_sha256(path: Path) -> tuple[str, str] | None:
    """(expected sha256, where it comes from) for a weights file named by path, if one is known."""
    resolved = path.resolve()
    for entry in _read_zoo().values():
        if entry.sha256 and entry.path.resolve() == resolved:
            return entry.sha256, f"zoo entry {entry.name!r}"
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        words = sidecar.read_text(encoding="utf-8", errors="replace").split()
        if not words or len(words[0]) != 64:
            raise ModelError(f"{sidecar}: not a sha256 sidecar (expected 64 hex digits first)")
        return words[0].lower(), sidecar.name
    return None


def verify_known_sha256(path: str | Path) -> None:
    """Check a weights file named by path against its zoo entry's or ``.sha256`` sidecar's hash, or
    the recorded hash of a shared general-SR file of that name (:func:`facesr.checksums.verify_pretrained`),
    if one is known (issue 17: every loaded weights file, also training's ``model.init_from``)."""
    path = Path(path)
    verify_pretrained(path)  # a shared general-SR file (../shared/pretrained) named by path
    known = _known_sha256(path) if path.is_file() else None  # a missing file is its loader's error
    if known is not None and sha256_file(path) != known[0]:
        raise ModelError(f"{path}: fails the sha256 check recorded in {known[1]} (corrupt or replaced file)")


def _check_args(value: Any, path: Path, where: str = "facesr.args", depth: int = 0) -> None:
    """Bounded architecture arguments: nesting, list lengths and numbers (see MAX_ARG_*)."""
    if depth > MAX_ARGS_DEPTH:
        raise ModelError(f"{path}: {where} is nested deeper than {MAX_ARGS_DEPTH} levels")
    if isinstance(value, dict):
        if len(value) > MAX_ARG_ITEMS:
            raise ModelError(f"{path}: {where} has {len(value)} keys (at most {MAX_ARG_ITEMS})")
        for k, v in value.items():
            _check_args(v, path, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ARG_ITEMS:
            raise ModelError(f"{path}: {where} has {len(value)} items (at most {MAX_ARG_ITEMS})")
        for i, v in enumerate(value):
            _check_args(v, path, f"{where}[{i}]", depth + 1)
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value != value or abs(value) > MAX_ARG_NUMBER)
    ):
        raise ModelError(f"{path}: {where}={value!r} is out of range (|value| <= {MAX_ARG_NUMBER})")


def _parse_meta(meta: dict[str, str], path: Path) -> tuple[int, dict[str, Any]]:
    """(facesr.scale or 0 when absent, facesr.args) from a file's metadata, validated."""
    raw_args = meta.get("facesr.args", "{}")
    if len(raw_args) > MAX_ARGS_BYTES:
        raise ModelError(f"{path}: facesr.args is {len(raw_args):,} bytes (at most {MAX_ARGS_BYTES:,})")
    try:  # the metadata is file content: a bad value is the file's fault, not a bug here
        file_scale = int(meta.get("facesr.scale", "0"))
        arch_args = json.loads(raw_args)
    except (ValueError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:120]
        raise ModelError(f"{path}: invalid facesr metadata ({why})") from None
    if not isinstance(arch_args, dict):
        raise ModelError(f"{path}: invalid facesr metadata (facesr.args is not a JSON object)")
    _check_args(arch_args, path)
    if "facesr.scale" in meta and file_scale not in SCALES:
        raise ModelError(
            f"{path}: facesr.scale={meta['facesr.scale']!r} is not a supported scale "
            f"({', '.join(map(str, SCALES))})"
        )
    return file_scale, arch_args


def model_sizes(meta: Mapping[str, str], scale: int | None, path: Path | str = "") -> tuple[int, int]:
    """(input side, output side) of the model a weights file holds, from its metadata.

    ``facesr.lr_size`` / ``facesr.hr_size`` when present (:func:`save_weights` writes them); for
    files written before they existed: the output is 128 and the input is what the other metadata
    implies -- a CR file's learned part takes ``facesr.hr_native // facesr.learned_scale`` (16 -> 64,
    framed at 128), anything else ``128 // scale``. ``scale`` (the file's ``facesr.scale``, else the
    one asked for, else 4) must be their ratio: a file that says otherwise is refused.
    """
    where = str(path) or "weights"
    scale = int(scale or 4)

    def side(key: str) -> int | None:
        if key not in meta:
            return None
        try:
            value = int(meta[key])
        except (ValueError, TypeError):
            raise ModelError(f"{where}: {key}={meta[key]!r} is not a whole number") from None
        if not 1 <= value <= MAX_SIDE:
            raise ModelError(f"{where}: {key}={value} is out of range (1..{MAX_SIDE})")
        return value

    hr = side("facesr.hr_size") or HR_SIZE
    lr = side("facesr.lr_size")
    if lr is None:
        native, learned = side("facesr.hr_native"), side("facesr.learned_scale")
        lr = native // learned if native and learned and native % learned == 0 else input_size(scale, hr)
    if lr * scale != hr:
        raise ModelError(
            f"{where}: input {lr} px x scale {scale} is not the output {hr} px "
            "(facesr.lr_size, facesr.scale and facesr.hr_size disagree)"
        )
    return lr, hr


def _shape_mismatch(own: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> str | None:
    """A one-line description of how the file's tensors differ from the architecture's, or None."""
    missing = [k for k in own if k not in shapes]
    unexpected = [k for k in shapes if k not in own]
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    for k, v in own.items():
        if tuple(v.shape) != tuple(shapes[k]):
            return f"{k} has shape {list(shapes[k])} in the file, {list(v.shape)} in the architecture"
    return None


def _finite(t: torch.Tensor) -> bool:
    """Whether every element is finite: the float64 sum of a tensor with a NaN/inf is NaN/inf.

    (``torch.isfinite`` on float16 tensors is slow on the CPU; a sum is one pass in any dtype.)
    """
    return bool(torch.isfinite(t.detach().double().sum()))


def _probe(net: nn.Module, output_key: str | None, lr_size: int, path: Path) -> None:
    """One forward pass on the meta device (shapes only, no compute): ``output_key`` names an output
    and the output is an ``N x 3 x H x W`` image. Operators without a meta kernel skip the check."""
    try:
        with torch.inference_mode():
            out = net(torch.empty(1, 3, lr_size, lr_size, device="meta"))
    except Exception:  # not runnable on the meta device (or failing there): the real run will tell
        return
    if isinstance(out, dict):
        if output_key is None or output_key not in out:
            raise ModelError(
                f"{path}: facesr.output_key={output_key!r} is not one of the network's outputs "
                f"({', '.join(sorted(map(str, out)))})"
            )
        out = out[output_key]
    elif output_key is not None:
        raise ModelError(f"{path}: facesr.output_key={output_key!r} but the network returns a single tensor")
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[1] != 3:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{path}: the network's output is {shape}, not an N x 3 x H x W image")


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
    lr_size: int | None = None,
    hr_size: int | None = None,
) -> None:
    """Write ``net``'s state dict as safetensors (atomically) with the metadata to rebuild it.

    ``lr_size`` / ``hr_size`` (default ``128 // scale`` and 128) are the model's input and output
    sides, written as ``facesr.lr_size`` / ``facesr.hr_size``; ``scale`` must be their ratio.
    """
    from safetensors.torch import save_file

    from facesr.io import atomic_path

    state = {}
    for k, v in net.state_dict().items():
        t = v.detach().cpu()
        if t.is_floating_point() and not _finite(t):
            raise ModelError(f"{path}: not saved: tensor {k!r} holds NaN or inf (did training diverge?)")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
            if not _finite(t):
                raise ModelError(f"{path}: not saved: tensor {k!r} overflows {dtype}")
        state[k] = t.contiguous()
    meta = {
        "facesr.arch": arch,
        "facesr.args": json.dumps(args, sort_keys=True),
        "facesr.scale": str(int(scale)),
        "facesr.output_key": output_key or "",
    }
    meta.update(extra or {})
    hr = int(hr_size or HR_SIZE)
    meta["facesr.hr_size"] = str(hr)
    meta["facesr.lr_size"] = str(int(lr_size or input_size(scale, hr)))
    model_sizes(meta, int(scale), path)  # refuse sizes that disagree with the scale before writing
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def _load_file(
    path: Path,
    name: str,
    scale: int | None,
    device: str | torch.device,
    declared: tuple[int, int] = (0, 0),
) -> Restorer:
    """Check and load one weights file; ``declared``: the zoo entry's (lr_size, hr_size), 0 = not stated
    (used where the file states none; a file that states other sizes is refused)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            keys = list(fh.keys())
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in keys}
            if "facesr.arch" not in meta:
                raise ModelError(
                    f"{path}: safetensors file has no facesr metadata (facesr.arch); "
                    "was it written by facesr.zoo.save_weights?"
                )
            file_scale, arch_args = _parse_meta(meta, path)
            if scale is not None and file_scale and scale != file_scale:
                raise ModelError(f"{name}: model is x{file_scale}, but x{scale} was asked for")
            sized = dict(meta)
            for key, want in zip(("facesr.lr_size", "facesr.hr_size"), declared, strict=True):
                if want and key in meta and meta[key] != str(want):
                    raise ModelError(f"{path}: {key}={meta[key]} but its zoo entry {name!r} says {want}")
                if want:
                    sized[key] = str(want)
            lr_size, hr_size = model_sizes(sized, file_scale or scale, path)
            arch = meta["facesr.arch"]
            try:  # on the meta device first: no memory, so huge or wrong arguments cost nothing
                with torch.device("meta"):
                    probe = build_arch(arch, arch_args)
            except ModelError:
                raise
            except (ValueError, TypeError, KeyError, AssertionError) as exc:
                raise ModelError(f"{path}: cannot build {arch!r} from the file's arguments ({exc})") from None
            except Exception:  # a builder that cannot run on the meta device: checked after the build
                probe = None
            if probe is not None:
                bad = _shape_mismatch(probe.state_dict(), shapes)
                if bad:
                    raise ModelError(f"{path}: weights do not fit architecture {arch!r} ({bad})")
                _probe(probe.eval(), meta.get("facesr.output_key") or None, lr_size, path)
                del probe
            state = {k: fh.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors weights file ({exc})") from None
    non_finite = [k for k, v in state.items() if v.is_floating_point() and not _finite(v)]
    if non_finite:
        raise ModelError(
            f"{path}: {len(non_finite)} weight tensor(s) hold NaN or inf (first: {non_finite[0]}); "
            "the file is corrupt or comes from a diverged run"
        )
    try:
        net = build_arch(arch, arch_args)
    except (ValueError, TypeError, KeyError, AssertionError, MemoryError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot build {arch!r} from the file's arguments ({exc})") from None
    own = net.state_dict()
    bad = _shape_mismatch(own, shapes)
    if bad:
        raise ModelError(f"{path}: weights do not fit architecture {arch!r} ({bad})")
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    restorer = Restorer(
        net,
        name=name,
        scale=file_scale or scale or 4,
        output_key=meta.get("facesr.output_key") or None,
        meta=meta,
        lr_size=lr_size,
        hr_size=hr_size,
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
    if name in ("bicubic", "bicubic-x2", "bicubic-x4", "bicubic-x8"):
        s = int(name[-1]) if name != "bicubic" else scale
        if s is None:
            raise ModelError("bicubic needs a scale: use bicubic-x2 / -x4 / -x8 or pass scale")
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
        return _load_file(entry.path, name, scale, device, (entry.declared_lr_size, entry.declared_hr_size))
    path = Path(name).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise ModelError(f"weights file {str(path)!r} not found")
        if verify:
            verify_known_sha256(path)
        return _load_file(path, path.stem, scale, device)
    known = ", ".join(e.name for e in list_models())
    raise ModelError(f"unknown model {name!r}; known models: {known} (or pass a .safetensors path)")
