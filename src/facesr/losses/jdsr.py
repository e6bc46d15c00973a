"""The JDSR-GAN objective: every loss term of papers.md 1.4 combined with configurable weights.

L_G = L_denoise + L_SR + w_adv * L_adv, where (weights default to the papers.md proposal values)

* L_denoise (on the denoised LR and the noise map): pixel, asymmetric + TV on the noise map, perceptual,
  style, smooth;
* L_SR (on the coarse and SR images and the priors): pixel (SR and coarse), face prior, perceptual,
  smooth, identity;
* L_adv: WGAN-GP generator term from the critic.

The term lists are [PAPER figure]; the formulas and weights are [UNSTATED -> PROPOSAL] (see each
function's module). Perceptual/style features default to face-recognition features (the dlib ResNet),
because no ImageNet VGG-16 can be obtained offline; set ``perceptual_features: imagenet_vgg16`` and
``vgg16_weights`` to use a VGG you have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from facesr.config import Strict
from facesr.losses.adversarial import generator_loss
from facesr.losses.identity import identity_loss
from facesr.losses.noise import asymmetric_loss, noise_target, tv_l2
from facesr.losses.perceptual import (
    FaceRecognitionFeatures,
    build_feature_extractor,
    perceptual_loss,
    style_loss,
)
from facesr.losses.pixel import masked_l1, pixel_l1
from facesr.losses.prior import prior_loss
from facesr.losses.smoothness import tv_l1


class JDSRLossWeights(Strict):
    """Loss weights and loss settings (all PROPOSAL values from papers.md 1.3 / 1.4 unless noted)."""

    # denoising module
    dn_pixel: float = 1.0
    dn_asymmetric: float = 0.5
    asymmetric_alpha: float = 0.3
    dn_noise_tv: float = 0.05
    dn_perceptual: float = 0.1
    dn_style: float = 10.0
    dn_smooth: float = 0.01  # papers.md offers 1 (FCSR-GAN LR stage) or 0.01; 1 over-smooths a mean-TV
    # PROPOSAL (jdsr_fast, session 5): L1 inside the lower-face region a mask covers (or would cover, on the
    # unmasked faces), on top of the whole-image L1. The region is ~30 % of a face, so the whole-image mean
    # gives the part that must be drawn (or kept: an unmasked mouth) a small share of the gradient.
    # 0 = off (the paper's objective).
    dn_mask_pixel: float = 0.0
    # SR module
    sr_pixel: float = 1.0  # applied to both the SR and the coarse image (FSRNet supervises both)
    sr_prior: float = 1.0
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    sr_perceptual: float = 0.01
    sr_smooth: float = 0.01
    sr_identity: float = 0.1
    sr_mask_pixel: float = 0.0  # as dn_mask_pixel, on the SR image (PROPOSAL)
    # PROPOSAL (jdsr_fast, session 6): L1 of the SR module fed the *clean* LR (no mask, no degradation)
    # against the HR. In the joint step the SR module only sees the denoiser's imperfect output of masked,
    # degraded LR and learns to sharpen and repaint it, which costs it on clean LR: the shipped x4 SR
    # module trails the same network trained on clean LR alone by 0.7 dB on unmasked faces
    # (docs/jdsr-fast.md, session 6). The denoiser's job is to hand it clean LR; this term keeps the SR
    # module good at exactly that. Needs a generator with ``forward(lr, lr_clean)`` (jdsr_fast).
    sr_clean_pixel: float = 0.0
    # adversarial (WGAN-GP)
    adversarial: float = 1e-3
    gp_lambda: float = 10.0
    # feature extractor for the perceptual and style terms
    perceptual_features: Literal["face_recognition", "imagenet_vgg16"] = "face_recognition"
    vgg16_weights: str | None = None


class JDSRLoss(nn.Module):
    """Callable objective: ``loss(out, batch, critic=None) -> (total, {term: unweighted value})``.

    ``out`` is :class:`facesr.nets.jdsr.JDSRGenerator`'s dict; ``batch`` holds ``lr_masked``,
    ``lr_clean``, ``hr``, ``heatmaps`` and ``parsing`` (MaskedFaceBatcher's keys). Terms with weight 0
    are skipped (not computed). The identity network and feature extractor are frozen sub-modules, so
    ``.to(device)`` moves them. Returned term values are detached, ready for logging.
    """

    def __init__(self, weights: JDSRLossWeights | None = None, face_id: nn.Module | None = None) -> None:
        super().__init__()
        self.w = weights or JDSRLossWeights()
        needs_face_id = self.w.sr_identity > 0 or self.w.perceptual_features == "face_recognition"
        if face_id is None and needs_face_id:
            from facesr.nets.face_id import load_face_id

            face_id = load_face_id()
        self.face_id = face_id
        needs_features = any(v > 0 for v in (self.w.dn_perceptual, self.w.dn_style, self.w.sr_perceptual))
        self.features = (
            build_feature_extractor(self.w.perceptual_features, self.w.vgg16_weights, face_id)
            if needs_features
            else None
        )

    def forward(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], critic: nn.Module | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w = self.w
        terms: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []

        def add(name: str, weight: float, fn: Callable[[], torch.Tensor]) -> None:
            if weight > 0:
                value = fn()
                terms[name] = value.detach()
                weighted.append(weight * value)

        x, y_lr, y_hr = batch["lr_masked"], batch["lr_clean"], batch["hr"]
        den, sr = out["denoised"], out["sr"]
        # --- denoising module ---
        if "noise_map" in out:
            sigma = noise_target(x, y_lr)
            add(
                "dn_asymmetric",
                w.dn_asymmetric,
                lambda: asymmetric_loss(out["noise_map"], sigma, w.asymmetric_alpha),
            )
            add("dn_noise_tv", w.dn_noise_tv, lambda: tv_l2(out["noise_map"]))
        add("dn_pixel", w.dn_pixel, lambda: pixel_l1(den, y_lr))
        # the mask region of every face, masked or not (``mask_region``): the term then rewards keeping an
        # unmasked mouth or beard as much as drawing a masked one. On the worn masks only (``occlusion``),
        # it taught the session-5 x8 denoiser that a dark lower face is a mask (beards erased, real photos)
        region = batch.get("mask_region", batch.get("occlusion"))
        if region is not None:
            add("dn_mask_pixel", w.dn_mask_pixel, lambda: masked_l1(den, y_lr, region))
            add("sr_mask_pixel", w.sr_mask_pixel, lambda: masked_l1(sr, y_hr, region))
        if self.features is not None and (w.dn_perceptual > 0 or w.dn_style > 0):
            f_den = self.features(den)
            with torch.no_grad():
                f_ylr = self.features(y_lr)
            add("dn_perceptual", w.dn_perceptual, lambda: perceptual_loss(f_den, f_ylr))
            add("dn_style", w.dn_style, lambda: style_loss(f_den, f_ylr))
        add("dn_smooth", w.dn_smooth, lambda: tv_l1(den))
        # --- SR module ---
        # the LR-space models (jdsr_fast) have no coarse image and no prior branch
        coarse_l1 = (lambda: pixel_l1(out["coarse"], y_hr)) if "coarse" in out else (lambda: 0.0)
        add("sr_pixel", w.sr_pixel, lambda: pixel_l1(sr, y_hr) + coarse_l1())
        if "sr_clean" in out:
            add("sr_clean_pixel", w.sr_clean_pixel, lambda: pixel_l1(out["sr_clean"], y_hr))
        add(
            "sr_prior",
            w.sr_prior if "heatmaps" in out else 0.0,
            lambda: prior_loss(
                out["heatmaps"],
                batch["heatmaps"],
                out["parsing"],
                batch["parsing"],
                w.prior_alpha,
                w.prior_beta,
            ),
        )
        shared = (
            w.sr_perceptual > 0
            and w.sr_identity > 0
            and self.face_id is not None
            and isinstance(self.features, FaceRecognitionFeatures)
            and hasattr(self.face_id, "embed_and_features")
        )
        if shared:  # face-recognition perceptual + identity: one network pass per image, not two
            with torch.no_grad():
                e_hr, f_hr = self.face_id.embed_and_features(y_hr)
            e_sr, f_sr = self.face_id.embed_and_features(sr)
            add("sr_perceptual", w.sr_perceptual, lambda: perceptual_loss(f_sr, f_hr))
            add("sr_identity", w.sr_identity, lambda: identity_loss(e_sr, e_hr))
        elif self.features is not None and w.sr_perceptual > 0:
            with torch.no_grad():
                f_hr = self.features(y_hr)
            add("sr_perceptual", w.sr_perceptual, lambda: perceptual_loss(self.features(sr), f_hr))
        add("sr_smooth", w.sr_smooth, lambda: tv_l1(sr))
        if not shared and self.face_id is not None and w.sr_identity > 0:
            with torch.no_grad():
                e_hr = self.face_id.embed(y_hr)
            add("sr_identity", w.sr_identity, lambda: identity_loss(self.face_id.embed(sr), e_hr))
        # --- adversarial ---
        if critic is not None:
            add("adversarial", w.adversarial, lambda: generator_loss(critic(sr)))
        total = torch.stack(weighted).sum() if weighted else sr.new_zeros(())
        return total, terms
