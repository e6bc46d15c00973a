"""JDSR-GAN generator, baselines and critic: shapes, sizes, gradients, registry."""

from __future__ import annotations

import pytest
import torch

from facesr.nets.jdsr import JDSRGenerator, count_parameters

KEYS_LR = ("noise_map", "denoised")
KEYS_HR = {"coarse": 3, "sr": 3}


def _check_shapes(out: dict[str, torch.Tensor], batch: int, lr: int) -> None:
    for k in KEYS_LR:
        assert out[k].shape == (batch, 3, lr, lr), k
    for k, c in KEYS_HR.items():
        assert out[k].shape == (batch, c, 128, 128), k
        assert out[k].min() >= 0 and out[k].max() <= 1, k
    assert out["heatmaps"].shape == (batch, 68, 64, 64)
    assert out["parsing"].shape == (batch, 11, 64, 64)
    assert (out["noise_map"] >= 0).all()


@pytest.mark.parametrize("scale", [4, 8])
def test_lite_shapes(scale: int) -> None:
    g = JDSRGenerator("lite", scale).eval()
    with torch.no_grad():
        _check_shapes(g(torch.rand(2, 3, 128 // scale, 128 // scale)), 2, 128 // scale)


@pytest.mark.slow
def test_paper_shapes_both_scales() -> None:
    g = JDSRGenerator("paper", 4).eval()
    with torch.no_grad():
        _check_shapes(g(torch.rand(1, 3, 32, 32)), 1, 32)
        # x4 and x8 share every weight shape; only the input size differs
        _check_shapes(g(torch.rand(1, 3, 16, 16)), 1, 16)
    assert count_parameters(g) == count_parameters(JDSRGenerator("paper", 8))


def test_sizes() -> None:
    lite, paper = JDSRGenerator("lite"), JDSRGenerator("paper")
    assert count_parameters(lite) <= 5_000_000
    assert count_parameters(paper) > 2 * count_parameters(lite)
    # same code path: identical module structure, only widths differ
    assert [n for n, _ in lite.named_modules()] == [n for n, _ in paper.named_modules()]


def test_unknown_size_and_setting_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown JDSR size"):
        JDSRGenerator("huge")
    with pytest.raises(ValueError, match="unknown JDSR size setting"):
        JDSRGenerator("lite", trunkk=3)
    with pytest.raises(ValueError, match="scale"):
        JDSRGenerator("lite", 3)


def test_every_parameter_gets_a_gradient_from_the_total_loss() -> None:
    from facesr.losses.jdsr import JDSRLoss
    from facesr.nets.discriminators import WGANCritic

    g = JDSRGenerator("lite", 8)
    loss = JDSRLoss()
    critic = WGANCritic(width=8)
    hr = torch.rand(2, 3, 128, 128)
    lr_clean = torch.nn.functional.interpolate(hr, size=(16, 16), mode="area")
    lr_masked = lr_clean.clone()
    lr_masked[:, :, 9:, 4:12] = 0.8
    batch = {
        "lr_masked": lr_masked,
        "lr_clean": lr_clean,
        "hr": hr,
        "heatmaps": torch.rand(2, 68, 64, 64),
        "parsing": torch.rand(2, 11, 64, 64),
    }
    total, terms = loss(g(lr_masked), batch, critic=critic)
    expected = {
        "dn_pixel",
        "dn_asymmetric",
        "dn_noise_tv",
        "dn_perceptual",
        "dn_style",
        "dn_smooth",
        "sr_pixel",
        "sr_prior",
        "sr_perceptual",
        "sr_smooth",
        "sr_identity",
        "adversarial",
    }
    assert set(terms) == expected
    assert all(torch.isfinite(v) for v in terms.values())
    total.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient for {missing[:5]}"


def test_registry_and_baselines() -> None:
    from facesr.zoo import Restorer, build_arch

    for arch in ("jdsr", "jdsr_sr_only", "jdsr_two_stage"):
        net = build_arch(arch, {"size": "lite", "scale": 8}).eval()
        r = Restorer(net, name=arch, scale=8, output_key="sr")
        with torch.no_grad():
            assert r(torch.rand(1, 3, 16, 16)).shape == (1, 3, 128, 128)


def test_critic_has_no_batchnorm_and_scores_per_image() -> None:
    from facesr.nets.discriminators import WGANCritic

    d = WGANCritic()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())
    x = torch.rand(3, 3, 128, 128)
    scores = d(x)
    assert scores.shape == (3,)
    # per-sample independence (what the gradient penalty needs): image 0's score ignores the others
    assert torch.allclose(d(x[:1]), scores[:1], atol=1e-5)
