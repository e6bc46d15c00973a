"""WGAN-GP adversarial terms (papers.md 1.3 / 1.4).

[SECONDARY J3] the discriminator follows WGAN-GP. The formulas are Gulrajani et al. (2017):

* generator: -E[D(G(x))]  (weight 1e-3 [UNSTATED -> PROPOSAL]);
* critic: E[D(fake)] - E[D(real)] + lambda_GP * E[(||grad D(x_hat)||_2 - 1)^2] with x_hat a random
  per-sample interpolate of real and fake (lambda_GP = 10, the WGAN-GP default).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[D(fake)]: the generator raises the critic's score of its outputs."""
    return -d_fake.mean()


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """E[D(fake)] - E[D(real)] (the negated Wasserstein estimate; zero when both scores agree)."""
    return d_fake.mean() - d_real.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per sample.

    ``fake`` is detached (the penalty trains the critic only); ``create_graph=True`` so the penalty itself
    can be back-propagated into the critic's weights. ``eps`` may be given for tests.
    """
    if eps is None:
        eps = torch.rand(
            real.shape[0],
            *([1] * (real.dim() - 1)),
            device=real.device,
            dtype=real.dtype,
            generator=generator,
        )
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
