"""Peer systems nobody here wrote, ported so that they run through our own evaluation path.

UpscalerJS ESRGAN-thick (npm ``@upscalerjs/esrgan-thick@1.0.0``, MIT, (c) Kevin Scott) is idealo's
ISR **RRDN** (Residual-in-Residual Dense Network; C4-D3-G32-G0 64-T10, trained on DIV2K bicubic
pairs) shipped as TensorFlow.js layers models. It is the strongest general SR model that installs
offline with a native x8 (see ``shared/research/peers.md``), so it is our "general SR" reference
row. We do not run TF.js inside the benchmark: this module re-implements the network in PyTorch
and converts the shipped ``model.json`` + weight shards, so the peer gets exactly the same
tensors, batching and metric code as our own models. The conversion checks the whole layer
graph against the RRDN it expects and refuses anything else, because a silently mis-wired port
would produce plausible-looking but wrong benchmark rows. Parity with the original tfjs model is
checked by ``benchmarks/peers/parity_esrgan_thick.mjs`` (see docs/peers.md).

The model takes RGB in [0, 1] (NHWC in TF, NCHW here) and returns RGB in [0, 1]
(UpscalerJS's ``inputRange``/``outputRange`` for the ``rrdn`` architecture), so it fits the
:class:`facesr.zoo.Restorer` contract without rescaling; the Restorer clamps the output.

Tag: SECONDARY (a peer for comparison, not part of either paper's method).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facesr.errors import ModelError
from facesr.nets.registry import register_arch

#: The residual scaling constant of UpscalerJS's ``MultiplyBeta`` layer (ESRGAN's beta).
BETA = 0.2


def depth_to_space_nhwc_order(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``tf.depthToSpace(x, scale, 'NHWC')`` on an NCHW tensor.

    TF reads the channel index as ``(row_offset, col_offset, colour)`` with the colour fastest;
    ``torch.nn.functional.pixel_shuffle`` reads it as ``(colour, row_offset, col_offset)``. Using
    pixel_shuffle on TF weights would scramble colours and sub-pixel positions, so we reorder.
    """
    n, c, h, w = x.shape
    out_c = c // (scale * scale)
    x = x.reshape(n, scale, scale, out_c, h, w)  # (dy, dx, colour) as TF lays the channels out
    x = x.permute(0, 3, 4, 1, 5, 2)  # n, colour, h, dy, w, dx
    return x.reshape(n, out_c, h * scale, w * scale)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    # Keras Conv2D 3x3, stride 1, padding "same" == symmetric padding 1 for odd kernels.
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True)


class DenseBlock(nn.Module):
    """Residual dense block (RDB): C densely connected 3x3 conv+ReLU, a 3x3 fusion conv, x beta."""

    def __init__(self, g0: int, g: int, c: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(g0 + i * g, g) for i in range(c))
        self.fuse = _conv(g0 + c * g, g0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x
        for conv in self.convs:
            feats = torch.cat([feats, torch.relu(conv(feats))], dim=1)
        return x + BETA * self.fuse(feats)


class ResidualInResidualBlock(nn.Module):
    """RRDB: D dense blocks in sequence with a beta-scaled skip around all of them."""

    def __init__(self, g0: int, g: int, c: int, d: int) -> None:
        super().__init__()
        self.rdbs = nn.Sequential(*(DenseBlock(g0, g, c) for _ in range(d)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + BETA * self.rdbs(x)


class RRDN(nn.Module):
    """idealo ISR's RRDN as UpscalerJS ships it (ESRGAN-thick): LR [0,1] -> SR [0,1] (unclamped)."""

    def __init__(
        self, *, C: int = 4, D: int = 3, G: int = 32, G0: int = 64, T: int = 10, scale: int = 4
    ) -> None:
        super().__init__()
        self.scale = int(scale)
        self.head = _conv(3, G0)  # TF: Pre_blocks_conv
        self.blocks = nn.Sequential(*(ResidualInResidualBlock(G0, G, C, D) for _ in range(T)))
        self.body_conv = _conv(G0, G0)  # TF: post_blocks_conv (then + head output: GRL)
        self.upsample_conv = _conv(G0, 3 * scale * scale)  # TF: PreShuffle
        self.tail = _conv(3, 3)  # TF: SR

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        shallow = self.head(lr)
        deep = self.body_conv(self.blocks(shallow)) + shallow
        return self.tail(depth_to_space_nhwc_order(self.upsample_conv(deep), self.scale))


@register_arch("esrgan_thick")
def build_esrgan_thick(**args: Any) -> nn.Module:
    """Builder for the zoo: ``esrgan_thick(C=4, D=3, G=32, G0=64, T=10, scale=4|8)``."""
    return RRDN(**args)


# ---------------------------------------------------------------------------------------------
# TF.js layers-model conversion
# ---------------------------------------------------------------------------------------------

_CONV_FIXED = {
    "kernel_size": [3, 3],
    "strides": [1, 1],
    "padding": "same",
    "data_format": "channels_last",
    "dilation_rate": [1, 1],
    "activation": "linear",
    "use_bias": True,
}


@dataclass(frozen=True)
class _Node:
    """One expected layer: Keras class, inbound layer names, and (for Conv2D) its filter count."""

    cls: str
    inputs: tuple[str, ...]
    filters: int | None = None


def _beta(name: str) -> str:
    """Canonical name of the (auto-named) MultiplyBeta layer applied to ``name``."""
    return f"beta({name})"


def expected_rrdn_graph(*, C: int, D: int, G: int, G0: int, T: int, scale: int) -> dict[str, _Node]:
    """The layer graph of UpscalerJS's RRDN for these hyper-parameters (MultiplyBeta by canonical name).

    This mirrors idealo ISR's ``RRDN._build_rdn`` naming, which the shipped model.json keeps.
    """
    g: dict[str, _Node] = {"Pre_blocks_conv": _Node("Conv2D", ("LR_input",), G0)}
    block_in = "Pre_blocks_conv"
    for t in range(1, T + 1):
        rdb_in = block_in
        for d in range(1, D + 1):
            concat = rdb_in
            for c in range(1, C + 1):
                f = f"F_{t}_{d}_{c}"
                g[f] = _Node("Conv2D", (concat,), G)
                g[f"{f}_Relu"] = _Node("Activation", (f,))
                g[f"RDB_Concat_{t}_{d}_{c}"] = _Node("Concatenate", (concat, f"{f}_Relu"))
                concat = f"RDB_Concat_{t}_{d}_{c}"
            g[f"LFF_{t}_{d}"] = _Node("Conv2D", (concat,), G0)
            g[_beta(f"LFF_{t}_{d}")] = _Node("MultiplyBeta", (f"LFF_{t}_{d}",))
            g[f"LRL_{t}_{d}"] = _Node("Add", (rdb_in, _beta(f"LFF_{t}_{d}")))
            rdb_in = f"LRL_{t}_{d}"
        g[_beta(rdb_in)] = _Node("MultiplyBeta", (rdb_in,))
        g[f"RRDB_{t}_out"] = _Node("Add", (block_in, _beta(rdb_in)))
        block_in = f"RRDB_{t}_out"
    g["post_blocks_conv"] = _Node("Conv2D", (block_in,), G0)
    g["GRL"] = _Node("Add", ("post_blocks_conv", "Pre_blocks_conv"))
    g["PreShuffle"] = _Node("Conv2D", ("GRL",), 3 * scale * scale)
    g["pixel_shuffle"] = _Node(f"PixelShuffle{scale}x", ("PreShuffle",))
    g["SR"] = _Node("Conv2D", ("pixel_shuffle",), 3)
    return g


def torch_key(tf_layer: str) -> str:
    """Map a TF conv layer name to our module path (``F_3_2_1`` -> ``blocks.2.rdbs.1.convs.0``)."""
    fixed = {
        "Pre_blocks_conv": "head",
        "post_blocks_conv": "body_conv",
        "PreShuffle": "upsample_conv",
        "SR": "tail",
    }
    if tf_layer in fixed:
        return fixed[tf_layer]
    if m := re.fullmatch(r"F_(\d+)_(\d+)_(\d+)", tf_layer):
        t, d, c = (int(v) - 1 for v in m.groups())
        return f"blocks.{t}.rdbs.{d}.convs.{c}"
    if m := re.fullmatch(r"LFF_(\d+)_(\d+)", tf_layer):
        t, d = (int(v) - 1 for v in m.groups())
        return f"blocks.{t}.rdbs.{d}.fuse"
    raise ModelError(f"unexpected conv layer {tf_layer!r} in RRDN model.json")


def _layers(model: dict[str, Any], where: str) -> list[dict[str, Any]]:
    try:
        cfg = model["modelTopology"]["model_config"]
        if cfg["class_name"] not in ("Functional", "Model"):
            raise ModelError(f"{where}: expected a Keras functional model, got {cfg['class_name']!r}")
        return list(cfg["config"]["layers"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{where}: not a TF.js layers model.json (missing {exc})") from None


def _inbound(layer: dict[str, Any]) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ModelError(f"layer {layer.get('name')!r} is shared (called more than once); not an RRDN")
    return [str(ref[0]) for ref in nodes[0]] if nodes else []


def infer_rrdn_args(layers: list[dict[str, Any]], where: str) -> dict[str, int]:
    """Read C, D, G, G0, T and the scale off the layer names and filter counts."""
    by_name = {layer["name"]: layer for layer in layers}
    names = set(by_name)

    def count(pattern: str) -> int:
        return sum(1 for n in names if re.fullmatch(pattern, n))

    try:
        shuffle = next(layer for layer in layers if re.fullmatch(r"PixelShuffle\d+x", layer["class_name"]))
        args = {
            "C": count(r"F_1_1_\d+"),
            "D": count(r"LFF_1_\d+"),
            "G": int(by_name["F_1_1_1"]["config"]["filters"]),
            "G0": int(by_name["Pre_blocks_conv"]["config"]["filters"]),
            "T": count(r"RRDB_\d+_out"),
            "scale": int(shuffle["class_name"][len("PixelShuffle") : -1]),
        }
    except (StopIteration, KeyError, ValueError) as exc:
        raise ModelError(f"{where}: not an UpscalerJS RRDN model.json (cannot find {exc})") from None
    if min(args.values()) < 1:
        raise ModelError(f"{where}: not an UpscalerJS RRDN model.json (hyper-parameters {args})")
    return args


def check_rrdn_graph(layers: list[dict[str, Any]], args: dict[str, int], where: str) -> None:
    """Raise ModelError unless ``layers`` is exactly the RRDN that ``args`` describe."""
    by_name = {layer["name"]: layer for layer in layers}
    canon = {}
    for layer in layers:
        ins = _inbound(layer)
        canon[layer["name"]] = (
            _beta(ins[0]) if layer["class_name"] == "MultiplyBeta" and len(ins) == 1 else layer["name"]
        )
    expected = expected_rrdn_graph(**args)
    actual: dict[str, dict[str, Any]] = {}
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            continue
        key = canon[layer["name"]]
        if key in actual:
            raise ModelError(f"{where}: layer {key!r} appears twice; not an RRDN")
        actual[key] = layer
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        raise ModelError(
            f"{where}: graph is not the expected RRDN {args} (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key, node in expected.items():
        layer = actual[key]
        ins = tuple(canon.get(n, n) for n in _inbound(layer))
        cfg = layer.get("config", {})
        problem = ""
        if layer["class_name"] != node.cls:
            problem = f"class {layer['class_name']} != {node.cls}"
        elif ins != node.inputs:
            problem = f"inputs {list(ins)} != {list(node.inputs)}"
        elif node.cls == "Conv2D":
            bad = {k: cfg.get(k) for k, v in _CONV_FIXED.items() if cfg.get(k) != v}
            if cfg.get("groups", 1) != 1:
                bad["groups"] = cfg.get("groups")
            if cfg.get("filters") != node.filters:
                bad["filters"] = cfg.get("filters")
            problem = f"conv settings {bad}" if bad else ""
        elif node.cls == "Activation" and cfg.get("activation") != "relu":
            problem = f"activation {cfg.get('activation')!r}"
        elif node.cls == "Concatenate" and cfg.get("axis") not in (3, -1):
            problem = f"concat axis {cfg.get('axis')}"
        if problem:
            raise ModelError(f"{where}: layer {key!r} does not match the RRDN: {problem}")
    inputs = [n for n, layer in by_name.items() if layer["class_name"] == "InputLayer"]
    if inputs != ["LR_input"]:
        raise ModelError(f"{where}: expected one input layer 'LR_input', found {inputs}")


def read_tfjs_weights(model: dict[str, Any], folder: Path) -> dict[str, np.ndarray]:
    """Read all weight groups of a TF.js model (shards are one byte stream per group), float32 only."""
    out: dict[str, np.ndarray] = {}
    for group in model.get("weightsManifest", []):
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec.get("dtype") != "float32" or "quantization" in spec:
                raise ModelError(
                    f"{folder}: weight {spec.get('name')!r} is {spec.get('dtype')} "
                    "(quantised weights are not supported; expected float32)"
                )
            count = int(np.prod(spec["shape"], dtype=np.int64))
            end = offset + 4 * count
            if end > len(blob):
                raise ModelError(f"{folder}: weight shards are truncated at {spec['name']!r}")
            out[spec["name"]] = np.frombuffer(blob, dtype="<f4", count=count, offset=offset).reshape(
                spec["shape"]
            )
            offset = end
        if offset != len(blob):
            raise ModelError(f"{folder}: {len(blob) - offset} unused bytes in weight shards {group['paths']}")
    return out


def rrdn_from_tfjs(model_json: str | os.PathLike[str]) -> tuple[RRDN, dict[str, int]]:
    """Build our :class:`RRDN` from an UpscalerJS ``model.json`` (+ its shards next to it).

    Returns the network (float32, eval mode) and the builder arguments to store with it.
    """
    path = Path(model_json)
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read TF.js model.json ({exc})") from None
    layers = _layers(model, str(path))
    args = infer_rrdn_args(layers, str(path))
    check_rrdn_graph(layers, args, str(path))
    try:
        weights = read_tfjs_weights(model, path.parent)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weight shard ({exc})") from None
    net = RRDN(**args)
    state: dict[str, torch.Tensor] = {}
    conv_layers = [layer["name"] for layer in layers if layer["class_name"] == "Conv2D"]
    for name in conv_layers:
        key = torch_key(name)
        try:
            kernel, bias = weights.pop(f"{name}/kernel"), weights.pop(f"{name}/bias")
        except KeyError as exc:
            raise ModelError(f"{path}: weight {exc} missing from the shards") from None
        state[f"{key}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
        state[f"{key}.bias"] = torch.from_numpy(bias.copy())
    if weights:
        raise ModelError(f"{path}: weights without a layer: {sorted(weights)[:3]}")
    own = net.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ModelError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
            )
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False), args
