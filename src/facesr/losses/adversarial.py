"""WGAN-GP adversarial terms (papers.md 1.3 / 1.4).

[SECONDARY J3] the discriminator follows WGAN-GP. The formulas are Gulrajani et al. (2017):

* generator: -E[D(G(x))]  (weight 1e-3 [UNSTATED -> PROPOSAL]);
* critic: E[D(fake)] - E[D(real)] + lambda_GP * E[(||grad D(x_hat)||_2 - 1)^2] with x_hat a random
  per-sample interpolate of real and fake (lambda_GP = 10, the WGAN-GP default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[D(fake)]: the generator raises the critic's score of its outputs."""
    return -d_fake.mean()


def wgan_gp_terms(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[D(real)] - E[D(fake)], GP) from ONE critic pass over ``[real, fake, x_hat]``.

    ``x_hat = eps * real + (1 - eps) * fake`` with ``eps`` one weight per sample (shape ``[B, 1, 1, 1]``);
    GP = E[(||grad_x D(x_hat)||_2 - 1)^2] with ``create_graph=True`` so that it back-propagates into the
    critic's weights. ``real`` and ``fake`` are detached (these terms train the critic only). One pass
    over the concatenated batch instead of three keeps a DDP-wrapped or compiled critic to one forward.
    ``autocast`` (e.g. the training context's) wraps the critic call; scores are taken in fp32. The
    critic loss is ``-wasserstein + lambda_GP * gp``.
    """
    real, fake = real.detach(), fake.detach()
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    n = real.shape[0]
    with (autocast or contextlib.nullcontext)():
        scores = critic(torch.cat([real, fake, x_hat])).float()
    s_real, s_fake, s_mix = scores[:n], scores[n : 2 * n], scores[2 * n :]
    (grad,) = torch.autograd.grad(s_mix.sum(), x_hat, create_graph=True)
    gp = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    return s_real.mean() - s_fake.mean(), gp
