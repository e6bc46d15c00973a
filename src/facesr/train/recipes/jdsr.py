"""Recipes for JDSR-GAN and its baselines: which network trains on what, with which losses.

All four recipes share the data, the loss terms, the budget and the loop (:mod:`facesr.train.loop`);
they differ in one thing each, so that the comparison is fair:

=====================  ===========================  ==========================  ======================
recipe                 network (zoo arch)           input -> target             losses
=====================  ===========================  ==========================  ======================
``jdsr``               JDSRGenerator (``jdsr``)     masked LR -> clean HR       denoise + SR + adv
``sr_only``            SR module (``jdsr_sr_only``) masked LR -> clean HR       SR + adv
``two_stage_denoiser`` denoiser (part file)         masked LR -> clean LR       denoise
``two_stage_sr``       SR module (``jdsr_sr_only``) clean LR -> clean HR        SR + adv
=====================  ===========================  ==========================  ======================

* ``jdsr`` is the paper's joint end-to-end training [SECONDARY J3]. The optional denoiser warm-up
  (``recipe.warmup_steps``: denoising loss only) and switching the adversarial term on after it are
  FCSR-GAN's scheme, proposed in papers.md 1.5 [PROPOSAL].
* ``sr_only`` feeds the masked LR straight to the SR module: what does the denoiser add? [PROPOSAL]
* ``two_stage_*`` are the paper's baseline shape (CBDNet, then FSRNet) [PAPER figure J2]: each stage is
  trained alone on its own task, and :func:`combine_two_stage` chains them into one ``jdsr_two_stage``
  file for evaluation.

The critic is the WGAN-GP critic of papers.md 1.3 (lambda_GP = 10, D:G = 1:1 by default). Random
numbers (the GP interpolation weights) are drawn for the GLOBAL batch and sliced per rank, so a
2-process run computes what a 1-process run computes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import ConfigError, ModelError
from facesr.geometry import HR_SIZE
from facesr.losses.adversarial import generator_loss
from facesr.losses.jdsr import JDSRLossWeights
from facesr.train.config import TrainConfig
from facesr.train.loop import Context, Updater
from facesr.train.recipes import register_recipe
from facesr.train.warmstart import load_part, warm_start

HR = HR_SIZE  # preview grids are shown in the 128x128 template frame


def _item(v: torch.Tensor | float) -> torch.Tensor | float:
    """A loggable value: tensors stay on their device (detached), so logging needs no host sync per
    step; the loop's Meter averages them and reads them once per ``run.log_every`` steps."""
    return v.detach() if isinstance(v, torch.Tensor) else float(v)


def _up(x: torch.Tensor) -> torch.Tensor:
    """LR images shown at 128x128 in preview grids (nearest, so pixels stay visible)."""
    return F.interpolate(x.float(), size=(HR, HR), mode="nearest")


#: Differences from the JDSR-GAN paper that hold for every run of this trainer (papers.md 1.4-1.6).
JDSR_DIFFERENCES = (
    "Data: UTKFace (aligned to the facesr 5-point template at 128x128), not CelebA; split by content hash.",
    "Masks: MaskTheFace-style templates warped onto 68 dlib landmarks (the paper's templates are unknown).",
    "Identity and perceptual/style features: dlib face-recognition ResNet (face-api.js port), not VGG/ArcFace.",
    "Parsing-map prior: landmark polygons (no face-parsing network is available offline).",
    "Optimiser, lr schedule, batch size, loss weights, warm-up: PROPOSAL values (unstated in the paper).",
)


class Recipe:
    """Shared machinery: build the generator (and critic), compute losses, update, preview, export."""

    #: log keys shown on the progress bar
    headline: frozenset[str] = frozenset({"G/total", "D/wasserstein"})
    #: which batch entry is the network input
    input_key = "lr_masked"
    uses_denoise_loss = True
    uses_sr_loss = True
    #: networks whose gradients the Updater all-reduces itself instead of DDP: the critic, because its
    #: gradient penalty needs torch.autograd.grad, which DDP does not support (PyTorch DDP docs)
    sync_manually: frozenset[str] = frozenset({"D"})
    #: the config sections this family owns beyond the shared ones (none), and its ``loss`` schema
    sections: ClassVar[dict[str, type]] = {}
    loss_weights = JDSRLossWeights
    #: differences from the paper that hold for every run of this family (the draft card lists them)
    card_differences: tuple[str, ...] = JDSR_DIFFERENCES
    #: whether ``recipe.warmup_steps`` means anything to this recipe
    uses_warmup = False

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """Recipe-specific config rules (ValueError -> one-line ConfigError)."""
        if cfg.recipe.warmup_steps and not cls.uses_warmup:
            raise ValueError("recipe.warmup_steps is only used by recipe jdsr")

    @classmethod
    def benchmark_hint(cls, cfg: TrainConfig, weights: Path) -> str:
        """Which ``facesr eval`` scores this kind of run (for the draft card)."""
        return f"`facesr eval --model {weights} --benchmark utk-mask-x{cfg.data.scale}`"

    @classmethod
    def make_batcher(cls, cfg: TrainConfig, data_device: torch.device, seed: int) -> tuple[Any, Any, str]:
        """The JDSR family's data: :class:`facesr.data.datasets.MaskedFaceBatcher` (see :func:`masked_face_batcher`)."""
        return masked_face_batcher(cfg, data_device, seed)

    def __init__(self, cfg: TrainConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.weights = JDSRLossWeights.model_validate(cfg.loss)
        self.generator = self.build_generator()
        # loss.sr_clean_pixel: the joint jdsr_fast generator also runs its SR module on the clean LR
        self.sr_clean = self.weights.sr_clean_pixel > 0 and self.uses_sr_loss
        if self.sr_clean and not (self.arch == "jdsr_fast" and self.uses_denoise_loss):
            raise ConfigError(
                f"loss.sr_clean_pixel needs the joint recipe with model.arch jdsr_fast (got recipe "
                f"{cfg.recipe.name!r}, arch {self.arch!r}); set it to 0"
            )
        if cfg.model.init_from:
            warm_start(self.generator, cfg.model.init_from, self.arch, cfg.model.init_only)
        self.generator.to(ctx.device)
        self.adversarial = cfg.recipe.adversarial and self.uses_sr_loss and self.weights.adversarial > 0
        self.critic: nn.Module | None = None
        if self.adversarial:
            from facesr.nets.discriminators import WGANCritic

            try:
                self.critic = WGANCritic(**cfg.model.critic)
            except TypeError as exc:
                raise ConfigError(f"model.critic: {exc}") from None
            if cfg.model.critic_init_from:
                load_part(self.critic, cfg.model.critic_init_from, "model.critic_init_from")
            self.critic.to(ctx.device)
        self.channels_last = cfg.run.channels_last
        if self.channels_last:  # NHWC weights: convolutions then produce NHWC activations too
            self.generator.to(memory_format=torch.channels_last)
            if self.critic is not None:
                self.critic.to(memory_format=torch.channels_last)
        self.denoise_loss, self.sr_loss = self.build_losses()
        self.nets: dict[str, nn.Module] = {"G": self.generator}
        if self.critic is not None:
            self.nets["D"] = self.critic
        self.G: nn.Module = self.generator
        self.D: nn.Module | None = self.critic

    def build_losses(self) -> tuple[nn.Module | None, nn.Module | None]:
        """Two JDSRLoss objects: the denoising-module terms and the SR-module terms.

        They are kept apart because the warm-up and the two-stage recipes use one group alone; the
        adversarial term is applied by :meth:`step` (one critic pass per update, DDP-friendly), so it is
        zeroed in both. One frozen face-recognition network is shared by both.
        """
        from facesr.losses.jdsr import JDSRLoss

        w = self.weights
        fields = type(w).model_fields
        dn = {k: 0.0 for k in fields if k.startswith("sr_")} | {"adversarial": 0.0}
        sr = {k: 0.0 for k in fields if k.startswith("dn_")} | {"adversarial": 0.0}
        needs_id = (w.sr_identity > 0 and self.uses_sr_loss) or (
            w.perceptual_features == "face_recognition"
            and (
                (self.uses_denoise_loss and (w.dn_perceptual > 0 or w.dn_style > 0))
                or (self.uses_sr_loss and w.sr_perceptual > 0)
            )
        )
        face_id = None
        if needs_id:
            from facesr.nets.face_id import load_face_id

            face_id = load_face_id(self.ctx.device)
        dev = self.ctx.device
        den = JDSRLoss(w.model_copy(update=dn), face_id=face_id).to(dev) if self.uses_denoise_loss else None
        srl = JDSRLoss(w.model_copy(update=sr), face_id=face_id).to(dev) if self.uses_sr_loss else None
        return den, srl

    # -- construction ---------------------------------------------------------------------------
    def arch_args(self) -> dict[str, Any]:
        m = self.cfg.model
        return {"size": m.size, "scale": self.cfg.data.scale, **m.overrides}

    def build_generator(self) -> nn.Module:
        from facesr.zoo import build_arch

        try:
            return build_arch(self.arch, self.arch_args())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.overrides: cannot build {self.arch!r}: {exc}") from None

    @property
    def arch(self) -> str:
        return self.cfg.model.arch

    def trainable(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser (``G`` and, with the adversarial term, ``D``)."""
        return {k: [p for p in v.parameters() if p.requires_grad] for k, v in self.nets.items()}

    def bind(self) -> None:
        """Wrap the generator for DDP (after weights are loaded: DDP broadcasts rank 0's weights).

        The critic stays unwrapped (see :attr:`sync_manually`); every rank starts from the same seeded
        weights, and its gradients are averaged by its Updater, so its replicas stay identical.
        """
        self.G = self.ctx.wrap(self.generator, find_unused=self.find_unused)
        if self.cfg.run.compile:  # the critic stays eager: its gradient penalty needs double backward
            self.G = torch.compile(self.G)

    @property
    def find_unused(self) -> bool:
        return False

    # -- one training step ----------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.input_key]
        extra = [batch["lr_clean"]] if self.sr_clean else []
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            extra = [t.contiguous(memory_format=torch.channels_last) for t in extra]
        with self.ctx.autocast():
            return self.G(x, *extra)

    def generator_loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum of the recipe's loss terms (without the adversarial term) and the terms for logging."""
        terms: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=self.ctx.device)
        # JDSRLoss reads both images; the group not in use gets a stand-in it never looks at.
        full = {"denoised": batch["lr_clean"], "sr": batch["hr"], **out}
        with self.ctx.autocast():
            if self.denoise_loss is not None:
                t, parts = self.denoise_loss(full, batch)
                total = total + t.float()
                terms.update({f"G/{k}": v for k, v in parts.items()})
            if self.sr_loss is not None and not self.in_warmup(step):
                t, parts = self.sr_loss(full, batch)
                total = total + t.float()
                terms.update({f"G/{k}": v for k, v in parts.items()})
        return total, terms

    def in_warmup(self, step: int) -> bool:
        return False

    def adv_on(self, step: int) -> bool:
        return self.critic is not None and step >= self.cfg.adv_start

    def critic_update(
        self, real: torch.Tensor, fake: torch.Tensor, up: Updater
    ) -> dict[str, torch.Tensor | float]:
        """One WGAN-GP critic update: E[D(fake)] - E[D(real)] + lambda * (|grad D(mix)| - 1)^2."""
        assert self.D is not None
        b_global = self.cfg.data.batch_size
        from facesr.losses.adversarial import wgan_gp_terms

        alpha = self.ctx.rand(b_global, 1, 1, 1).to(real.dtype)
        wasserstein, gp = wgan_gp_terms(self.D, real, fake, alpha, self.ctx.autocast)
        up(-wasserstein + self.weights.gp_lambda * gp)
        return {"D/wasserstein": _item(wasserstein), "D/gp": _item(gp)}

    def step(
        self, batch: dict[str, torch.Tensor], step: int, updaters: dict[str, Updater]
    ) -> dict[str, torch.Tensor | float]:
        """One generator update (and ``d_steps_per_g`` critic updates when the critic is on)."""
        logs: dict[str, torch.Tensor | float] = {}
        out = self.forward(batch)
        loss, terms = self.generator_loss(out, batch, step)
        if self.adv_on(step):
            assert self.critic is not None
            for _ in range(self.cfg.recipe.d_steps_per_g - 1):
                extra = self.ctx.fetch()
                with torch.no_grad():
                    fake = self.forward(extra)["sr"].float()
                logs.update(self.critic_update(extra["hr"], fake, updaters["D"]))
            logs.update(self.critic_update(batch["hr"], out["sr"].detach().float(), updaters["D"]))
            self.critic.requires_grad_(False)  # G step: no critic gradients needed
            with self.ctx.autocast():
                adv = generator_loss(self.critic(out["sr"]).float())
            self.critic.requires_grad_(True)
            loss = loss + self.weights.adversarial * adv
            terms["G/adv"] = adv
        updaters["G"](loss)
        logs["G/total"] = _item(loss)
        logs.update({k: _item(v) for k, v in terms.items()})
        return logs

    # -- preview and export ---------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Columns of the preview grid: input | (denoised) | output | target."""
        out = net(batch[self.input_key].to(self.ctx.device))
        cols = [_up(batch[self.input_key])]
        if "denoised" in out:
            cols.append(_up(out["denoised"]))
        return [*cols, out["sr"], batch["hr"]]

    def export(self, net: nn.Module, run_dir: Path, meta: dict[str, str]) -> Path:
        """Write the EMA generator as fp16 safetensors that :func:`facesr.zoo.load_model` can load."""
        from facesr.zoo import save_weights

        path = run_dir / "weights.safetensors"
        save_weights(
            net,
            path,
            arch=self.arch,
            args=self.arch_args(),
            scale=self.cfg.data.scale,
            output_key="sr",
            extra=meta,
            lr_size=getattr(net, "lr_size", None),  # the network's own input size
        )
        if self.critic is not None:  # so that a later run can warm-start the critic too
            save_weights(
                self.critic,
                run_dir / "critic.safetensors",
                arch="wgan_critic",
                args={},
                scale=self.cfg.data.scale,
            )
        return path


@register_recipe("jdsr")
class JointRecipe(Recipe):
    """JDSR-GAN: the whole generator end to end (optional denoiser-only warm-up first)."""

    uses_warmup = True

    def in_warmup(self, step: int) -> bool:
        return step < self.cfg.recipe.warmup_steps

    @property
    def find_unused(self) -> bool:
        # During the warm-up only the denoiser gets gradients; DDP must be told.
        return self.cfg.recipe.warmup_steps > 0


@register_recipe("sr_only")
class SROnlyRecipe(Recipe):
    """SR module fed the masked LR directly (no denoiser, no denoising loss)."""

    uses_denoise_loss = False

    @property
    def arch(self) -> str:
        # the ablation of the LR-space model is its own SR module alone, not the paper's
        return "jdsr_fast_sr_only" if self.cfg.model.arch == "jdsr_fast" else "jdsr_sr_only"


@register_recipe("two_stage_sr")
class TwoStageSRRecipe(SROnlyRecipe):
    """Two-stage baseline, stage 2: the SR module alone on clean LR -> HR (FSRNet's task)."""

    input_key = "lr_clean"


@register_recipe("two_stage_denoiser")
class TwoStageDenoiserRecipe(Recipe):
    """Two-stage baseline, stage 1: the denoiser alone on masked LR -> clean LR (CBDNet's task)."""

    uses_sr_loss = False
    headline = frozenset({"G/total"})

    def build_generator(self) -> nn.Module:
        from facesr.nets.jdsr import Denoiser, resolve_size

        base: Any = self.cfg.model.size
        fast = self.cfg.model.arch == "jdsr_fast"
        if fast:  # the LR-space family's own denoiser widths (nets.fast), not a named paper size
            from facesr.nets.fast import FAST_DENOISER

            base = FAST_DENOISER
        try:
            size = resolve_size(base, self.cfg.model.overrides)
        except ValueError as exc:
            raise ConfigError(f"model.overrides: {exc}") from None
        from facesr.geometry import input_size

        denoiser = Denoiser(size, input_size(self.cfg.data.scale))
        if fast:  # as in JDSRFast: identity at the start, so both two-stage parts start where joint does
            nn.init.zeros_(denoiser.unet.out.weight)
            nn.init.zeros_(denoiser.unet.out.bias)
        return _DenoiserOnly(denoiser)

    @torch.no_grad()
    def preview(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        out = net(batch[self.input_key].to(self.ctx.device))
        return [_up(batch["lr_masked"]), _up(out["denoised"]), _up(batch["lr_clean"]), batch["hr"]]

    def export(self, net: nn.Module, run_dir: Path, meta: dict[str, str]) -> Path:
        """A part file (not a restorer): ``denoiser.safetensors``, for :func:`combine_two_stage`."""
        from facesr.zoo import save_weights

        path = run_dir / "denoiser.safetensors"
        save_weights(
            net.denoiser,
            path,
            arch="jdsr_denoiser_part",
            args=self.arch_args(),
            scale=self.cfg.data.scale,
            output_key="denoised",
            extra={**meta, "facesr.part": "denoiser"},
        )
        return path


class _DenoiserOnly(nn.Module):
    """The denoiser with the generator's output dict (``noise_map``, ``denoised``)."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        noise_map, denoised = self.denoiser(lr)
        return {"noise_map": noise_map, "denoised": denoised}


def combine_two_stage(
    denoiser_file: str | os.PathLike[str], sr_file: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Path:
    """Chain a trained denoiser (stage 1) and SR module (stage 2) into one ``jdsr_two_stage`` file.

    Both parts must have been trained with the same size settings and scale (checked from their
    metadata); the result loads with :func:`facesr.zoo.load_model` like any restorer.
    """
    import json

    from safetensors import safe_open

    from facesr.zoo import build_arch, save_weights, verify_known_sha256

    def read(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
        verify_known_sha256(path)  # issue 17: a zoo file or one with a sidecar is hash-checked
        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                return dict(fh.metadata() or {}), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except Exception as exc:
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None

    d_meta, d_state = read(denoiser_file)
    s_meta, s_state = read(sr_file)
    if d_meta.get("facesr.part") != "denoiser":
        raise ModelError(f"{denoiser_file}: not a two_stage_denoiser part (facesr.part != denoiser)")
    # the paper family chains into jdsr_two_stage; the LR-space family's parts are exactly JDSRFast's
    # two sub-modules (denoiser.*, sr_module.*), so they chain into a plain jdsr_fast file
    target = {"jdsr_sr_only": "jdsr_two_stage", "jdsr_fast_sr_only": "jdsr_fast"}.get(
        s_meta.get("facesr.arch", "")
    )
    if target is None:
        raise ModelError(f"{sr_file}: not an SR-module file (arch {s_meta.get('facesr.arch')!r})")
    d_args, s_args = json.loads(d_meta["facesr.args"]), json.loads(s_meta["facesr.args"])
    if d_args != s_args:
        raise ModelError(f"two-stage parts were built with different settings: {d_args} vs {s_args}")
    net = build_arch(target, s_args)
    state = {f"denoiser.{k}": v for k, v in d_state.items()} | s_state
    own = net.state_dict()
    state = {k: v.to(own[k].dtype) for k, v in state.items() if k in own}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"two-stage parts do not fit {target} (missing {missing[:3]})")
    out = Path(out)
    save_weights(
        net,
        out,
        arch=target,
        args=s_args,
        scale=int(s_meta["facesr.scale"]),
        output_key="sr",
        lr_size=getattr(net, "lr_size", None),
        extra={
            "facesr.recipe": "two_stage",
            "facesr.parts": f"{Path(denoiser_file).name} + {Path(sr_file).name}",
        },
    )
    return out


# ---------------------------------------------------------------- the family's data


def _degradation(cfg: TrainConfig) -> Any:
    """The real-world LR degradation of ``data.degradation`` (None when it is off)."""
    sec = cfg.data.degradation
    if not sec.enabled:
        return None
    from facesr.data.realistic import DegradationSettings, RealDegradation

    return RealDegradation(DegradationSettings(**sec.model_dump(exclude={"enabled"})))


def masked_face_batcher(cfg: TrainConfig, data_device: torch.device, seed: int) -> tuple[Any, Any, str]:
    """The JDSR recipes' data: MaskedFaceBatcher, a fixed preview batch and a one-line description."""
    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.data.prepared import PreparedSet

    prepared_path = Path(cfg.data.prepared)
    if not prepared_path.is_dir():
        from facesr.paths import prepared_dir

        prepared_path = prepared_dir(cfg.data.prepared)
    prepared = PreparedSet.load(prepared_path)
    batcher = MaskedFaceBatcher(
        prepared,
        cfg.data.split,
        cfg.data.scale,
        data_device,
        cfg.data.batch_size,
        seed,
        data=cfg.data.root,
        p_mask=cfg.data.mask_prob,
        degradation=_degradation(cfg),
    )
    g_state = batcher.generator.get_state()  # a fixed preview batch that leaves the batch stream as it was
    preview = batcher.make_batch(torch.arange(min(4, len(batcher))))
    batcher.generator.set_state(g_state)
    return batcher, preview, f"prepared set `{prepared_path}` ({len(batcher)} faces in the split)"
