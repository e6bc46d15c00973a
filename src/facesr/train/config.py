"""Training configs: one typed schema, YAML files in ``configs/`` that read like a hyper-parameter table.

Every section derives from :class:`facesr.config.Strict`, so an unknown or misspelt key is a
:class:`~facesr.errors.ConfigError` that names it (``optim.lrr: unknown key``). The ``loss`` section
is owned by the loss module (:class:`facesr.losses.jdsr.JDSRLossWeights`); it is kept as a mapping
here so that this module imports nothing heavy, and is validated against that class by
:func:`load_train_config`, with the same one-line errors.

Values marked PROPOSAL in ``configs/*.yaml`` are ours: papers.md 1.5 lists the optimiser, schedule,
batch size and warm-up as unstated by the JDSR-GAN paper.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from facesr.config import Strict, build, load


class RunSection(Strict):
    """Bookkeeping: where the run writes, how long it lasts, how often it logs and saves."""

    name: str = "run"
    out_dir: str | None = None  # default: <workspace>/runs/<name>
    seed: int = 0
    steps: int = Field(1000, gt=0)
    max_minutes: float | None = Field(None, gt=0)  # stop cleanly (checkpoint + export) after this wall time
    # stop cleanly at this step while the lr schedule keeps its full ``steps`` length: budget-matched
    # baselines stop where the reference run stopped, under the same learning rates
    stop_step: int | None = Field(None, gt=0)
    log_every: int = Field(50, gt=0)
    ckpt_every: int = Field(500, gt=0)
    image_every: int = Field(1000, gt=0)
    val_every: int = Field(0, ge=0)  # score the EMA on data.val_faces held-out faces every N steps (0: off)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    threads: int | None = Field(None, gt=0)  # torch.set_num_threads on CPU (None: leave torch's default)
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    tensorboard: bool = True
    progress: bool = True  # tqdm bar (rank 0 only)
    # speed levers (docs/speed.md); the defaults are the plain eager loop
    channels_last: bool = False  # NHWC weights and activations for the generator and the critic
    compile: bool = False  # torch.compile the generator (the critic stays eager: GP needs double backward)
    sync: Literal["step", "log"] = "step"  # log: loss/grad-norm/skip bookkeeping on the device until log time
    export: bool = True  # write weights.safetensors, card.md and loss curve at the end


class DegradationSection(Strict):
    """Real-world LR degradations (facesr.data.realistic, docs/data.md); off unless ``enabled``."""

    enabled: bool = False
    # share of faces left as clean antialiased bicubic (the benchmarks' LR)
    clean_prob: float = Field(0.3, ge=0.0, le=1.0)
    blur_prob: float = Field(0.6, ge=0.0, le=1.0)
    blur_sigma: tuple[float, float] = (0.3, 1.6)  # at x4 (scaled by scale / 4)
    aniso_prob: float = Field(0.3, ge=0.0, le=1.0)
    rescale_prob: float = Field(0.3, ge=0.0, le=1.0)
    rescale_range: tuple[float, float] = (0.6, 0.95)
    noise_prob: float = Field(0.5, ge=0.0, le=1.0)
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # in 8-bit levels
    gray_noise_prob: float = Field(0.4, ge=0.0, le=1.0)
    jpeg_prob: float = Field(0.5, ge=0.0, le=1.0)
    jpeg_quality: tuple[int, int] = (40, 95)

    @model_validator(mode="after")
    def _ranges(self) -> DegradationSection:
        for name in ("blur_sigma", "rescale_range", "noise_sigma", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi) or not all(map(math.isfinite, (lo, hi))):
                raise ValueError(f"{name} must be a finite range 0 < low <= high")
        if self.rescale_range[1] > 1 or self.jpeg_quality[1] > 100:
            raise ValueError("rescale_range must lie in (0, 1] and jpeg_quality in [1, 100]")
        return self


class DataSection(Strict):
    """Which prepared face set feeds the batcher and how batches are cut."""

    prepared: str = "utkface"  # a name under <workspace>/prepared/ or a folder path
    split: Literal["train", "test"] = "train"
    scale: Literal[2, 4, 8] = 4  # 2 only for the LR-space jdsr_fast models (64 -> 128)
    batch_size: int = Field(16, gt=0)  # GLOBAL batch; each DDP rank takes batch_size / world_size
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where the uint8 set and the degradation live
    root: str | None = None  # face-data root holding masktheface/ (default: facesr.paths.data_root())
    # share of training faces that get a synthetic mask; the paper masks all (1.0). Below 1 the rest are
    # plain down-sampled faces, so the model also learns to leave an unmasked face's lower half alone
    mask_prob: float = Field(1.0, ge=0.0, le=1.0)
    val_faces: int = Field(0, ge=0)  # faces of the split held out of training for run.val_every (by seed)
    degradation: DegradationSection = Field(default_factory=DegradationSection)


class ModelSection(Strict):
    """The generator: a registered zoo architecture built with ``size``, ``scale`` and overrides."""

    arch: str = "jdsr"
    size: Literal["lite", "paper", "fast"] = "lite"  # fast: the one size of arch jdsr_fast
    overrides: dict[str, Any] = Field(default_factory=dict)  # JDSRSize fields, e.g. {trunk: 16}
    critic: dict[str, Any] = Field(default_factory=dict)  # WGANCritic arguments, e.g. {width: 32}
    # Warm start (a new run, fresh optimisers): a facesr weights file of the same architecture (e.g. a
    # shipped model, so training accumulates across runs), or "general-sr" for the shared RLFN x4 weights
    # (jdsr_fast only; FACESR_PRETRAINED or ../shared/pretrained). None: random initialisation.
    init_from: str | None = None
    # Load only the parameters under these name prefixes from init_from (e.g. [sr_module]); the others keep
    # their fresh initialisation. For a part whose layout or role changed (session 5 restarted CNN_D with
    # residual CABs: the old one had learnt nothing). Empty: everything (strict).
    init_only: list[str] = Field(default_factory=list)
    critic_init_from: str | None = None  # the critic's weights file written next to a shipped model


class OptimSection(Strict):
    """Adam for the generator (G) and the WGAN-GP critic (D); papers.md 1.5 (PROPOSAL)."""

    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    d_lr: float = Field(1e-4, gt=0)
    d_betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(10.0, gt=0)  # max global grad norm per network; None: no clipping
    impl: Literal["auto", "fused", "foreach", "plain"] = "auto"  # auto: fused on CUDA, foreach on CPU
    # lr multipliers for generator parameters by name prefix, e.g. {sr_module: 0.1}: fine-tune a pretrained
    # part gently while the rest learns at optim.lr (PROPOSAL, docs/jdsr-fast.md); {} = one lr for all
    lr_scale: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(default_factory=dict)


class ScheduleSection(Strict):
    """Step-wise lr decay: multiply by ``gamma`` at each milestone (fractions of ``run.steps``)."""

    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    gamma: float = Field(0.5, gt=0, le=1)

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < m < 1.0 for m in v) or v != sorted(v):
            raise ValueError("milestones must be increasing fractions of run.steps in (0, 1)")
        return v


class RecipeSection(Strict):
    """What is trained on what: the joint JDSR model or one of its baselines (docs/training.md)."""

    name: str = "jdsr"  # a registered recipe (facesr.train.recipes), checked with the recipe's own sections
    warmup_steps: int = Field(0, ge=0)  # jdsr: denoiser-only steps before joint training (PROPOSAL)
    adversarial: bool = True  # WGAN-GP critic on the SR output (weights: loss.adversarial, loss.gp_lambda)
    adv_start_step: int | None = Field(None, ge=0)  # None: switch the critic on when warm-up ends
    d_steps_per_g: int = Field(1, ge=1)  # critic updates per generator update (1:1, papers.md 1.5)


class EmaSection(Strict):
    """Exponential moving average of the generator (parameters and buffers); the EMA is exported."""

    decay: float = Field(0.999, ge=0, lt=1)
    start: int = Field(0, ge=0)  # before this step the EMA just copies the weights


class TrainConfig(Strict):
    """The whole training config (one YAML file)."""

    run: RunSection = Field(default_factory=RunSection)
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    recipe: RecipeSection = Field(default_factory=RecipeSection)
    loss: dict[str, Any] = Field(
        default_factory=dict
    )  # validated by the recipe's loss_weights (JDSRLossWeights)
    # CR recipes only: nets, genuine-LR data, previous stage (validated by facesr.train.recipes.cr.CRSection);
    # their ``loss`` section is validated by facesr.train.recipes.cr.CRLossWeights instead
    cr: dict[str, Any] = Field(default_factory=dict)
    ema: EmaSection = Field(default_factory=EmaSection)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        plain_adam = self.optim.impl in ("foreach", "plain")
        if self.run.sync == "log" and (plain_adam or self.run.precision == "fp16"):
            # the on-device skip of a non-finite update is the fused Adam kernel's found_inf input
            raise ValueError("run.sync=log runs fused Adam (optim.impl auto or fused), not with fp16")
        if self.run.val_every and not self.data.val_faces:
            raise ValueError("run.val_every needs data.val_faces > 0 (the held-out faces it scores)")
        return self

    @property
    def adv_start(self) -> int:
        """First step with the adversarial term (the end of the warm-up unless set)."""
        r = self.recipe
        return r.warmup_steps if r.adv_start_step is None else r.adv_start_step

    def out_path(self) -> Path:
        """The run folder."""
        from facesr.paths import workspace

        return Path(self.run.out_dir) if self.run.out_dir else workspace() / "runs" / self.run.name


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a plain mapping (e.g. the YAML embedded in a checkpoint) as a TrainConfig."""
    from facesr.train.recipes import validate_recipe_config

    return validate_recipe_config(build(TrainConfig, data, source), source)


def load_train_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (or the defaults), apply ``key.sub=value`` overrides, validate everything."""
    from facesr.train.recipes import validate_recipe_config

    source = str(path) if path is not None else "config"
    return validate_recipe_config(load(TrainConfig, path, overrides), source)
