"""Issue 17, weights: wrong shapes, bad scales, nested/huge args, NaN, hashes and the ONNX cache key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from facesr import zoo
from facesr.errors import ModelError
from facesr.nets.registry import register_arch
from facesr.nets.rlfn import pretrained_path


class _Net(nn.Module):
    """Conv + bicubic to 128 px; returns a dict like the JDSR generator (``sr`` and ``aux``)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, width, 3, padding=1)
        self.b = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.b(torch.relu(self.a(x)))
        return {"sr": F.interpolate(y, size=(128, 128), mode="bilinear"), "aux": y}


register_arch("_h17_net")(lambda width=4: _Net(width))


def _write(path: Path, *, width: int = 4, meta: dict[str, str] | None = None, state=None) -> Path:
    net = _Net(width)
    zoo.save_weights(net, path, arch="_h17_net", args={"width": width}, scale=4, output_key="sr", dtype=None)
    if meta is not None or state is not None:
        merged = {**_meta(path), **(meta or {})}
        save_file(state if state is not None else load_file(str(path)), str(path), metadata=merged)
    return path


def _meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def test_good_file_loads(tmp_path: Path) -> None:
    r = zoo.load_model(_write(tmp_path / "ok.safetensors"))
    assert r.scale == 4 and r(torch.rand(1, 3, 32, 32)).shape == (1, 3, 128, 128)


def test_wrong_tensor_shape_is_one_line(tmp_path: Path) -> None:
    state = load_file(str(_write(tmp_path / "a.safetensors")))
    state["a.weight"] = torch.zeros(5, 3, 3, 3)
    path = _write(tmp_path / "bad.safetensors", state=state)
    with pytest.raises(ModelError, match=r"a\.weight has shape \[5, 3, 3, 3\] in the file") as err:
        zoo.load_model(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["3", "-4", "1000", "0", "x4"])
def test_bad_scale_is_one_line(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path / "s.safetensors", meta={"facesr.scale": value})
    with pytest.raises(ModelError, match=r"facesr\.scale|invalid facesr metadata"):
        zoo.load_model(path)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "too large|nested"),
        ('{"width": ' + "[" * 50 + "4" + "]" * 50 + "}", "nested deeper"),
        ('{"width": 1000000000}', "out of range"),
        ('{"width": NaN}', "out of range"),
        ('{"width": 12}', "missing|shape"),
        ('{"width": [' + ",".join(["1"] * 1000) + "]}", "items"),
    ],
    ids=["deep-json", "deep-args", "huge-width", "nan-width", "other-width", "long-list"],
)
def test_nested_or_huge_args_are_refused_fast(tmp_path: Path, args: str, match: str) -> None:
    path = _write(tmp_path / "n.safetensors", meta={"facesr.args": args})
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=match):
        zoo.load_model(path)
    assert time.perf_counter() - t0 < 5.0


def test_huge_real_architecture_args_cost_no_memory(tmp_path: Path) -> None:
    """Within the number bounds, a JDSR generator 1,000x too wide is built on the meta device only."""
    import tracemalloc

    path = tmp_path / "wide.safetensors"
    save_file(
        {"w": torch.zeros(2)},
        str(path),
        metadata={
            "facesr.arch": "jdsr",
            "facesr.args": json.dumps({"size": "lite", "scale": 4, "trunk": 60000}),
        },
    )
    tracemalloc.start()
    with pytest.raises(ModelError, match=r"do not fit|cannot build"):
        zoo.load_model(path)
    assert tracemalloc.get_traced_memory()[1] < 200 * 2**20
    tracemalloc.stop()


def test_nan_weights_are_refused_and_never_saved(tmp_path: Path) -> None:
    state = load_file(str(_write(tmp_path / "a.safetensors")))
    state["b.bias"] = torch.full_like(state["b.bias"], float("nan"))
    with pytest.raises(ModelError, match="NaN or inf"):
        zoo.load_model(_write(tmp_path / "nan.safetensors", state=state))
    net = _Net()
    with torch.no_grad():
        net.a.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ModelError, match="not saved"):
        zoo.save_weights(net, tmp_path / "inf.safetensors", arch="_h17_net", args={}, scale=4)
    assert not (tmp_path / "inf.safetensors").exists()
    big = _Net()
    with torch.no_grad():
        big.a.weight[0, 0, 0, 0] = 1e6  # finite in fp32, inf in fp16
    with pytest.raises(ModelError, match="overflows"):
        zoo.save_weights(big, tmp_path / "big.safetensors", arch="_h17_net", args={}, scale=4)


@pytest.mark.parametrize("key", ["nope", ""])
def test_unknown_output_key_is_refused(tmp_path: Path, key: str) -> None:
    path = _write(tmp_path / "k.safetensors", meta={"facesr.output_key": key})
    with pytest.raises(ModelError, match="output_key"):
        zoo.load_model(path)


def test_file_loaded_by_path_is_hash_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a zoo file named by its path is checked against the zoo's sha256
    src = _write(tmp_path / "mine.safetensors")
    digest = zoo.sha256_file(src)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    zoo_json = tmp_path / "zoo.json"
    entry = {"name": "mine", "file": "mine.safetensors", "sha256": digest, "scale": 4, "task": "masked"}
    zoo_json.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(zoo, "ZOO_FILE", zoo_json)
    zoo.load_model(src)
    entry["sha256"] = "0" * 64
    zoo_json.write_text(json.dumps({"models": [entry]}))
    with pytest.raises(ModelError, match="zoo entry 'mine'"):
        zoo.load_model(src)
    assert zoo.load_model(src, verify=False).scale == 4
    # any weights file with a .sha256 sidecar is checked against it
    other = _write(tmp_path / "other.safetensors")
    (tmp_path / "other.safetensors.sha256").write_text(zoo.sha256_file(other) + "  other.safetensors\n")
    zoo.load_model(other)
    (tmp_path / "other.safetensors.sha256").write_text("f" * 64 + "\n")
    with pytest.raises(ModelError, match=r"other\.safetensors\.sha256"):
        zoo.load_model(other)


def test_bundled_weights_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facesr import checksums

    for name in checksums.BUNDLED_SHA256:
        checksums.verify_bundled(checksums.WEIGHTS_DIR / name)  # the shipped files pass
    fake = tmp_path / "mtcnn.safetensors"
    fake.write_bytes((checksums.WEIGHTS_DIR / "mtcnn.safetensors").read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(checksums, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match=r"mtcnn\.safetensors fails its sha256"):
        checksums.verify_bundled(fake)


def test_bundled_detector_refuses_a_replaced_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facesr.restoration import mtcnn

    fake = tmp_path / "mtcnn.safetensors"
    fake.write_bytes(mtcnn.WEIGHTS.read_bytes()[:-1] + b"\0")
    from facesr import checksums

    monkeypatch.setattr(checksums, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        mtcnn.MTCNN().load_weights(fake)


PRETRAINED = pretrained_path()
needs_pretrained = pytest.mark.skipif(
    not PRETRAINED.is_file(), reason=f"general-SR weights not found at {PRETRAINED} (../shared/pretrained)"
)


def _flipped_copy(dst: Path) -> Path:
    """A copy of the shared RLFN file (a small stand-in when it is absent) with its last byte flipped."""
    if PRETRAINED.is_file():
        data = bytearray(PRETRAINED.read_bytes())
    else:
        src = dst.parent / "stand_in.safetensors"
        save_file({"conv_1.weight": torch.zeros(2, 3, 3, 3)}, str(src))
        data = bytearray(src.read_bytes())
    data[-1] ^= 0xFF  # tensor data, not the header: the file still parses
    dst.write_bytes(bytes(data))
    return dst


def test_shared_pretrained_weights_are_hash_checked(tmp_path: Path) -> None:
    """A byte-flipped file under a recorded name is refused wherever it lives, in one line naming it."""
    from facesr.checksums import PRETRAINED_SHA256, verify_pretrained
    from facesr.nets.fast import JDSRFast, init_from_general_sr
    from facesr.nets.rlfn import read_pretrained_rlfn

    bad = _flipped_copy(tmp_path / "rlfn_prune_x4_div2k.safetensors")
    for load in (
        lambda: read_pretrained_rlfn(bad),
        lambda: init_from_general_sr(JDSRFast(4), str(bad)),
        lambda: zoo.load_model(bad),  # named by path
    ):
        with pytest.raises(ModelError, match=r"rlfn_prune_x4_div2k\.safetensors .*fails its sha256") as err:
            load()
        assert "\n" not in str(err.value) and "shared/pretrained/README.md" in str(err.value)
    span = tmp_path / "span_ch28_x4_div2k.safetensors"
    span.write_bytes(bad.read_bytes())
    with pytest.raises(ModelError, match=r"span_ch28_x4_div2k\.safetensors .*fails its sha256"):
        verify_pretrained(span)
    assert set(PRETRAINED_SHA256) == {"rlfn_prune_x4_div2k.safetensors", "span_ch28_x4_div2k.safetensors"}


@needs_pretrained
def test_shared_pretrained_files_pass_and_are_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from facesr import checksums
    from facesr.nets.rlfn import read_pretrained_rlfn

    for name in checksums.PRETRAINED_SHA256:
        checksums.verify_pretrained(PRETRAINED.parent / name)  # the shared files pass
    assert sum(v.numel() for v in read_pretrained_rlfn().values()) == 317_218
    calls = []
    real = checksums.sha256_file
    monkeypatch.setattr(checksums, "sha256_file", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(checksums, "_HASH_CACHE", {})
    for _ in range(3):
        read_pretrained_rlfn()
    assert len(calls) == 1  # once per (path, size, mtime) per process


def test_renamed_pretrained_copy_is_not_checked(tmp_path: Path) -> None:
    """The user's own general-SR file under another name has no known hash: loaded, not refused."""
    from facesr.nets.rlfn import read_pretrained_rlfn

    mine = _flipped_copy(tmp_path / "my_rlfn.safetensors")
    assert read_pretrained_rlfn(mine)  # loads; its keys/shapes are checked where they are used


def test_user_vgg16_weights_have_no_known_hash_but_a_sidecar_is_checked(tmp_path: Path) -> None:
    from facesr.losses.perceptual import ImageNetVGG16Features

    vgg = tmp_path / "vgg16.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, str(vgg))
    with pytest.raises(ModelError, match="not VGG-16 weights"):  # no hash known: on to the key check
        ImageNetVGG16Features(vgg)
    (tmp_path / "vgg16.safetensors.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(ModelError, match=r"vgg16\.safetensors\.sha256"):
        ImageNetVGG16Features(vgg)


def test_onnx_cache_key_includes_metadata() -> None:
    pytest.importorskip("onnxruntime")
    from facesr.restoration.engine import _weights_key

    a = zoo.Restorer(_Net(), name="a", scale=4, output_key="sr", meta={"facesr.output_key": "sr"})
    b = zoo.Restorer(_Net(), name="a", scale=4, output_key="aux", meta={"facesr.output_key": "aux"})
    b.load_state_dict(a.state_dict())
    assert _weights_key(a) != _weights_key(b)


class _Overflow(nn.Module):
    """Finite weights, but its output overflows to inf (and inf - inf = NaN) in some faces, in fp32."""

    scale, lr_size, hr_size, name = 4, 32, 128, "overflow"

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        self.every = every

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        out = up.clone()
        out[:: self.every] = (up[:: self.every] + 1.0) * 1e38 * 1e38 - 1e38 * 1e38  # inf, then NaN
        return out


def test_non_finite_output_is_refused_not_pasted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finite weights can still give NaN/inf (fp32 overflow): before, quantise turned them into black
    (NaN) or white (inf) squares pasted with exit 0. Now such a face is kept with its reason, an
    ``--aligned`` crop is a one-line ModelError, and a background network's NaN tile is refused."""
    import numpy as np

    import facesr.restoration.api as api
    from facesr.io import read_image
    from facesr.restoration.background import BackgroundUpsampler
    from facesr.restoration.pipeline import run_model

    sample = Path(zoo.__file__).parent / "samples" / "rwmfd_0002_0078.jpg"
    crowd = read_image(sample)[40:200, 0:270].copy()
    lr = torch.rand(2, 3, 32, 32)
    sr, _ = run_model(_Overflow(), lr, "fp32", 2)
    assert torch.isnan(sr).all()
    inf = nn.Upsample(scale_factor=4)
    inf.forward = lambda x: (F.interpolate(x, scale_factor=4) + 1.0) * float("inf")  # type: ignore[method-assign]
    sr, _ = run_model(inf, lr, "fp32", 2)
    assert torch.isnan(sr).all()  # inf is not clamped to a finite 1 (white): the caller can refuse it
    net = _Overflow(every=2)  # every other face of a batch
    monkeypatch.setattr(api.ModelPicker, "candidates", lambda self: {32: (net.name, 4)})
    monkeypatch.setattr(api.ModelPicker, "get", lambda self, name, scale: net)
    monkeypatch.setattr(api, "mask_model", lambda device: None)
    res = api.restore(crowd, device="cpu", upscale=1, engine="torch")
    tried = [f for f in res.faces if f.model == "overflow"]
    refused = [f for f in tried if "NaN or inf" in (f.reason or "")]
    assert len(tried) >= 2 and refused and all(f.status == "kept" for f in refused)
    assert len(refused) < len(tried)  # the finite faces of the same batch go on as before
    with pytest.raises(ModelError, match="NaN or inf") as err:
        api.restore(np.ascontiguousarray(crowd[60:92, 60:92]), device="cpu", aligned=True, engine="torch")
    assert "\n" not in str(err.value)
    bg = BackgroundUpsampler(name="overflow-bg", net=_Overflow(), factor=4)
    with pytest.raises(ModelError, match="background upsampler overflow-bg gave NaN or inf"):
        bg(crowd, 4)
