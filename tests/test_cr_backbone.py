"""Issue 19: CR on the LR-space pretrained backbone (G_S = RLFN at x4, 16 -> 64), degraded artificial LR,
the genuine validation split and its benchmark (``genuine-lr-val``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.data.genuine import GenuineSet
from facesr.eval.results import read_result
from facesr.nets.cr import build_cr, make_gs
from facesr.nets.fast import FastSRModule
from facesr.nets.rlfn import pretrained_path
from facesr.train.config import load_train_config
from facesr.train.loop import load_checkpoint, train
from facesr.train.recipes import cr as T
from facesr.zoo import load_model, save_weights

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "cr_tiny_cpu.yaml"
PRETRAINED = pretrained_path()
needs_pretrained = pytest.mark.skipif(
    not PRETRAINED.is_file(), reason=f"no general-SR weights at {PRETRAINED}"
)


def test_rlfn_gs_is_the_lr_space_backbone_16_to_64() -> None:
    gs = make_gs("rlfn")
    assert isinstance(gs, FastSRModule)
    assert gs(torch.rand(2, 3, 16, 16)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="gs_arch"):
        make_gs("unet")


def test_rlfn_cr_file_carries_its_sizes(tmp_path: Path) -> None:
    args = {"gc_width": 8, "gc_blocks": 1, "gs_arch": "rlfn"}
    net = build_cr(**args).eval()
    path = tmp_path / "cr.safetensors"
    save_weights(net, path, arch="cr", args=args, scale=8, lr_size=16, hr_size=128, dtype=None)
    restorer = load_model(path)
    assert (restorer.lr_size, restorer.hr_size) == (16, 128)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(restorer(x), net(x).clamp(0, 1), atol=1e-6)


def test_luma_consistifier_changes_brightness_only(tmp_path: Path) -> None:
    """``cr.nets.gc_luma``: G_C adds the same change to R, G and B (no colour fringes), and a stage-B run
    exports ``gc_luma`` in its arch args so that the file loads as the network it trained."""
    from facesr.nets.cr import Consistifier

    gc = Consistifier(8, 1, luma=True)
    torch.nn.init.normal_(gc.tail.weight, std=0.1)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        d = gc(x) - x
    assert d.abs().max() > 0
    assert torch.allclose(d[:, 0], d[:, 1], atol=1e-6) and torch.allclose(d[:, 1], d[:, 2], atol=1e-6)
    a = train(load_train_config(TINY, ["recipe.name=cr_a", f"run.out_dir={tmp_path / 'a'}", "run.steps=1"]))
    over = ["recipe.name=cr_b", f"run.out_dir={tmp_path / 'b'}", f"cr.init={a}", "run.steps=2"]
    b = train(load_train_config(TINY, [*over, "cr.nets.gc_luma=true"]))
    net = load_model(b / "weights.safetensors").net
    assert net.gc.luma and net.gc.tail.out_channels == 1


@needs_pretrained
def test_stage_a_starts_from_general_sr_and_stage_b_freezes_it(tmp_path: Path) -> None:
    from facesr.nets.rlfn import body_state, read_pretrained_rlfn

    over = ["cr.nets.gs_arch=rlfn", "cr.degrade=true", "run.steps=1", "optim.lr=1e-12"]
    a = train(load_train_config(TINY, ["recipe.name=cr_a", f"run.out_dir={tmp_path / 'a'}", *over]))
    body, _ = body_state(read_pretrained_rlfn())
    ema = load_checkpoint(a / "ckpt" / "last.pt")["ema"]
    assert torch.allclose(ema["gs.body.conv_1.weight"], body["conv_1.weight"])  # lr ~0: still pretrained
    b = train(
        load_train_config(
            TINY, ["recipe.name=cr_b", f"run.out_dir={tmp_path / 'b'}", f"cr.init={a}", *over[:1]]
        )
    )
    gs_b = {k: v for k, v in load_checkpoint(b / "ckpt" / "last.pt")["ema"].items() if k.startswith("gs.")}
    assert all(torch.equal(gs_b[k], ema[k]) for k in gs_b)


def test_batcher_degrades_artificial_lr_seeded() -> None:
    hr = (np.arange(8 * 64 * 64 * 3) % 253).astype(np.uint8).reshape(8, 64, 64, 3)
    clean = T.CRBatcher(hr, None, 8, "cpu", 0, flip=False).next_batch()
    deg = T.CRBatcher(hr, None, 8, "cpu", 0, flip=False, degrade=True).next_batch()
    again = T.CRBatcher(hr, None, 8, "cpu", 0, flip=False, degrade=True).next_batch()
    assert deg["lr_art"].shape == (8, 3, 16, 16)
    assert torch.equal(deg["lr_art"], again["lr_art"])  # seeded
    assert not torch.equal(deg["lr_art"], clean["lr_art"])


class _StubFaceID:
    """Stand-in for the identity network (as in test_cr_eval): a fixed random projection."""

    def __init__(self) -> None:
        self.w = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0))

    def embed(self, img01: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.interpolate(img01, size=(16, 16), mode="area")
        return torch.nn.functional.normalize(small.flatten(1) @ self.w, dim=1)


def _genuine(folder: Path, photos: int = 20, per_photo: int = 2) -> GenuineSet:
    folder.mkdir()
    n = photos * per_photo
    rng = np.random.default_rng(0)
    np.save(folder / "lr16.npy", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
    # photos 0-5 are test; one face per photo is a 40 px (train-only) face
    split = np.array([1 if i // per_photo < 6 else 0 for i in range(n)], np.uint8)
    np.save(folder / "split.npy", split)
    meta = [
        {"row": i, "path": f"rwmfd/{i // per_photo}.jpg", "native_size": 20.0 if i % per_photo == 0 else 40.0}
        for i in range(n)
    ]
    (folder / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return GenuineSet.load(folder)


def test_val_split_is_by_photo_and_never_straddles(tmp_path: Path) -> None:
    gset = _genuine(tmp_path / "g")
    photo = lambda rows: {gset.meta[r]["path"] for r in rows}  # noqa: E731
    train, val, test = gset.indices("train"), gset.indices("val"), gset.indices("test")
    assert len(val) == round(0.2 * 14)  # 14 train photos with a small face, one small face each
    assert all(gset.meta[r]["native_size"] <= 32 for r in val)
    assert (
        not (photo(val) & photo(train))
        and not (photo(val) & photo(test))
        and not (photo(train) & photo(test))
    )
    # train + val come from the built train split; the 40 px faces of val photos are in neither
    assert set(train) | set(val) < set(gset.indices("train_all"))
    assert len(train) + len(val) == len(gset.indices("train_all")) - len(val)
    assert np.array_equal(gset.indices("val"), _genuine(tmp_path / "again").indices("val"))  # seeded


def test_genuine_lr_val_benchmark_uses_val_faces_and_train_reference(tmp_path: Path) -> None:
    from facesr.eval.genuine import run_genuine_eval

    gdir, pdir = tmp_path / "g", tmp_path / "p"
    gset = _genuine(gdir)
    pdir.mkdir()
    rng = np.random.default_rng(1)
    np.save(pdir / "faces64.npy", rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8))
    np.save(pdir / "split.npy", np.array([0, 1] * 6, np.uint8))
    out = tmp_path / "results"
    run_genuine_eval(
        [("bicubic-x4", "bicubic")],
        genuine_dir=gdir,
        prepared_dir=pdir,
        out_dir=out,
        face_id=_StubFaceID(),
        masked_ref=False,
    )
    doc = read_result(out / "genuine-lr-val__bicubic-x4.json")
    assert doc["protocol"]["split"] == "val" and doc["protocol"]["n_faces"] == len(gset.indices("val"))
    assert "TRAIN faces" in doc["protocol"]["target"] and len(doc["frd_bootstrap"]["values"]) == 1000
    ids = {p["id"].split("#")[0] for p in doc["per_image"]}
    assert not ids & {gset.meta[r]["path"] for r in gset.indices("test")}
    test = json.loads((out / "genuine-lr__bicubic-x4.json").read_text())
    assert test["protocol"]["split"] == "test"


def test_restore_routes_a_genuine_small_face_through_the_consistifier(tmp_path: Path) -> None:
    """``facesr restore --model <CR file>``: the face is taken at the file's own 16 px input size and
    comes back in the 128 px frame, through G_S(G_C(x))."""
    from facesr.restoration.api import ModelPicker, restore

    args = {"gc_width": 8, "gc_blocks": 1, "gs_arch": "rlfn"}
    path = tmp_path / "cr-test.safetensors"
    save_weights(build_cr(**args).eval(), path, arch="cr", args=args, scale=8, lr_size=16, hr_size=128)
    assert list(ModelPicker(str(path), torch.device("cpu")).candidates()) == [16]
    crop = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    res = restore(crop, model=str(path), device="cpu", aligned=True)
    assert res.image.shape == (128, 128, 3) and res.faces[0].model == "cr-test"
