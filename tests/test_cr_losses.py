"""CR loss terms on inputs with known answers (facesr.losses.cr)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facesr.losses import cr as L


def test_lsgan_known_values() -> None:
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert L.lsgan_d(ones, zeros).item() == 0.0
    assert L.lsgan_d(zeros, ones).item() == pytest.approx(1.0)
    assert L.lsgan_d(ones, ones).item() == pytest.approx(0.5)
    assert L.lsgan_g(ones).item() == 0.0
    assert L.lsgan_g(zeros).item() == pytest.approx(1.0)
    assert L.lsgan_g(torch.full((3,), 0.5)).item() == pytest.approx(0.25)


def test_pixel_and_cycle_l1_known_values() -> None:
    a = torch.zeros(1, 3, 8, 8)
    assert L.sr_pixel(a + 0.25, a).item() == pytest.approx(0.25)
    assert L.cycle_l1(a - 0.5, a).item() == pytest.approx(0.5)


def test_gaussian_blur_keeps_constants_and_removes_checkerboard() -> None:
    c = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(L.gaussian_blur(c, 1.0), c, atol=1e-6)
    assert torch.equal(L.gaussian_blur(c, 0.0), c)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checker = ((yy + xx) % 2).float().expand(1, 3, 16, 16)
    assert L.gaussian_blur(checker, 1.5).std() < 0.1 * checker.std()


def test_content_preservation_plain_and_blurred() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert L.content_preservation(x, x).item() == 0.0
    assert L.content_preservation(x + 0.1, x).item() == pytest.approx(0.1, abs=1e-6)
    # a constant shift is low-frequency content: the blurred variant still sees all of it
    assert L.content_preservation(x + 0.1, x, blur_sigma=1.0).item() == pytest.approx(0.1, abs=1e-5)
    # a +-0.1 checkerboard is high-frequency characteristic: the blurred variant mostly ignores it
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    noise = 0.1 * (2 * ((yy + xx) % 2).float() - 1)
    plain = L.content_preservation(x + noise, x).item()
    blurred = L.content_preservation(x + noise, x, blur_sigma=1.5).item()
    assert plain == pytest.approx(0.1, abs=1e-6)
    assert blurred < 0.02


class _Offset(nn.Module):
    """A stand-in SR net: nearest x4 up-sampling plus a learnable constant."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=4, mode="nearest") + self.bias


def test_cr_term_known_value_and_gradients_only_into_gc() -> None:
    gs = _Offset(0.2)
    consistified = torch.full((2, 3, 16, 16), 0.5, requires_grad=True)
    loss = L.characteristic_regularisation(consistified, gs, scale=4)
    assert loss.item() == pytest.approx(0.2, abs=1e-5)  # down(up(c) + 0.2) - c = 0.2 everywhere
    loss.backward()
    assert gs.bias.grad is None  # G_S frozen inside the term
    assert gs.bias.requires_grad  # ...and restored afterwards
    assert consistified.grad is not None and consistified.grad.abs().sum() > 0


def test_cr_term_zero_for_degradation_consistent_sr() -> None:
    gs = _Offset(0.0)
    c = torch.full((1, 3, 16, 16), 0.4)
    assert L.characteristic_regularisation(c, gs).item() == pytest.approx(0.0, abs=1e-6)


def test_frozen_restores_flags_on_error() -> None:
    net = nn.Linear(2, 2)
    net.bias.requires_grad_(False)
    with pytest.raises(RuntimeError), L.frozen(net):
        assert not net.weight.requires_grad
        raise RuntimeError("boom")
    assert net.weight.requires_grad and not net.bias.requires_grad
