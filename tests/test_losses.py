"""Loss terms: zero at identity, positive otherwise, and their defining properties."""

from __future__ import annotations

import pytest
import torch

from facesr.losses.adversarial import generator_loss, wgan_gp_terms
from facesr.losses.identity import identity_loss
from facesr.losses.noise import asymmetric_loss, noise_target, tv_l2
from facesr.losses.perceptual import build_feature_extractor, gram, perceptual_loss, style_loss
from facesr.losses.pixel import masked_l1, pixel_l1
from facesr.losses.prior import prior_loss
from facesr.losses.smoothness import tv_l1


@pytest.fixture(scope="module")
def face_features() -> torch.nn.Module:
    return build_feature_extractor("face_recognition")


def _pair(shape: tuple[int, ...] = (2, 3, 32, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.rand(shape)
    return a, (a + 0.1 * torch.randn(shape)).clamp(0, 1)


@pytest.mark.parametrize("fn", [pixel_l1, lambda a, b: tv_l1(a - b), lambda a, b: asymmetric_loss(a, b)])
def test_pairwise_image_losses_zero_at_identity(fn) -> None:
    a, b = _pair()
    assert fn(a, a.clone()).item() == 0.0
    assert fn(a, b).item() > 0.0


def test_single_image_regularisers() -> None:
    flat = torch.full((1, 3, 16, 16), 0.4)
    noisy = torch.rand(1, 3, 16, 16)
    assert tv_l1(flat).item() == 0.0 and tv_l1(noisy).item() > 0.0
    assert tv_l2(flat).item() == 0.0 and tv_l2(noisy).item() > 0.0


def test_asymmetric_penalises_under_estimation_more() -> None:
    sigma = torch.full((1, 3, 8, 8), 0.5)
    under = asymmetric_loss(sigma - 0.2, sigma, alpha=0.3)
    over = asymmetric_loss(sigma + 0.2, sigma, alpha=0.3)
    assert under.item() > over.item() > 0
    assert under.item() == pytest.approx(0.7 * 0.04, rel=1e-5)
    assert over.item() == pytest.approx(0.3 * 0.04, rel=1e-5)


def test_noise_target_is_abs_difference() -> None:
    x, y = _pair()
    assert torch.equal(noise_target(x, y), (x - y).abs())
    assert noise_target(x, x).abs().sum() == 0


def test_prior_loss() -> None:
    h, p = torch.rand(2, 68, 64, 64), torch.rand(2, 11, 64, 64)
    assert prior_loss(h, h.clone(), p, p.clone()).item() == 0.0
    assert prior_loss(h, h + 0.1, p, p).item() == pytest.approx(0.01, rel=1e-4)
    assert prior_loss(h, h, p, p + 0.1, beta=2.0).item() == pytest.approx(0.02, rel=1e-4)


def test_identity_loss() -> None:
    e = torch.nn.functional.normalize(torch.randn(4, 128), dim=1)
    assert identity_loss(e, e.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert identity_loss(e, -e).item() == pytest.approx(2.0, abs=1e-5)
    assert identity_loss(e, torch.nn.functional.normalize(torch.randn(4, 128), dim=1)).item() > 0


@pytest.mark.parametrize("size", [32, 128])
def test_perceptual_and_style_on_face_features(face_features, size: int) -> None:
    a, b = _pair((2, 3, size, size))
    fa, fb = face_features(a), face_features(b)
    assert len(fa) == 3
    assert perceptual_loss(fa, face_features(a.clone())).item() == 0.0
    assert style_loss(fa, face_features(a.clone())).item() == 0.0
    assert perceptual_loss(fa, fb).item() > 0.0
    assert style_loss(fa, fb).item() > 0.0


def test_gram_normalisation() -> None:
    f = torch.ones(1, 2, 3, 4)
    assert torch.allclose(gram(f), torch.full((1, 2, 2), 12.0 / 24.0))


def test_vgg_without_weights_is_a_clear_error(tmp_path) -> None:
    from facesr.errors import ModelError

    with pytest.raises(ModelError, match="need a weights file"):
        build_feature_extractor("imagenet_vgg16")
    with pytest.raises(ModelError, match="not found"):
        build_feature_extractor("imagenet_vgg16", tmp_path / "missing.safetensors")


def test_vgg_loads_torchvision_named_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    from facesr.losses.perceptual import ImageNetVGG16Features

    state = {}
    for idx, cin, cout in ImageNetVGG16Features._CONVS:
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3) * 0.05
        state[f"features.{idx}.bias"] = torch.zeros(cout)
    path = tmp_path / "vgg.safetensors"
    save_file(state, str(path))
    feats = build_feature_extractor("imagenet_vgg16", path)(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 128, 128), (128, 64, 64), (256, 32, 32)]


def _gp(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The gradient penalty of wgan_gp_terms (what the JDSR recipe trains with), eps ~ U(0, 1) per sample."""
    return wgan_gp_terms(critic, real, fake, torch.rand(real.shape[0], 1, 1, 1))[1]


def test_adversarial_terms() -> None:
    fake = torch.tensor([0.5, 0.5])
    assert generator_loss(fake).item() == -0.5
    # D(x) = <w, x>: E[D(real)] - E[D(fake)] = <w, mean(real) - mean(fake)>; zero when they agree
    w = torch.randn(3, 8, 8)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake, eps = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), torch.rand(4, 1, 1, 1)
    wasserstein, _ = wgan_gp_terms(critic, real, fake, eps)
    assert wasserstein.item() == pytest.approx((w * (real.mean(0) - fake.mean(0))).sum().item(), abs=1e-4)
    assert wgan_gp_terms(critic, real, real.clone(), eps)[0].item() == 0.0


def test_gradient_penalty_closed_form_on_linear_critic() -> None:
    # D(x) = <w, x>: the gradient is w everywhere, so GP = (||w||_2 - 1)^2 for any interpolate.
    w = torch.randn(3, 8, 8)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    gp = _gp(critic, real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1.0) ** 2, rel=1e-5)
    w_unit = w / w.norm()
    assert _gp(lambda x: (x * w_unit).flatten(1).sum(1), real, fake).item() == pytest.approx(0, abs=1e-8)


def test_gradient_penalty_trains_the_critic() -> None:
    from facesr.nets.discriminators import WGANCritic

    d = WGANCritic(width=4)
    gp = _gp(d, torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128))
    gp.backward()
    # every weight is trained by the penalty; the final bias cannot be (it does not change grad_x D)
    assert all(p.grad is not None for n, p in d.named_parameters() if n != "head.bias")


def test_jdsr_loss_weights_config() -> None:
    from facesr.config import build
    from facesr.errors import ConfigError
    from facesr.losses.jdsr import JDSRLossWeights

    w = JDSRLossWeights()
    assert (w.dn_asymmetric, w.asymmetric_alpha, w.sr_identity, w.adversarial, w.gp_lambda) == (
        0.5,
        0.3,
        0.1,
        1e-3,
        10.0,
    )
    with pytest.raises(ConfigError, match="unknown key"):
        build(JDSRLossWeights, {"sr_identiy": 1.0})


def test_jdsr_loss_zero_terms_at_identity() -> None:
    from facesr.losses.jdsr import JDSRLoss, JDSRLossWeights

    hr = torch.rand(1, 3, 128, 128)
    y_lr = torch.rand(1, 3, 32, 32)
    h, p = torch.rand(1, 68, 64, 64), torch.rand(1, 11, 64, 64)
    batch = {"lr_masked": y_lr, "lr_clean": y_lr, "hr": hr, "heatmaps": h, "parsing": p}
    perfect = {
        "noise_map": torch.zeros_like(y_lr),
        "denoised": y_lr,
        "coarse": hr,
        "heatmaps": h,
        "parsing": p,
        "sr": hr,
    }
    weights = JDSRLossWeights(dn_smooth=0.0, sr_smooth=0.0)
    total, terms = JDSRLoss(weights)(perfect, batch)
    assert set(terms) == {
        "dn_pixel",
        "dn_asymmetric",
        "dn_noise_tv",
        "dn_perceptual",
        "dn_style",
        "sr_pixel",
        "sr_prior",
        "sr_perceptual",
        "sr_identity",
    }
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    worse = dict(perfect, sr=(hr + 0.1).clamp(0, 1))
    total2, terms2 = JDSRLoss(weights)(worse, batch)
    assert total2.item() > 0 and terms2["sr_pixel"].item() > 0 and terms2["sr_identity"].item() > 0


def test_masked_l1_counts_only_covered_pixels_across_the_batch() -> None:
    """The error outside the region does not count; coverage is resized to the image; empty -> 0."""
    a = torch.zeros(2, 3, 32, 32)
    b = torch.zeros(2, 3, 32, 32)
    b[:, :, 16:] = 1.0  # lower half wrong
    b[:, :, :4] = 0.5  # top rows wrong too, outside the mask
    occ = torch.zeros(2, 1, 128, 128)
    occ[0, :, 64:] = 1.0  # face 0 masked on its lower half (HR size), face 1 unmasked
    assert masked_l1(a, b, occ).item() == pytest.approx(1.0)
    assert masked_l1(a, b, torch.zeros(2, 1, 32, 32)).item() == 0.0
    assert masked_l1(a, a, occ).item() == 0.0


def test_jdsr_loss_mask_terms_are_off_by_default_and_on_when_weighted() -> None:
    from facesr.losses.jdsr import JDSRLoss, JDSRLossWeights

    lr, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 128, 128)
    occ = torch.zeros(2, 1, 128, 128)
    occ[:, :, 64:] = 1.0
    batch = {"lr_masked": lr, "lr_clean": lr, "hr": hr, "occlusion": occ}
    out = {"denoised": lr.flip(-1), "sr": hr.flip(-1)}
    plain = dict(dn_perceptual=0, dn_style=0, sr_perceptual=0, sr_identity=0, sr_prior=0, adversarial=0)
    _, terms = JDSRLoss(JDSRLossWeights(**plain))(out, batch)
    assert "dn_mask_pixel" not in terms and "sr_mask_pixel" not in terms
    _, terms = JDSRLoss(JDSRLossWeights(**plain, dn_mask_pixel=1.0, sr_mask_pixel=0.5))(out, batch)
    assert terms["dn_mask_pixel"] > 0 and terms["sr_mask_pixel"] > 0
    # the region of every face (mask_region) wins over the worn masks only (occlusion)
    unmasked = {**batch, "occlusion": torch.zeros_like(occ), "mask_region": occ}
    _, terms = JDSRLoss(JDSRLossWeights(**plain, dn_mask_pixel=1.0))(out, unmasked)
    assert terms["dn_mask_pixel"] > 0
