"""Calibration of facesr.eval.metrics against scikit-image and closed forms.

PSNR/SSIM are compared with scikit-image on real UTKFace faces degraded with PIL bicubic (RGB and the
BasicSR Y channel, the latter computed independently here in numpy); FRD against the analytic
Frechet distance between Gaussians; TAR/EER against score sets whose answers are known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.eval.metrics import (
    MetricError,
    create_metric,
    embedding_stats,
    equal_error_rate,
    frechet_distance_from_stats,
    list_metrics,
    tar_at_far,
)

SK_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


def _faces(shared_data, n: int = 4) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """n real HR faces (128x128) and their x4/x8 bicubic down-up versions, uint8."""
    files = sorted((shared_data / "utkface").glob("*.jpg"))[::997][:n]
    hr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((128, 128), Image.BICUBIC)) for f in files])
    deg = {
        s: np.stack(
            [
                np.asarray(
                    Image.fromarray(h)
                    .resize((128 // s, 128 // s), Image.BICUBIC)
                    .resize((128, 128), Image.BICUBIC)
                )
                for h in hr
            ]
        )
        for s in (4, 8)
    }
    return hr, deg


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).double() / 255.0


def _y_basicsr(a01: np.ndarray) -> np.ndarray:
    """BasicSR rgb2ycbcr(y_only=True) for float RGB in [0, 1], output in [0, 1] (written independently)."""
    return (a01 @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0


@pytest.mark.needs_data
def test_psnr_ssim_match_skimage_on_real_faces(shared_data) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    hr, deg = _faces(shared_data)
    for s in (4, 8):
        ours = {m: create_metric(m)(_t(deg[s]), _t(hr)).numpy() for m in ("psnr", "ssim", "psnr_y", "ssim_y")}
        for k in range(len(hr)):
            a, b = deg[s][k] / 255.0, hr[k] / 255.0
            assert abs(ours["psnr"][k] - peak_signal_noise_ratio(b, a, data_range=1.0)) < 1e-4
            assert abs(ours["ssim"][k] - structural_similarity(b, a, channel_axis=-1, **SK_SSIM)) < 1e-5
            ya, yb = _y_basicsr(a), _y_basicsr(b)
            assert abs(ours["psnr_y"][k] - peak_signal_noise_ratio(yb, ya, data_range=1.0)) < 1e-4
            assert abs(ours["ssim_y"][k] - structural_similarity(yb, ya, **SK_SSIM)) < 1e-5
        # the degradations are real: the metrics are far from their identical-image values
        assert ours["psnr"].max() < 40 and ours["ssim"].max() < 0.99


@pytest.mark.needs_data
def test_y_metrics_equal_basicsr_scale_255(shared_data) -> None:
    """BasicSR computes on Y in [0, 255] with C1 = (0.01*255)^2; that is the same number."""
    from skimage.metrics import structural_similarity

    hr, deg = _faces(shared_data, n=2)
    ya = _y_basicsr(deg[8][0] / 255.0) * 255.0
    yb = _y_basicsr(hr[0] / 255.0) * 255.0
    mse = np.mean((ya - yb) ** 2)
    ref_psnr = 20.0 * math.log10(255.0 / math.sqrt(mse))
    ref_ssim = structural_similarity(
        yb, ya, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0
    )
    assert create_metric("psnr_y")(_t(deg[8][:1]), _t(hr[:1])).item() == pytest.approx(ref_psnr, abs=1e-6)
    assert create_metric("ssim_y")(_t(deg[8][:1]), _t(hr[:1])).item() == pytest.approx(ref_ssim, abs=1e-9)


def test_ssim_non_square_and_identical_images() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 40, 57, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = create_metric("ssim")(a, b)
    for k in range(2):
        ref = structural_similarity(
            a[k].permute(1, 2, 0).numpy(), b[k].permute(1, 2, 0).numpy(), channel_axis=-1, **SK_SSIM
        )
        assert abs(ours[k].item() - ref) < 1e-12
    assert create_metric("ssim")(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert create_metric("psnr")(a, a).tolist() == pytest.approx([100.0, 100.0])


def test_bad_inputs_are_metric_errors() -> None:
    with pytest.raises(MetricError, match="same shape"):
        create_metric("psnr")(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(MetricError, match="at least 11x11"):
        create_metric("ssim")(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(MetricError, match="unknown metric"):
        create_metric("fid")
    assert list_metrics() == ["psnr", "ssim", "psnr_y", "ssim_y", "identity", "frd", "verification"]


def test_frd_from_stats_matches_closed_form() -> None:
    """Diagonal covariances: d = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2 exactly."""
    g = torch.Generator().manual_seed(0)
    d = 64
    a = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    mu1, mu2 = (
        torch.randn(d, generator=g, dtype=torch.float64),
        torch.randn(d, generator=g, dtype=torch.float64),
    )
    # rotate both by the same orthogonal matrix: the distance is invariant, the matrices are dense
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    c1, c2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    got = frechet_distance_from_stats(q @ mu1, c1, q @ mu2, c2)
    assert got == pytest.approx(expected, rel=1e-9)
    # non-commuting covariances: compare with scipy's sqrtm formula (pytorch-fid's)
    from scipy import linalg

    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    c3 = m @ m.T / d + 0.01 * torch.eye(d, dtype=torch.float64)
    covmean = linalg.sqrtm(c1.numpy() @ c3.numpy()).real
    ref = float(((mu1 - mu2) ** 2).sum()) + float(
        np.trace(c1.numpy()) + np.trace(c3.numpy()) - 2 * np.trace(covmean)
    )
    assert frechet_distance_from_stats(mu1, c1, mu2, c3) == pytest.approx(ref, rel=1e-7)
    assert frechet_distance_from_stats(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-9)


def test_frd_on_samples_converges_to_closed_form() -> None:
    g = torch.Generator().manual_seed(3)
    d, n = 8, 200_000
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5
    y = torch.randn(n, d, generator=g, dtype=torch.float64) * 2.0 + 1.0
    expected = d * 1.0 + d * (0.5 - 2.0) ** 2  # |mu|^2 + sum (sigma1 - sigma2)^2
    assert create_metric("frd")(x, y) == pytest.approx(expected, rel=0.01)
    _, cov = embedding_stats(y[:5])
    assert torch.allclose(cov, torch.from_numpy(np.cov(y[:5].numpy(), rowvar=False)))


def test_verification_known_answers() -> None:
    imp = torch.arange(100, dtype=torch.float64)  # 0..99
    gen = torch.arange(100, dtype=torch.float64) + 10  # 10..109
    eer, thr = equal_error_rate(gen, imp)
    assert eer == pytest.approx(0.45) and thr == 55.0  # FAR(55) = 45/100 = FRR(55)
    # FAR <= 1% with 100 impostors: at most one impostor (99) accepted -> t just above 98; gen > 98: 11
    assert tar_at_far(gen, imp, 0.01) == pytest.approx(11 / 100)
    assert tar_at_far(gen, imp, 0.001) == pytest.approx(10 / 100)  # no impostor accepted: gen > 99
    assert tar_at_far(gen + 1000, imp, 0.01) == 1.0
    assert equal_error_rate(gen + 1000, imp)[0] == 0.0
    # ties at the threshold are rejected
    assert (
        tar_at_far(torch.full((4,), 5.0, dtype=torch.float64), torch.full((10,), 5.0, dtype=torch.float64))
        == 0.0
    )
    res = create_metric("verification", far=0.01)(gen, imp)
    assert res["n_genuine"] == 100 and res["eer"] == pytest.approx(0.45)


def test_verification_gaussian_scores_match_analytic() -> None:
    from scipy.stats import norm

    g = torch.Generator().manual_seed(5)
    d = 2.5
    gen = torch.randn(400_000, generator=g, dtype=torch.float64) + d
    imp = torch.randn(400_000, generator=g, dtype=torch.float64)
    assert equal_error_rate(gen, imp)[0] == pytest.approx(norm.cdf(-d / 2), abs=2e-3)
    assert tar_at_far(gen, imp, 0.01) == pytest.approx(
        norm.sf(norm.ppf(0.99) - d), abs=0.01
    )  # ~4 sigma of sampling error
    with pytest.raises(MetricError):
        create_metric("verification", far=1.5)
