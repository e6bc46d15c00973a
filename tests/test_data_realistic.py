"""Real-world LR degradations: seeded, shapes at every scale, each degradation visible on its own."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from facesr.data.realistic import DegradationSettings, RealDegradation, gaussian_kernels
from facesr.resample import downsample

OFF = DegradationSettings(
    clean_prob=0.0, blur_prob=0.0, rescale_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, aniso_prob=0.0
)


def _faces(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    base = torch.rand(n, 3, 32, 32, generator=g)
    return F.interpolate(base, size=(128, 128), mode="bilinear", align_corners=False)  # textured, smooth


def _run(settings: DegradationSettings, hr: torch.Tensor, scale: int = 4, seed: int = 0) -> torch.Tensor:
    return RealDegradation(settings)(hr, scale, torch.Generator().manual_seed(seed))


def _highfreq(x: torch.Tensor) -> float:
    return float((x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean())


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_shapes_range_and_seeded(scale: int) -> None:
    hr = _faces()
    a = _run(DegradationSettings(), hr, scale, seed=5)
    b = _run(DegradationSettings(), hr, scale, seed=5)
    c = _run(DegradationSettings(), hr, scale, seed=6)
    assert a.shape == (6, 3, 128 // scale, 128 // scale)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    torch.testing.assert_close(a, b)  # same seed, same degradations (JPEG included)
    assert not torch.equal(a, c)


def test_clean_faces_are_the_benchmark_bicubic() -> None:
    hr = _faces()
    out = _run(replace(DegradationSettings(), clean_prob=1.0), hr)
    torch.testing.assert_close(out, downsample(hr, 4))


def test_each_degradation_is_visible_alone() -> None:
    hr = _faces()
    # the same seed draws the same resampling methods, so OFF is each run's reference without the one degradation
    clean = _run(OFF, hr)
    blurred = _run(replace(OFF, blur_prob=1.0, blur_sigma=(1.5, 1.6)), hr)
    assert _highfreq(blurred) < 0.85 * _highfreq(clean)
    noisy = _run(replace(OFF, noise_prob=1.0, noise_sigma=(8.0, 10.0)), hr)
    resid = noisy - clean
    assert 6 / 255 < float(resid.std()) < 11 / 255
    jpeg = _run(replace(OFF, jpeg_prob=1.0, jpeg_quality=(20, 20)), hr)
    assert 0.002 < float((jpeg - clean).abs().mean()) < 0.25
    rescaled = _run(replace(OFF, rescale_prob=1.0, rescale_range=(0.5, 0.5)), hr)
    assert _highfreq(rescaled) < 0.9 * _highfreq(clean)


def test_gaussian_kernels_are_normalised_and_anisotropic() -> None:
    k = gaussian_kernels(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.0]), 9)
    torch.testing.assert_close(k.sum(dim=(1, 2)), torch.ones(2))
    torch.testing.assert_close(k[0], k[0].T)  # isotropic: symmetric
    assert float(k[1].sum(0).max()) < float(k[1].sum(1).max())  # wider along x than along y


def test_config_ranges_are_checked() -> None:
    from facesr.errors import ConfigError
    from facesr.train.config import load_train_config

    with pytest.raises(ConfigError, match="noise_sigma"):
        load_train_config(None, ["data.degradation.noise_sigma=[5,1]"])
    with pytest.raises(ConfigError, match="jpeg_quality"):
        load_train_config(None, ["data.degradation.jpeg_quality=[50,120]"])
