"""Staged training recipes for Characteristic Regularisation and the cycle-style baseline.

All stages are configs of one recipe (``configs/cr_stage_*.yaml``, ``configs/cycle_baseline.yaml``),
following papers.md 2.4 (PROPOSAL: the paper's protocol could not be read):

* ``stage: a``: G_S on artificial pairs ``(down4(y), y)`` with the SR pixel loss (optionally D_HR).
* ``stage: b``: G_C and D_LR (optionally D_HR) with G_S loaded from stage A and FROZEN: G_S is in
  no optimiser, its parameters have ``requires_grad=False``, and the CR term runs it under
  :func:`facesr.losses.cr.frozen`; tests check its weights stay bit-identical.
* ``stage: c``: optional; G_C fixed, G_S fine-tuned on artificial pairs at a low learning rate.
* ``stage: cycle``: the cycle-style baseline (two concatenated CNNs LR->LR->HR trained end to end
  with cycle + adversarial losses, plus the same artificial-pair L1, against a learned HR->LR
  generator); the family CR argues against.

The recipe is three functions a loop can call (``build_models``, ``build_optims``,
``train_step(batch, models, optims, cfg) -> dict of losses``) plus :func:`run`, a minimal driver
(sampling, logging, atomic checkpoints) used by the configs and tests. Run one stage with
``python -m facesr.train.cr configs/cr_stage_a.yaml [key.sub=value ...]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from facesr.config import Strict, dump, load
from facesr.errors import ConfigError, DataError
from facesr.losses import cr as L
from facesr.nets.cr import Consistifier, CRModel, CycleSR, Downsampler, PatchDiscriminator, SRNet

SCALE = 4


class NetsCfg(Strict):
    """Network widths (papers.md 2.2 defaults: 64 wide, G_C 8 blocks, G_S 16 blocks)."""

    gc_width: int = 64
    gc_blocks: int = 8
    gs_width: int = 64
    gs_blocks: int = 16
    bicubic_skip: bool = True
    gs_kernel: int = 9  # G_S head/tail kernel (SRResNet: 9)
    d_width: int = 64
    use_d_hr: bool = False
    down_width: int = 32  # cycle baseline's HR->LR generator
    down_blocks: int = 4


class WeightsCfg(Strict):
    """Loss weights (papers.md 2.3 PROPOSAL values)."""

    sr_pixel: float = 1.0
    sr_adv: float = 0.0  # stage A/C, needs nets.use_d_hr
    cc_adv: float = 1.0
    content: float = 10.0
    content_blur_sigma: float = 0.0  # > 0: compare Gaussian-blurred versions (low frequencies only)
    cr: float = 1.0
    cr_hr_adv: float = 0.0  # optional HR adversarial on G_S(G_C(x_g)), needs nets.use_d_hr
    cycle_lr: float = 10.0  # cycle baseline: ||down(up(x_g)) - x_g||
    cycle_hr: float = 10.0  # cycle baseline: ||up(down(y)) - y||
    pair: float = 1.0  # cycle baseline: ||up(x_a) - y|| on artificial pairs (same data as CR)
    adv_hr: float = 1.0  # cycle baseline: D_HR on up(x_g)
    adv_lr: float = 1.0  # cycle baseline: D_LR on down(y) vs genuine LR


class OptimCfg(Strict):
    """Adam; stage A (0.9, 0.999) at 1e-4, stage B (0.5, 0.999), stage C 1e-5 (papers.md 2.4)."""

    lr: float = 1e-4
    d_lr: float | None = None  # discriminators' lr (default: lr)
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 32
    steps: int = 1000


class DataCfg(Strict):
    """Where the two domains come from. ``synthetic`` = random tensors (tests only)."""

    prepared: str = "workspace/prepared/utkface"
    genuine: str = "workspace/genuine"
    synthetic: bool = False
    synthetic_size: int = 64
    flip: bool = True
    # Share of artificial faces that wear a synthetic MaskTheFace mask (drawn from a pool of
    # ``mask_pool`` masked train faces, made once at start). The genuine domain (RWMFD) is mostly
    # masked; without this D_LR can tell the domains apart by the mask alone. [OURS]
    mask_artificial: float = 0.0
    mask_pool: int = 1024
    data_root: str | None = None  # shared data folder for the mask templates (default: facesr.paths)


class CRTrainConfig(Strict):
    """One CR training stage (see the module docstring)."""

    recipe: Literal["cr"] = "cr"
    stage: Literal["a", "b", "c", "cycle"] = "a"
    nets: NetsCfg = NetsCfg()
    weights: WeightsCfg = WeightsCfg()
    optim: OptimCfg = OptimCfg()
    data: DataCfg = DataCfg()
    init: str | None = None  # nets.safetensors of the previous stage
    out: str = "runs/cr_stage_a"
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch.set_num_threads; 0 = leave as is
    log_every: int = 50
    max_minutes: float = 0.0  # > 0: stop (and save) after this wall time


# ---------------------------------------------------------------- data


def artificial_lr(hr: torch.Tensor) -> torch.Tensor:
    """x_a = down4(y): the data pipeline's degradation (Pillow bicubic with its 8-bit intermediate)."""
    try:
        from facesr.data.degrade import downsample
    except ImportError:  # pragma: no cover - only before the data area lands
        return L.downsample(hr, SCALE).clamp(0, 1)
    return downsample(hr, SCALE)


class Domains:
    """Samples artificial pairs ``(x_a, y)`` and genuine LR ``x_g`` as float tensors in [0, 1]."""

    def __init__(
        self,
        hr64: np.ndarray,
        genuine16: np.ndarray,
        device: str,
        seed: int,
        flip: bool = True,
        masked64: np.ndarray | None = None,
        mask_share: float = 0.0,
    ) -> None:
        if len(hr64) == 0:
            raise DataError("no HR training faces (faces64.npy train split is empty)")
        self.hr = torch.from_numpy(np.ascontiguousarray(hr64)).permute(0, 3, 1, 2).contiguous()
        self.masked = (
            None if masked64 is None else torch.from_numpy(np.ascontiguousarray(masked64)).permute(0, 3, 1, 2)
        )
        self.mask_share = float(mask_share)
        self.gen = torch.from_numpy(np.ascontiguousarray(genuine16)).permute(0, 3, 1, 2).contiguous()
        self.device = device
        self.flip = flip
        self.g = torch.Generator().manual_seed(seed)

    def _take(self, arr: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.randint(len(arr), (n,), generator=self.g)
        x = arr[idx].to(self.device).float() / 255.0
        if self.flip:
            m = (torch.rand(n, generator=self.g) < 0.5).to(self.device)
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
        return x

    def batch(self, n: int, need_genuine: bool) -> dict[str, torch.Tensor]:
        y = self._take(self.hr, n)
        if self.masked is not None and self.mask_share > 0:
            use = (torch.rand(n, generator=self.g) < self.mask_share).to(self.device)
            y = torch.where(use[:, None, None, None], self._take(self.masked, n), y)
        out = {"hr": y, "lr_art": artificial_lr(y)}
        if need_genuine:
            if len(self.gen) == 0:
                raise DataError("no genuine LR training faces (run `facesr genuine build`)")
            out["lr_gen"] = self._take(self.gen, n)
        return out


def load_domains(cfg: CRTrainConfig) -> Domains:
    """Prepared UTKFace faces64 (train split) and genuine lr16 (train split), or synthetic data."""
    d = cfg.data
    if d.synthetic:
        g = torch.Generator().manual_seed(cfg.seed)
        hr = (torch.rand(d.synthetic_size, 64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
        gen = (torch.rand(d.synthetic_size, 16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()
        return Domains(hr, gen, cfg.device, cfg.seed, d.flip)
    prep = Path(d.prepared)
    if not (prep / "faces64.npy").is_file():
        raise DataError(f"prepared set {str(prep)!r} has no faces64.npy; run `facesr prepare` first")
    faces = np.load(prep / "faces64.npy", mmap_mode="r")
    split = np.load(prep / "split.npy")
    train_rows = np.nonzero(split == 0)[0]
    hr = np.asarray(faces[train_rows])
    masked = None
    if d.mask_artificial > 0:
        masked = masked_pool(prep, train_rows, d.mask_pool, cfg.seed, d.data_root)
    gen = np.zeros((0, 16, 16, 3), np.uint8)
    if cfg.stage != "a" and cfg.stage != "c":
        from facesr.data.genuine import GenuineSet

        gs = GenuineSet.load(d.genuine)
        gen = gs.lr[gs.indices("train")]
    return Domains(hr, gen, cfg.device, cfg.seed, d.flip, masked, d.mask_artificial)


def masked_pool(prep: Path, rows: np.ndarray, n: int, seed: int, data: str | None) -> np.ndarray:
    """``n`` train faces (seeded choice) with synthetic masks, made at 128 and shrunk to 64 (uint8)."""
    from facesr.data.degrade import downsample
    from facesr.data.masks import MaskSynthesizer
    from facesr.paths import data_root

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
    y = torch.cat(out).clamp(0, 1).mul(255).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------- recipe


def build_models(cfg: CRTrainConfig) -> dict[str, nn.Module]:
    """Networks of one stage. Names: gs, gc, d_lr, d_hr (cycle: up, down, d_hr, d_lr)."""
    n = cfg.nets
    if cfg.stage == "cycle":
        return {
            "up": CycleSR(
                n.gc_width,
                n.gc_blocks,
                n.gs_width,
                n.gs_blocks,
                n.bicubic_skip,
                out_size=64,
                gs_kernel=n.gs_kernel,
            ),
            "down": Downsampler(n.down_width, n.down_blocks),
            "d_hr": PatchDiscriminator(64, n.d_width),
            "d_lr": PatchDiscriminator(16, n.d_width),
        }
    models: dict[str, nn.Module] = {"gs": SRNet(n.gs_width, n.gs_blocks, n.bicubic_skip, n.gs_kernel)}
    if cfg.stage in ("b", "c"):
        models["gc"] = Consistifier(n.gc_width, n.gc_blocks)
    if cfg.stage == "b":
        models["d_lr"] = PatchDiscriminator(16, n.d_width)
    if n.use_d_hr:
        models["d_hr"] = PatchDiscriminator(64, n.d_width)
    return models


def trainable(cfg: CRTrainConfig) -> dict[str, list[str]]:
    """Which networks each optimiser updates ("g" generator side, "d" discriminators)."""
    d_hr = ["d_hr"] if cfg.nets.use_d_hr else []
    return {
        "a": {"g": ["gs"], "d": d_hr},
        "b": {"g": ["gc"], "d": ["d_lr", *d_hr]},  # G_S deliberately absent: frozen
        "c": {"g": ["gs"], "d": d_hr},  # G_C fixed
        "cycle": {"g": ["up", "down"], "d": ["d_hr", "d_lr"]},
    }[cfg.stage]


def build_optims(models: dict[str, nn.Module], cfg: CRTrainConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for the generator side and (if any) the discriminators; frozen nets get requires_grad False."""
    plan = trainable(cfg)
    for name, net in models.items():
        net.requires_grad_(name in plan["g"] or name in plan["d"])
    o = cfg.optim
    optims = {
        "g": torch.optim.Adam([p for k in plan["g"] for p in models[k].parameters()], lr=o.lr, betas=o.betas)
    }
    if plan["d"]:
        optims["d"] = torch.optim.Adam(
            [p for k in plan["d"] for p in models[k].parameters()], lr=o.d_lr or o.lr, betas=o.betas
        )
    return optims


def _f(x: torch.Tensor) -> float:
    return float(x.detach())


def _d_step(optim: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()


def train_step(
    batch: dict[str, torch.Tensor],
    models: dict[str, nn.Module],
    optims: dict[str, torch.optim.Optimizer],
    cfg: CRTrainConfig,
) -> dict[str, float]:
    """One optimisation step of the configured stage; returns the (weighted-input) loss values."""
    w = cfg.weights
    logs: dict[str, float] = {}
    if cfg.stage in ("a", "c"):
        x_a, y = batch["lr_art"], batch["hr"]
        sr = models["gs"](x_a)
        if "d_hr" in models and w.sr_adv > 0:
            _d_step(optims["d"], L.lsgan_d(models["d_hr"](y), models["d_hr"](sr.detach())))
        loss = w.sr_pixel * L.sr_pixel(sr, y)
        logs["sr_pixel"] = _f(L.sr_pixel(sr, y))
        if "d_hr" in models and w.sr_adv > 0:
            adv = L.lsgan_g(models["d_hr"](sr))
            loss = loss + w.sr_adv * adv
            logs["sr_adv"] = _f(adv)
    elif cfg.stage == "b":
        gc, gs, d_lr = models["gc"], models["gs"], models["d_lr"]
        x_a, x_g = batch["lr_art"], batch["lr_gen"]
        c = gc(x_g)
        d_loss = L.lsgan_d(d_lr(x_a), d_lr(c.detach()))
        if "d_hr" in models and w.cr_hr_adv > 0:
            with torch.no_grad():
                sr_g = gs(c.detach())
            d_loss = d_loss + L.lsgan_d(models["d_hr"](batch["hr"]), models["d_hr"](sr_g))
        _d_step(optims["d"], d_loss)
        logs["d"] = _f(d_loss)
        adv = L.lsgan_g(d_lr(c))
        content = L.content_preservation(c, x_g, w.content_blur_sigma)
        cr = L.characteristic_regularisation(c, gs, SCALE)
        loss = w.cc_adv * adv + w.content * content + w.cr * cr
        logs.update(cc_adv=_f(adv), content=_f(content), cr=_f(cr))
        if "d_hr" in models and w.cr_hr_adv > 0:
            with L.frozen(gs):
                hr_adv = L.lsgan_g(models["d_hr"](gs(c)))
            loss = loss + w.cr_hr_adv * hr_adv
            logs["cr_hr_adv"] = _f(hr_adv)
    elif cfg.stage == "cycle":
        up, down, d_hr, d_lr = models["up"], models["down"], models["d_hr"], models["d_lr"]
        x_a, x_g, y = batch["lr_art"], batch["lr_gen"], batch["hr"]
        fake_hr = up.forward_native(x_g)
        fake_lr = down(y)
        d_loss = L.lsgan_d(d_hr(y), d_hr(fake_hr.detach())) + L.lsgan_d(d_lr(x_g), d_lr(fake_lr.detach()))
        _d_step(optims["d"], d_loss)
        logs["d"] = _f(d_loss)
        adv_hr, adv_lr = L.lsgan_g(d_hr(fake_hr)), L.lsgan_g(d_lr(fake_lr))
        cyc_lr = L.cycle_l1(down(fake_hr), x_g)
        cyc_hr = L.cycle_l1(up.forward_native(fake_lr), y)
        pair = L.sr_pixel(up.forward_native(x_a), y)
        loss = (
            w.adv_hr * adv_hr + w.adv_lr * adv_lr + w.cycle_lr * cyc_lr + w.cycle_hr * cyc_hr + w.pair * pair
        )
        logs.update(
            adv_hr=_f(adv_hr), adv_lr=_f(adv_lr), cycle_lr=_f(cyc_lr), cycle_hr=_f(cyc_hr), pair=_f(pair)
        )
    else:  # pragma: no cover - guarded by the config's Literal
        raise ConfigError(f"unknown stage {cfg.stage!r}")
    optims["g"].zero_grad(set_to_none=True)
    loss.backward()
    optims["g"].step()
    logs["loss"] = _f(loss)
    return logs


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(models: dict[str, nn.Module], path: Path, cfg: CRTrainConfig, step: int) -> None:
    """All networks in one fp32 safetensors file (``<net>.<param>``), atomically, with the config."""
    from safetensors.torch import save_file

    from facesr.io import atomic_path

    state = {
        f"{name}.{k}": v.detach().cpu().contiguous()
        for name, net in models.items()
        for k, v in net.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(
            state,
            str(tmp),
            metadata={
                "facesr.recipe": "cr",
                "facesr.stage": cfg.stage,
                "facesr.step": str(step),
                "facesr.config": dump(cfg),
            },
        )


def load_checkpoint(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Read a :func:`save_checkpoint` file into ``{net: state_dict}``."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint {str(p)!r} not found (run the previous stage first)")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in load_file(str(p)).items():
        net, _, rest = k.partition(".")
        out.setdefault(net, {})[rest] = v
    return out


def init_from(models: dict[str, nn.Module], cfg: CRTrainConfig) -> list[str]:
    """Load the previous stage's networks: B needs gs; C needs gs and gc; cycle may take gs from A."""
    if cfg.init is None:
        if cfg.stage in ("b", "c"):
            raise ConfigError(f"stage {cfg.stage} needs init: the previous stage's nets.safetensors")
        return []
    states = load_checkpoint(cfg.init)
    loaded = []
    if cfg.stage == "cycle":
        if "gs" in states:
            models["up"].gs.load_state_dict(states["gs"])
            loaded.append("up.gs<-gs")
        return loaded
    need = {"b": ["gs"], "c": ["gs", "gc"]}.get(cfg.stage, [])
    for name in need:
        if name not in states:
            raise ConfigError(f"{cfg.init}: has no {name!r} network, which stage {cfg.stage} needs")
    for name, net in models.items():
        if name in states and (name in need or cfg.stage == "a"):
            net.load_state_dict(states[name])
            loaded.append(name)
    return loaded


def inference_model(
    models: dict[str, nn.Module], cfg: CRTrainConfig
) -> tuple[nn.Module, str, dict[str, Any]]:
    """The deployable network of a stage: arch name and builder args for :func:`facesr.zoo.save_weights`."""
    n = cfg.nets
    gs_args = {
        "gs_width": n.gs_width,
        "gs_blocks": n.gs_blocks,
        "bicubic_skip": n.bicubic_skip,
        "out_size": 128,
        "gs_kernel": n.gs_kernel,
    }
    if cfg.stage == "a":
        return CRModel(None, models["gs"], 128), "cr_sr_only", gs_args
    if cfg.stage == "cycle":
        up = models["up"]
        net = CycleSR(n.gc_width, n.gc_blocks, n.gs_width, n.gs_blocks, n.bicubic_skip, 128, n.gs_kernel)
        net.load_state_dict(up.state_dict())
        return net, "cycle_sr", {"gc_width": n.gc_width, "gc_blocks": n.gc_blocks, **gs_args}
    return (
        CRModel(models["gc"], models["gs"], 128),
        "cr",
        {"gc_width": n.gc_width, "gc_blocks": n.gc_blocks, **gs_args},
    )


# ---------------------------------------------------------------- driver


def run(cfg: CRTrainConfig, domains: Domains | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one stage for ``optim.steps`` steps; write ``nets.safetensors``, ``model.safetensors``
    (fp32 inference weights, zoo metadata, x8 Restorer contract 16->128), ``log.jsonl``, ``config.yaml``."""
    from tqdm import tqdm

    from facesr.io import atomic_write_text
    from facesr.zoo import save_weights

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    domains = domains or load_domains(cfg)
    models = {k: v.to(cfg.device) for k, v in build_models(cfg).items()}
    loaded = init_from(models, cfg)
    optims = build_optims(models, cfg)
    for name, net in models.items():
        net.train(name in trainable(cfg)["g"] or name in trainable(cfg)["d"])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump(cfg))
    need_gen = cfg.stage in ("b", "cycle")
    log_lines: list[str] = []
    t0 = time.time()
    last: dict[str, float] = {}
    step = 0
    for step in tqdm(range(1, cfg.optim.steps + 1), desc=f"cr stage {cfg.stage}", disable=not progress):
        last = train_step(domains.batch(cfg.optim.batch_size, need_gen), models, optims, cfg)
        if step % cfg.log_every == 0 or step == cfg.optim.steps:
            log_lines.append(
                json.dumps(
                    {
                        "step": step,
                        "seconds": round(time.time() - t0, 1),
                        **{k: round(v, 5) for k, v in last.items()},
                    }
                )
            )
            atomic_write_text(out / "log.jsonl", "\n".join(log_lines) + "\n")
        if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
            break
    save_checkpoint(models, out / "nets.safetensors", cfg, step)
    net, arch, args = inference_model(models, cfg)
    save_weights(
        net,
        out / "model.safetensors",
        arch=arch,
        args=args,
        scale=8,
        dtype=None,
        extra={"facesr.learned_scale": "4", "facesr.hr_native": "64", "facesr.stage": cfg.stage},
    )
    atomic_write_text(out / "log.jsonl", "\n".join(log_lines) + "\n")
    return {
        "steps": step,
        "seconds": round(time.time() - t0, 1),
        "loaded": loaded,
        "last": last,
        "out": str(out),
    }


def runs_markdown(run_dirs: Sequence[str | Path]) -> str:
    """Table of finished runs (stage, steps, wall time, last logged losses) from their own files."""
    from safetensors import safe_open

    lines = [
        "| run | stage | steps | wall s at last log | last logged losses |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in run_dirs:
        d = Path(d)
        ck = d / "nets.safetensors"
        if not ck.is_file():
            raise DataError(f"{d}: no nets.safetensors (not a finished CR run)")
        with safe_open(str(ck), framework="pt") as fh:
            meta = fh.metadata() or {}
        logs = [json.loads(x) for x in (d / "log.jsonl").read_text(encoding="utf-8").splitlines() if x]
        last = logs[-1] if logs else {}
        losses = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "seconds"))
        lines.append(
            f"| `{d}` | {meta.get('facesr.stage', '?')} | {meta.get('facesr.step', '?')} | "
            f"{last.get('seconds', '?')} | {losses} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m facesr.train.cr CONFIG [key.sub=value ...]`` trains one stage;
    ``python -m facesr.train.cr summary RUN_DIR...`` prints a Markdown table of finished runs."""
    from facesr.errors import FacesrError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(
            "usage: python -m facesr.train.cr CONFIG.yaml [key.sub=value ...] | summary RUN_DIR...",
            file=sys.stderr,
        )
        return 2
    try:
        if args[0] == "summary":
            print(runs_markdown(args[1:]), end="")
            return 0
        cfg = load(CRTrainConfig, args[0], args[1:])
        print(json.dumps(run(cfg, progress=True)))
    except FacesrError as exc:
        print(f"facesr: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
