"""CR networks: shapes, identity start of G_C, zoo registration and the 16 -> 128 Restorer contract."""

from __future__ import annotations

import torch

from facesr.nets.cr import Consistifier, PatchDiscriminator, SRNet, build_cr
from facesr.zoo import build_arch, load_model, save_weights


def test_shapes() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert SRNet(8, 1)(x).shape == (2, 3, 64, 64)
    assert Consistifier(8, 1)(x).shape == x.shape
    assert PatchDiscriminator(16, 8)(x).shape == (2, 1, 4, 4)
    assert PatchDiscriminator(64, 8)(torch.rand(2, 3, 64, 64)).shape == (2, 1, 4, 4)


def test_consistifier_starts_as_identity() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(Consistifier(8, 2)(x), x)


def test_discriminator_is_spectrally_normalised() -> None:
    d = PatchDiscriminator(16, 8)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    assert all(hasattr(m, "parametrizations") for m in convs)


def test_registered_archs_and_output_sizes() -> None:
    x = torch.rand(1, 3, 16, 16)
    small = {"gs_width": 8, "gs_blocks": 1}
    assert build_arch("cr", {"gc_width": 8, "gc_blocks": 1, **small})(x).shape == (1, 3, 128, 128)
    assert build_arch("cr_sr_only", {**small, "out_size": 64})(x).shape == (1, 3, 64, 64)
    assert build_arch("cycle_sr", {"gc_width": 8, "gc_blocks": 1, **small})(x).shape == (1, 3, 128, 128)


def test_default_cr_fits_16_mib_in_fp16() -> None:
    n = sum(p.numel() for p in build_cr().parameters())
    assert 2 * n < 16 * 2**20


def test_save_load_roundtrip_is_a_16px_restorer(tmp_path) -> None:
    net = build_cr(gc_width=8, gc_blocks=1, gs_width=8, gs_blocks=1).eval()
    path = tmp_path / "cr.safetensors"
    save_weights(
        net,
        path,
        arch="cr",
        args={"gc_width": 8, "gc_blocks": 1, "gs_width": 8, "gs_blocks": 1},
        scale=8,
        dtype=None,
    )
    restorer = load_model(path)
    assert restorer.lr_size == 16
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(restorer(x), net(x).clamp(0, 1), atol=1e-6)
