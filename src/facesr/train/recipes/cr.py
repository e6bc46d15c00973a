"""Characteristic Regularisation stages and the cycle-style baseline as recipes of the ONE training loop.

``facesr train configs/cr_stage_a.yaml`` runs :func:`facesr.train.loop.train` (full-state resume, EMA,
NaN guard, atomic checkpoints, TensorBoard, DDP) with one of these recipes, following papers.md 2.4
(PROPOSAL: the paper's protocol could not be read):

=============  ========================================  =================  ===========================
recipe         trains (optimiser ``G`` / ``D``)          frozen             exported inference arch
=============  ========================================  =================  ===========================
``cr_a``       G_S on artificial pairs (+ D_HR opt.)     -                  ``cr_sr_only`` (SR-only)
``cr_b``       G_C / D_LR (+ D_HR opt.)                  G_S (from A)       ``cr``: G_S(G_C(x))
``cr_c``       G_S on artificial pairs at a low lr       G_C (from B)       ``cr``
``cycle``      up = [LR->LR CNN, x4 CNN], down / D_HR,   -                  ``cycle_sr``
               D_LR (cycle + adversarial, end to end)
=============  ========================================  =================  ===========================

Frozen means: the network's parameters have ``requires_grad=False`` for the whole run, so they are in
no optimiser (:meth:`CRRecipe.trainable` keeps only trainable parameters) and the CR term additionally
runs G_S under :func:`facesr.losses.cr.frozen`; a test checks G_S's weights stay bit-identical.

What a CR config adds to the shared schema (:mod:`facesr.train.config`): ``recipe.name`` is one of
the four above, the ``cr`` section (:class:`CRSection`: network widths, genuine-LR folder, the previous
stage ``cr.init``, synthetic-mask option) and the ``loss`` section is :class:`CRLossWeights`. The
``data`` section is shared (prepared set, batch size, ``scale`` must be 4: 16x16 -> 64x64).

The EMA that the loop keeps (and exports) is the stage's *inference* model, so every run folder holds
a ``weights.safetensors`` that :func:`facesr.zoo.load_model` loads (16x16 in, 128x128 out: the learned
x4 to 64 then an antialiased bicubic x2, see :mod:`facesr.nets.cr`).

``facesr runs RUN_DIR...`` prints a Markdown table of finished runs (:func:`facesr.train.runs.runs_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from facesr.config import Strict
from facesr.errors import ConfigError, DataError, ModelError
from facesr.geometry import CR_LR_SIZE as LR_SIZE
from facesr.geometry import CR_NATIVE_SIZE as HR_NATIVE
from facesr.geometry import CR_SCALE as SCALE
from facesr.losses import cr as L
from facesr.nets.cr import Consistifier, CRModel, CycleSR, Downsampler, PatchDiscriminator, make_gs
from facesr.pixels import quantise
from facesr.train.recipes import register_recipe

PREVIEW = 128


# ---------------------------------------------------------------- config sections


#: The same for the Characteristic Regularisation stages and the cycle baseline (papers.md section 2).
CR_DIFFERENCES = (
    "The CR paper's method section could not be read: networks, losses, weights and the staging are our "
    "interpretation of its abstract (papers.md 2.2-2.4, PROPOSAL); docs/cr.md lists each choice.",
    "Artificial LR: UTKFace HR at 64x64, bicubic x4 down to 16x16; genuine LR: faces found by MTCNN in the "
    "RWMFD / web photos (facesr genuine), not the paper's data sets.",
    "Identity features: dlib face-recognition ResNet (face-api.js port), not the paper's network.",
)


class CRNets(Strict):
    """Network widths (papers.md 2.2 defaults: 64 wide, G_C 8 blocks, G_S 16 blocks)."""

    gc_width: int = Field(64, gt=0)
    gc_blocks: int = Field(8, ge=0)
    gc_luma: bool = False  # [OURS] G_C changes brightness only (one output channel added to R, G, B)
    gs_width: int = Field(64, gt=0)
    gs_blocks: int = Field(16, ge=0)
    bicubic_skip: bool = True  # [OURS] G_S output added to the bicubic-upsampled input
    gs_kernel: int = Field(9, gt=0)  # G_S head/tail kernel (SRResNet: 9)
    # [OURS] G_S family: "srresnet" (SRNet from scratch) or "rlfn" (the LR-space RLFN body of jdsr_fast at
    # x4, 16 -> 64, shape fixed by the shared general-SR weights it starts from in stage A; gs_width,
    # gs_blocks, gs_kernel and bicubic_skip do not apply to it)
    gs_arch: Literal["srresnet", "rlfn"] = "srresnet"
    d_width: int = Field(64, gt=0)
    use_d_hr: bool = False  # optional D_HR (needs loss.sr_adv or loss.cr_hr_adv > 0 to matter)
    down_width: int = Field(32, gt=0)  # cycle baseline's HR->LR generator
    down_blocks: int = Field(4, ge=0)


class CRSection(Strict):
    """The ``cr`` config section: networks, genuine-LR data and the previous stage."""

    nets: CRNets = Field(default_factory=CRNets)
    # previous stage: a run folder (its checkpoint's EMA weights), a ckpt .pt or a .safetensors file
    init: str | None = None
    genuine: str | None = None  # built genuine-LR folder (default: <workspace>/genuine)
    flip: bool = True  # random horizontal flips of both domains
    # Share of artificial faces that wear a synthetic MaskTheFace mask (drawn from a pool of
    # ``mask_pool`` masked train faces, made once at start). The genuine domain (RWMFD) is mostly
    # masked; without this D_LR can tell the domains apart by the mask alone. [OURS]
    mask_artificial: float = Field(0.0, ge=0, le=1)
    mask_pool: int = Field(1024, gt=0)
    # [OURS] artificial LR through the real-world degradation pipeline (facesr.data.realistic: blur,
    # resize, noise, JPEG, 30 % left clean) instead of clean bicubic only: the models issue's pipeline.
    # Stage A/C (G_S) use it; in stage B it would also change what D_LR calls "artificial".
    degrade: bool = False
    # stage C input: G_S fine-tuned on x_a (papers.md 2.4) or on G_C(x_a) with G_C fixed [OURS]: the
    # pipeline G_S(G_C(.)) is what inference runs, so the latter recovers what G_C changes in artificial LR
    c_input: Literal["artificial", "consistified"] = "artificial"
    synthetic: bool = False  # random tensors instead of faces (tests only)
    synthetic_size: int = Field(64, gt=1)


class CRLossWeights(Strict):
    """Loss weights of the CR recipes (papers.md 2.3 PROPOSAL values); the ``loss`` section."""

    sr_pixel: float = Field(1.0, ge=0)
    sr_adv: float = Field(0.0, ge=0)  # stage A/C, needs cr.nets.use_d_hr
    cc_adv: float = Field(1.0, ge=0)
    content: float = Field(10.0, ge=0)
    content_blur_sigma: float = Field(0.0, ge=0)  # > 0: compare Gaussian-blurred versions (low frequencies)
    cr: float = Field(1.0, ge=0)
    # [OURS] CycleGAN-style identity term ||G_C(x_a) - x_a||_1: G_C should leave artificial LR alone, since
    # inference applies it to every input (aimed at the "PSNR on artificial LR within 0.2 dB" target)
    cc_identity: float = Field(0.0, ge=0)
    cr_hr_adv: float = Field(0.0, ge=0)  # optional HR adversarial on G_S(G_C(x_g)), needs cr.nets.use_d_hr
    cycle_lr: float = Field(10.0, ge=0)  # cycle baseline: ||down(up(x_g)) - x_g||
    cycle_hr: float = Field(10.0, ge=0)  # cycle baseline: ||up(down(y)) - y||
    pair: float = Field(1.0, ge=0)  # cycle baseline: ||up(x_a) - y|| on artificial pairs (same data as CR)
    adv_hr: float = Field(1.0, ge=0)  # cycle baseline: D_HR on up(x_g)
    adv_lr: float = Field(1.0, ge=0)  # cycle baseline: D_LR on down(y) vs genuine LR


def sections(cfg: Any) -> tuple[CRSection, CRLossWeights]:
    """The validated ``cr`` and ``loss`` sections of a TrainConfig with a CR recipe."""
    return CRSection.model_validate(cfg.cr), CRLossWeights.model_validate(cfg.loss)


# ---------------------------------------------------------------- data


def artificial_lr(hr: torch.Tensor) -> torch.Tensor:
    """x_a = down4(y): the data pipeline's degradation (Pillow bicubic with its 8-bit intermediate)."""
    from facesr.resample import downsample

    return downsample(hr, SCALE)


def needs_genuine(recipe: str) -> bool:
    """Stages that see genuine LR: B (the consistifier) and the cycle baseline."""
    return recipe in ("cr_b", "cycle")


class CRBatcher:
    """Samples artificial pairs ``(x_a, y)`` and genuine LR ``x_g`` as float tensors in [0, 1].

    Faces are drawn with replacement by a seeded generator whose state is the batcher's whole state
    (:meth:`state_dict`), so a resumed run draws the same batches. ``next_batch`` returns the GLOBAL
    batch (the loop slices it per rank): ``hr`` [B,3,64,64], ``lr_art`` [B,3,16,16] and, for stages that
    need it, ``lr_gen`` [B,3,16,16].
    """

    def __init__(
        self,
        hr64: np.ndarray,
        genuine16: np.ndarray | None,
        batch_size: int,
        device: torch.device | str,
        seed: int,
        flip: bool = True,
        masked64: np.ndarray | None = None,
        mask_share: float = 0.0,
        degrade: bool = False,
    ) -> None:
        if len(hr64) == 0:
            raise DataError("no HR training faces (faces64.npy train split is empty)")
        if genuine16 is not None and len(genuine16) == 0:
            raise DataError("no genuine LR training faces (run `facesr genuine build`)")

        def to_t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous().to(device)

        self.hr = to_t(hr64)
        self.masked = None if masked64 is None else to_t(masked64)
        self.gen = None if genuine16 is None else to_t(genuine16)
        self.mask_share = float(mask_share)
        self.degrade = None
        if degrade:
            from facesr.data.realistic import RealDegradation

            self.degrade = RealDegradation()
        self.batch_size, self.device, self.flip = batch_size, torch.device(device), flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.hr)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def _take(self, arr: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.randint(len(arr), (n,), generator=self.generator)
        x = arr[idx.to(arr.device)].float() / 255.0
        if self.flip:
            m = (torch.rand(n, generator=self.generator) < 0.5).to(x.device)
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
        return x

    def next_batch(self) -> dict[str, torch.Tensor]:
        n = self.batch_size
        y = self._take(self.hr, n)
        if self.masked is not None and self.mask_share > 0:
            use = (torch.rand(n, generator=self.generator) < self.mask_share).to(y.device)
            y = torch.where(use[:, None, None, None], self._take(self.masked, n), y)
        lr = self.degrade(y, SCALE, self.generator) if self.degrade is not None else artificial_lr(y)
        out = {"hr": y, "lr_art": lr}
        if self.gen is not None:
            out["lr_gen"] = self._take(self.gen, n)
        return out

    def preview_batch(self, n: int = 4) -> dict[str, torch.Tensor]:
        """The first ``n`` faces of each domain, unflipped (fixed; leaves the batch stream alone)."""
        y = self.hr[:n].float() / 255.0
        out = {"hr": y, "lr_art": artificial_lr(y)}
        if self.gen is not None:
            out["lr_gen"] = self.gen[:n].float() / 255.0
        return out


def _prepared_path(name: str) -> Path:
    p = Path(name)
    if p.is_dir():
        return p
    from facesr.paths import prepared_dir

    return prepared_dir(name)


def cr_batcher(cfg: Any, device: torch.device, seed: int) -> tuple[CRBatcher, dict[str, torch.Tensor], str]:
    """The loop's data hook: batcher, fixed preview batch and a one-line description for the card.

    Artificial pairs: the prepared set's ``faces64.npy`` rows of ``data.split``; genuine LR: the
    built genuine folder's train split (stages B and cycle only); or random tensors (``cr.synthetic``).
    """
    crs, _ = sections(cfg)
    if cfg.data.scale != SCALE:
        raise ConfigError(f"data.scale={cfg.data.scale}: the CR recipes are x4 (16x16 -> 64x64)")
    if getattr(cfg.data, "val_faces", 0):
        raise ConfigError(
            "data.val_faces: in-run validation is not wired for the CR recipes (genuine LR has no ground "
            "truth); score runs with `facesr eval --benchmark genuine-lr|utk-art-x4`"
        )
    gen_needed = needs_genuine(cfg.recipe.name)
    if crs.synthetic:
        g = torch.Generator().manual_seed(seed)
        n = crs.synthetic_size
        hr = (torch.rand(n, HR_NATIVE, HR_NATIVE, 3, generator=g) * 255).to(torch.uint8).numpy()
        gen = (torch.rand(n, LR_SIZE, LR_SIZE, 3, generator=g) * 255).to(torch.uint8).numpy()
        batcher = CRBatcher(hr, gen if gen_needed else None, cfg.data.batch_size, device, seed, crs.flip)
        return batcher, batcher.preview_batch(), f"synthetic random faces ({n} per domain; tests only)"
    prep = _prepared_path(cfg.data.prepared)
    if not (prep / "faces64.npy").is_file():
        raise DataError(f"prepared set {str(prep)!r} has no faces64.npy; run `facesr prepare` first")
    split = np.load(prep / "split.npy")
    rows = np.nonzero(split == (1 if cfg.data.split == "test" else 0))[0]
    hr = np.asarray(np.load(prep / "faces64.npy", mmap_mode="r")[rows])
    masked = None
    if crs.mask_artificial > 0:
        masked = masked_pool(prep, rows, crs.mask_pool, seed, cfg.data.root)
    gen = None
    desc_gen = ""
    if gen_needed:
        from facesr.data.genuine import GenuineSet
        from facesr.paths import workspace

        gdir = Path(crs.genuine) if crs.genuine else workspace() / "genuine"
        gs = GenuineSet.load(gdir)
        gen = gs.lr[gs.indices("train")]
        desc_gen = f"; genuine LR `{gdir}` train split ({len(gen)} faces)"
    batcher = CRBatcher(
        hr, gen, cfg.data.batch_size, device, seed, crs.flip, masked, crs.mask_artificial, crs.degrade
    )
    desc = (
        f"artificial pairs from prepared set `{prep}` faces64 {cfg.data.split} split ({len(hr)} faces, "
        + (
            "x_a = real-world degradations x1/4 (facesr.data.realistic)"
            if crs.degrade
            else "x_a = bicubic x1/4"
        )
        + (f", {crs.mask_artificial:.0%} wearing synthetic masks" if masked is not None else "")
        + f"){desc_gen}"
    )
    return batcher, batcher.preview_batch(), desc


def masked_pool(prep: Path, rows: np.ndarray, n: int, seed: int, data: str | None) -> np.ndarray:
    """``n`` train faces (seeded choice) with synthetic masks, made at 128 and shrunk to 64 (uint8)."""
    from facesr.data.masks import MaskSynthesizer
    from facesr.paths import data_root
    from facesr.resample import downsample

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    faces = np.asarray(np.load(prep / "faces128.npy", mmap_mode="r")[pick])
    lms = torch.from_numpy(np.asarray(np.load(prep / "landmarks128.npy", mmap_mode="r")[pick])).float()
    synth = MaskSynthesizer(data_root(data))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(pick), 64):
        x = torch.from_numpy(faces[i : i + 64]).permute(0, 3, 1, 2).float() / 255.0
        masked, _ = synth(x, lms[i : i + 64], g)
        out.append(downsample(masked.clamp(0, 1), 2))
    return quantise(torch.cat(out))


# ---------------------------------------------------------------- previous stage


def load_init(path: str | Path) -> dict[str, torch.Tensor]:
    """Flat fp32 state (``gs.*``, ``gc.*``) of a previous stage: a run folder (the EMA in its
    checkpoint, i.e. what it exported, at full precision), a checkpoint ``.pt``, or a zoo safetensors."""
    p = Path(path)
    if p.is_dir():
        p = p / "ckpt" / "last.pt"
    if not p.is_file():
        raise DataError(f"cr.init: {str(p)!r} not found (run the previous stage first)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        from facesr.zoo import verify_known_sha256

        try:
            verify_known_sha256(p)  # issue 17: a zoo file or one with a sidecar is hash-checked
        except ModelError as exc:
            raise DataError(f"cr.init: {exc}") from None
        try:
            return {k: v.float() for k, v in load_file(str(p)).items()}
        except Exception as exc:
            raise DataError(f"cr.init: {p}: not a readable safetensors file ({exc})") from None
    from facesr.train.loop import load_checkpoint

    return {k: v.float() for k, v in load_checkpoint(p)["ema"].items()}


def load_part(net: nn.Module, state: dict[str, torch.Tensor], prefix: str, source: str) -> None:
    """Load ``prefix.*`` of ``state`` into ``net`` (all of its keys must be there)."""
    sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if not sub:
        raise ConfigError(f"cr.init {source}: has no {prefix!r} network")
    try:
        net.load_state_dict(sub)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "shape mismatch"
        raise ConfigError(f"cr.init {source}: {prefix} does not fit cr.nets ({first})") from None


# ---------------------------------------------------------------- recipes


#: A logged value: a detached tensor on the training device, or a plain number.
LogValue = torch.Tensor | float


def _item(v: torch.Tensor | float) -> LogValue:
    """A loggable value: tensors stay on their device (detached), so logging needs no host sync per
    step; the loop's Meter averages them and reads them once per ``run.log_every`` steps."""
    return v.detach() if isinstance(v, torch.Tensor) else float(v)


def _show(x: torch.Tensor) -> torch.Tensor:
    """Any image shown at 128x128 in the preview grid (nearest, so LR pixels stay visible)."""
    return F.interpolate(x.float(), size=(PREVIEW, PREVIEW), mode="nearest").clamp(0, 1)


class CRRecipe:
    """Shared machinery of the CR recipes; subclasses set the networks and the step.

    The loop's contract: ``nets`` (checkpointed), ``generator`` (EMA'd and exported), ``trainable()``
    (one optimiser per entry; ``D`` gets ``optim.d_lr``/``d_betas``), ``sync_manually`` (networks whose
    gradients the Updater all-reduces itself: all of them here, so ``bind`` has nothing to wrap and the
    frozen G_S is never inside a DDP wrapper), ``step``, ``preview``, ``export``, ``headline``.
    """

    arch = "cr"
    headline: frozenset[str] = frozenset({"G/total", "D/total"})
    sync_manually: frozenset[str] = frozenset({"G", "D"})
    #: the config section this family owns (``cr``) and its ``loss`` schema
    sections: ClassVar[dict[str, type]] = {"cr": CRSection}
    loss_weights = CRLossWeights
    #: differences from the paper that hold for every run of this family (the draft card lists them)
    card_differences: tuple[str, ...] = CR_DIFFERENCES

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """No rules beyond the sections' own (``data.scale`` is checked when the run starts)."""

    @classmethod
    def benchmark_hint(cls, cfg: Any, weights: Path) -> str:
        """Which ``facesr eval`` scores this kind of run (for the draft card)."""
        return f"`facesr eval --model {weights} --benchmark genuine-lr` (and `--benchmark utk-art-x4`)"

    @classmethod
    def make_batcher(cls, cfg: Any, data_device: torch.device, seed: int) -> tuple[Any, Any, str]:
        """Artificial pairs and genuine LR (:func:`cr_batcher`)."""
        return cr_batcher(cfg, data_device, seed)

    def __init__(self, cfg: Any, ctx: Any) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.crs, self.w = sections(cfg)
        if cfg.model.arch not in ("jdsr", self.arch):  # "jdsr" is the schema default: not set by the user
            raise ConfigError(f"model.arch={cfg.model.arch!r}: recipe {cfg.recipe.name} trains {self.arch!r}")
        cfg.model.arch = self.arch  # so config.yaml and the draft card name what is trained
        self.nets: dict[str, nn.Module] = {}
        self.build()
        for net in self.nets.values():
            net.to(ctx.device)
        self.init_from_previous()

    # -- construction ---------------------------------------------------------------------------
    def build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_from_previous(self) -> None:
        """Load the previous stage's networks (``cr.init``)."""

    def discriminators(self, *d: tuple[str, nn.Module]) -> None:
        if d:
            self.nets["D"] = nn.ModuleDict(dict(d))

    def trainable(self) -> dict[str, list[nn.Parameter]]:
        out = {k: [p for p in v.parameters() if p.requires_grad] for k, v in self.nets.items()}
        return {k: v for k, v in out.items() if v}

    def bind(self) -> None:
        """Nothing to wrap: every network's gradients are averaged by its Updater (``sync_manually``)."""

    def gs_args(self) -> dict[str, Any]:
        n = self.crs.nets
        return {
            "gs_width": n.gs_width,
            "gs_blocks": n.gs_blocks,
            "bicubic_skip": n.bicubic_skip,
            "out_size": PREVIEW,
            "gs_kernel": n.gs_kernel,
            "gs_arch": n.gs_arch,
        }

    def make_gs(self) -> nn.Module:
        n = self.crs.nets
        return make_gs(n.gs_arch, n.gs_width, n.gs_blocks, n.bicubic_skip, n.gs_kernel)

    def arch_args(self) -> dict[str, Any]:
        n = self.crs.nets
        luma = {"gc_luma": True} if n.gc_luma else {}  # absent when off: files stay loadable by older code
        return {"gc_width": n.gc_width, "gc_blocks": n.gc_blocks, **luma, **self.gs_args()}

    # -- helpers used by the steps --------------------------------------------------------------
    def d_update(self, loss: torch.Tensor, updaters: dict[str, Any], logs: dict[str, LogValue]) -> None:
        updaters["D"](loss)
        logs["D/total"] = _item(loss)

    def sr_pair_step(
        self, batch: dict[str, torch.Tensor], updaters: dict[str, Any], gc: nn.Module | None = None
    ) -> dict[str, LogValue]:
        """Stages A and C: ``||G_S(x_a) - y||_1`` (+ optional LSGAN against D_HR); with ``gc`` (fixed)
        the input is ``G_C(x_a)`` instead."""
        logs: dict[str, LogValue] = {}
        gs = self.gs
        d_hr = self.nets["D"]["d_hr"] if "D" in self.nets and self.w.sr_adv > 0 else None
        x = batch["lr_art"]
        if gc is not None:
            with torch.no_grad(), self.ctx.autocast():
                x = gc(x).float()
        with self.ctx.autocast():
            sr = gs(x).float()
        if d_hr is not None:
            with self.ctx.autocast():
                d_loss = L.lsgan_d(d_hr(batch["hr"]).float(), d_hr(sr.detach()).float())
            self.d_update(d_loss, updaters, logs)
        pix = L.sr_pixel(sr, batch["hr"])
        loss = self.w.sr_pixel * pix
        logs["G/sr_pixel"] = _item(pix)
        if d_hr is not None:
            with L.frozen(d_hr), self.ctx.autocast():
                adv = L.lsgan_g(d_hr(sr).float())
            loss = loss + self.w.sr_adv * adv
            logs["G/sr_adv"] = _item(adv)
        updaters["G"](loss)
        logs["G/total"] = _item(loss)
        return logs

    # -- preview and export ---------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Columns: [genuine input | consistified | output on genuine |] artificial input | output | HR."""
        dev = self.ctx.device
        cols: list[torch.Tensor] = []
        if "lr_gen" in batch:
            x_g = batch["lr_gen"].to(dev)
            cols.append(_show(x_g))
            gc = getattr(net, "gc", None)
            if gc is not None:
                cols.append(_show(gc(x_g)))
            cols.append(net(x_g).clamp(0, 1))
        x_a = batch["lr_art"].to(dev)
        return [*cols, _show(x_a), net(x_a).clamp(0, 1), _show(batch["hr"].to(dev))]

    def export(self, net: nn.Module, run_dir: Path, meta: dict[str, str]) -> Path:
        """The EMA inference model as fp16 safetensors in zoo format (16x16 -> 128x128, learned x4)."""
        from facesr.zoo import save_weights

        path = run_dir / "weights.safetensors"
        save_weights(
            net,
            path,
            arch=self.arch,
            args=self.arch_args(),
            scale=PREVIEW // LR_SIZE,  # 16 -> 128 overall (the learned part is x4: facesr.learned_scale)
            lr_size=LR_SIZE,
            hr_size=PREVIEW,
            extra={
                **meta,
                "facesr.learned_scale": str(SCALE),
                "facesr.hr_native": str(HR_NATIVE),
                "facesr.stage": self.cfg.recipe.name,
            },
        )
        return path


@register_recipe("cr_a")
class StageA(CRRecipe):
    """G_S on artificial pairs; the exported model is the SR-only baseline."""

    arch = "cr_sr_only"

    def build(self) -> None:
        n = self.crs.nets
        self.gs = self.make_gs()
        self.generator = CRModel(None, self.gs, PREVIEW)
        self.nets["G"] = self.generator
        if n.use_d_hr:
            self.discriminators(("d_hr", PatchDiscriminator(HR_NATIVE, n.d_width)))

    def arch_args(self) -> dict[str, Any]:
        return self.gs_args()

    def init_from_previous(self) -> None:
        if self.crs.init is not None:  # optional: continue from an earlier G_S
            load_part(self.gs, load_init(self.crs.init), "gs", self.crs.init)
        elif self.crs.nets.gs_arch == "rlfn":  # the LR-space backbone starts from the general-SR weights
            from facesr.nets.fast import init_from_general_sr

            init_from_general_sr(self.gs)

    def step(
        self, batch: dict[str, torch.Tensor], step: int, updaters: dict[str, Any]
    ) -> dict[str, LogValue]:
        return self.sr_pair_step(batch, updaters)


@register_recipe("cr_b")
class StageB(CRRecipe):
    """G_C and D_LR with G_S from stage A FROZEN: CC adversarial + content preservation + CR term."""

    def build(self) -> None:
        n = self.crs.nets
        self.gs = self.make_gs().requires_grad_(False)
        self.gc = Consistifier(n.gc_width, n.gc_blocks, n.gc_luma)
        self.generator = CRModel(self.gc, self.gs, PREVIEW)
        self.nets["G"] = self.generator
        d = [("d_lr", PatchDiscriminator(LR_SIZE, n.d_width))]
        if n.use_d_hr:
            d.append(("d_hr", PatchDiscriminator(HR_NATIVE, n.d_width)))
        self.discriminators(*d)

    def init_from_previous(self) -> None:
        if self.crs.init is None:
            raise ConfigError(f"recipe {self.cfg.recipe.name} needs cr.init: the stage A run (G_S)")
        state = load_init(self.crs.init)
        load_part(self.gs, state, "gs", self.crs.init)
        self.gs.eval()  # frozen: no train-mode behaviour either (it has none today; future-proof)

    def step(
        self, batch: dict[str, torch.Tensor], step: int, updaters: dict[str, Any]
    ) -> dict[str, LogValue]:
        w, logs = self.w, {}
        d = self.nets["D"]
        x_a, x_g = batch["lr_art"], batch["lr_gen"]
        with self.ctx.autocast():
            c = self.gc(x_g).float()
            d_loss = L.lsgan_d(d["d_lr"](x_a).float(), d["d_lr"](c.detach()).float())
            use_hr = "d_hr" in d and w.cr_hr_adv > 0
            if use_hr:
                with torch.no_grad():
                    sr_g = self.gs(c.detach())
                d_loss = d_loss + L.lsgan_d(d["d_hr"](batch["hr"]).float(), d["d_hr"](sr_g).float())
        self.d_update(d_loss, updaters, logs)
        with L.frozen(d), self.ctx.autocast():
            adv = L.lsgan_g(d["d_lr"](c).float())
            content = L.content_preservation(c, x_g, w.content_blur_sigma)
            cr = L.characteristic_regularisation(c, self.gs, SCALE)
            loss = w.cc_adv * adv + w.content * content + w.cr * cr
            logs.update({"G/cc_adv": _item(adv), "G/content": _item(content), "G/cr": _item(cr)})
            if w.cc_identity > 0:
                ident = L.content_preservation(self.gc(x_a).float(), x_a)
                loss = loss + w.cc_identity * ident
                logs["G/cc_identity"] = _item(ident)
            if use_hr:
                with L.frozen(self.gs):
                    hr_adv = L.lsgan_g(d["d_hr"](self.gs(c)).float())
                loss = loss + w.cr_hr_adv * hr_adv
                logs["G/cr_hr_adv"] = _item(hr_adv)
        updaters["G"](loss)
        logs["G/total"] = _item(loss)
        return logs


@register_recipe("cr_c")
class StageC(CRRecipe):
    """G_C fixed (from stage B), G_S fine-tuned on artificial pairs (at the config's low lr)."""

    def build(self) -> None:
        n = self.crs.nets
        self.gs = self.make_gs()
        self.gc = Consistifier(n.gc_width, n.gc_blocks, n.gc_luma).requires_grad_(False)
        self.generator = CRModel(self.gc, self.gs, PREVIEW)
        self.nets["G"] = self.generator
        if n.use_d_hr:
            self.discriminators(("d_hr", PatchDiscriminator(HR_NATIVE, n.d_width)))

    def init_from_previous(self) -> None:
        if self.crs.init is None:
            raise ConfigError(f"recipe {self.cfg.recipe.name} needs cr.init: the stage B run (G_S and G_C)")
        state = load_init(self.crs.init)
        load_part(self.gs, state, "gs", self.crs.init)
        load_part(self.gc, state, "gc", self.crs.init)
        self.gc.eval()

    def step(
        self, batch: dict[str, torch.Tensor], step: int, updaters: dict[str, Any]
    ) -> dict[str, LogValue]:
        return self.sr_pair_step(batch, updaters, self.gc if self.crs.c_input == "consistified" else None)


@register_recipe("cycle")
class Cycle(CRRecipe):
    """The cycle-style baseline: ``up`` = two concatenated CNNs (LR->LR, x4) trained END TO END with a
    learned HR->LR ``down``, cycle + LSGAN losses and the same artificial-pair L1 as G_S."""

    arch = "cycle_sr"

    def build(self) -> None:
        n = self.crs.nets
        self.up = CycleSR(
            n.gc_width, n.gc_blocks, n.gs_width, n.gs_blocks, n.bicubic_skip, PREVIEW, n.gs_kernel, n.gs_arch
        )
        self.down = Downsampler(n.down_width, n.down_blocks)
        self.generator = self.up
        self.nets["G"] = nn.ModuleDict({"up": self.up, "down": self.down})
        self.discriminators(
            ("d_hr", PatchDiscriminator(HR_NATIVE, n.d_width)),
            ("d_lr", PatchDiscriminator(LR_SIZE, n.d_width)),
        )

    def init_from_previous(self) -> None:
        if self.crs.init is not None:  # start from stage A's G_S: the same budget as stage B
            load_part(self.up.gs, load_init(self.crs.init), "gs", self.crs.init)

    def step(
        self, batch: dict[str, torch.Tensor], step: int, updaters: dict[str, Any]
    ) -> dict[str, LogValue]:
        w, logs = self.w, {}
        d = self.nets["D"]
        x_a, x_g, y = batch["lr_art"], batch["lr_gen"], batch["hr"]
        with self.ctx.autocast():
            fake_hr = self.up.forward_native(x_g).float()
            fake_lr = self.down(y).float()
            d_loss = L.lsgan_d(d["d_hr"](y).float(), d["d_hr"](fake_hr.detach()).float()) + L.lsgan_d(
                d["d_lr"](x_g).float(), d["d_lr"](fake_lr.detach()).float()
            )
        self.d_update(d_loss, updaters, logs)
        with L.frozen(d), self.ctx.autocast():
            adv_hr, adv_lr = L.lsgan_g(d["d_hr"](fake_hr).float()), L.lsgan_g(d["d_lr"](fake_lr).float())
            cyc_lr = L.cycle_l1(self.down(fake_hr).float(), x_g)
            cyc_hr = L.cycle_l1(self.up.forward_native(fake_lr).float(), y)
            pair = L.sr_pixel(self.up.forward_native(x_a).float(), y)
            loss = (
                w.adv_hr * adv_hr
                + w.adv_lr * adv_lr
                + w.cycle_lr * cyc_lr
                + w.cycle_hr * cyc_hr
                + w.pair * pair
            )
        logs.update(
            {
                "G/adv_hr": _item(adv_hr),
                "G/adv_lr": _item(adv_lr),
                "G/cycle_lr": _item(cyc_lr),
                "G/cycle_hr": _item(cyc_hr),
                "G/pair": _item(pair),
            }
        )
        updaters["G"](loss)
        logs["G/total"] = _item(loss)
        return logs
