"""The training loop: one function, :func:`train`, that a reader can follow from top to bottom.

What happens, in order (each step is a short paragraph in :func:`train`):

1. **Processes and device.** Under ``torchrun`` (``WORLD_SIZE > 1``) every process joins a
   ``torch.distributed`` group (NCCL on GPUs, gloo on CPU); otherwise there is one process.
   Precision comes from the config: bf16 autocast on CUDA, fp32 on CPU (fp16 + GradScaler on request).
2. **Seeds.** One seed for every rank, so that every rank builds the same initial weights and draws
   the same *global* batch; each rank then keeps its own slice of it (:meth:`Context.local`). This
   makes an N-process run compute the same updates as a 1-process run with the same global batch.
3. **Data.** The recipe's batcher (``make_batcher`` of the recipe class, looked up by ``recipe.name`` in
   the registry :mod:`facesr.train.recipes`) keeps the faces on the data device and synthesises the
   inputs inside the step; the loop only calls ``next_batch()`` and checkpoints its ``state_dict()``.
4. **Recipe, optimisers, schedules, EMA.** The recipe (registered by its module under
   :mod:`facesr.train.recipes`; this loop names none) says which networks
   train on what with which losses; this loop owns the mechanics: Adam, lr halving at milestones,
   backward, gradient clipping, the NaN/inf guard (:class:`Updater`) and the EMA of the generator.
5. **Resume.** A checkpoint holds every piece of state (weights, optimisers, schedules, scaler, EMA,
   RNG states including the batcher's, step), so a resumed run continues bit for bit.
6. **The loop.** Batch -> recipe step -> schedule step -> EMA -> logs (tqdm, TensorBoard, log.jsonl)
   -> preview grid -> atomic checkpoint. ``run.max_minutes`` stops cleanly at a step boundary.
7. **Export.** The EMA generator goes to fp16 safetensors with :func:`facesr.zoo.save_weights`, next to
   a draft model card and a loss-curve PNG.

Only rank 0 writes files. Checkpoints hold tensors and plain Python values only and are read back
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import subprocess
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from facesr.config import dump
from facesr.errors import ConfigError, DataError
from facesr.io import atomic_path, atomic_write_text, remove_stale_temps, write_image
from facesr.pixels import quantise_half_up
from facesr.train.config import TrainConfig, config_from_dict
from facesr.train.runlog import hardware, iter_log

CKPT_NAME = "last.pt"


# ----------------------------------------------------------------------------------------------
# Small pieces the loop uses (each one job)
# ----------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a recipe needs to know about the process it runs in."""

    device: torch.device
    rank: int = 0
    world: int = 1
    precision: str = "fp32"
    generator: torch.Generator = field(default_factory=torch.Generator)  # recipe randomness (GP mixing)
    fetch: Callable[[], dict[str, torch.Tensor]] | None = None  # next local batch (extra critic steps)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16/fp16 autocast on CUDA when the config asks for it; a no-op in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def local(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a tensor whose first dimension is the global batch."""
        if self.world == 1:
            return t
        n = t.shape[0] // self.world
        return t[self.rank * n : (self.rank + 1) * n]

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform numbers drawn for the GLOBAL batch from the recipe generator, then sliced,
        so that random draws do not depend on the number of processes."""
        return self.local(torch.rand(*shape, generator=self.generator)).to(self.device)

    def wrap(self, net: nn.Module, *, find_unused: bool = False) -> nn.Module:
        """DDP-wrap a network when there are several processes (gradients averaged across ranks)."""
        if self.world == 1:
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused)


class Updater:
    """One optimiser step with the safety checks: backward, unscale, clip, finite check, step.

    The check is on the global gradient norm *after* DDP has averaged the gradients, so every rank
    sees the same number and takes the same decision: a NaN/inf loss or gradient skips the update
    on all ranks (and is logged) instead of poisoning the weights.
    """

    def __init__(
        self,
        name: str,
        params: list[nn.Parameter],
        opt: torch.optim.Optimizer,
        grad_clip: float | None,
        scaler: torch.amp.GradScaler | None,
        *,
        average_over: int = 1,
    ) -> None:
        self.name, self.params, self.opt, self.grad_clip, self.scaler = name, params, opt, grad_clip, scaler
        self.average_over = average_over  # > 1: all-reduce the gradients here (a network not wrapped in DDP)
        self.skipped = 0
        self.last_norm = 0.0
        self.last_skipped = False
        # run.sync=log (fused Adam only): the finite check stays on the device (the fused kernel skips
        # the update where ``found_inf`` is 1) and norms/skips are tensors read at log time: no host
        # sync per step. ``pending`` counts skips not yet added to ``skipped``.
        self.deferred = False
        self.pending: torch.Tensor | None = None

    def settle(self) -> None:
        """Fold the on-device skip count into ``skipped`` (one host sync; at log/checkpoint time)."""
        if self.pending is not None:
            self.skipped += int(self.pending)
            self.pending = None

    def __call__(self, loss: torch.Tensor) -> bool:
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.average_over > 1:
            for p in self.params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(self.average_over)
        max_norm = self.grad_clip if self.grad_clip is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=None)
        if self.deferred:
            bad = ~(torch.isfinite(norm) & torch.isfinite(loss.detach().float()))
            self.opt.found_inf = bad.float()  # type: ignore[attr-defined]  # read by fused Adam's step
            self.opt.step()
            self.pending = bad.long() if self.pending is None else self.pending + bad.long()
            self.last_norm = torch.where(bad, 0.0, norm.detach().float())  # type: ignore[assignment]
            self.last_skipped = bad.float()  # type: ignore[assignment]
            return True
        self.last_norm = float(norm)
        ok = math.isfinite(self.last_norm) and math.isfinite(float(loss.detach()))
        if ok:
            if self.scaler is not None:
                self.scaler.step(self.opt)
            else:
                self.opt.step()
        else:
            self.skipped += 1
            self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.update()
        self.last_skipped = not ok
        return ok


class EMA:
    """Exponential moving average of a network's parameters AND buffers (the exported weights).

    Floating tensors follow ``ema = decay * ema + (1 - decay) * current``; integer buffers are
    copied. Before ``start`` the average simply copies the network (decay 0), so early noise does
    not linger in it.
    """

    def __init__(self, net: nn.Module, decay: float, start: int) -> None:
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay, self.start = decay, start

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        decay = 0.0 if step < self.start else self.decay
        current = net.state_dict()
        avgs, values = [], []
        for key, avg in self.module.state_dict().items():
            value = current[key].detach()
            if avg.is_floating_point():
                avgs.append(avg)
                values.append(value.to(avg.dtype))
            else:
                avg.copy_(value)
        if avgs:  # one multi-tensor kernel instead of one lerp per tensor (same arithmetic)
            torch._foreach_lerp_(avgs, values, 1.0 - decay)


def init_distributed(device_pref: str) -> tuple[int, int, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1; return (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is available")
    if world == 1:
        return 0, 1, torch.device("cuda" if want_cuda else "cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 / AMX, as oneDNN reports it).

    Why it matters: without it bf16 autocast on the CPU is emulated and slower than fp32; with it the
    jdsr-fast generator's forward + backward runs about 1.9x faster on a 2-core AMD EPYC
    (docs/jdsr-fast.md, session 8).
    """
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # a build without oneDNN
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA, fp32 on CPU. bf16 on the CPU only where the CPU has native bf16
    (:func:`cpu_bf16_native`); fp16 on the CPU is refused (emulated: slower, no gain). ``auto`` stays
    fp32 on the CPU: bf16 is a measured opt-in there, not a silent change of the shipped recipes."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if requested == "bf16" and device.type == "cpu" and not cpu_bf16_native():
        raise ConfigError(
            "run.precision=bf16 needs a CUDA device or a CPU with native bf16 (AVX-512 BF16 or AMX), "
            "which this one lacks; use fp32 (or auto)"
        )
    if requested == "fp16" and device.type != "cuda":
        raise ConfigError("run.precision=fp16 needs a CUDA device; use fp32 (or auto) on CPU")
    return requested


def lr_groups(
    net: nn.Module, params: list[nn.Parameter], lr: float, scale: dict[str, float]
) -> list[nn.Parameter] | list[dict[str, Any]]:
    """``optim.lr_scale`` as Adam parameter groups: a parameter takes the multiplier of its longest matching
    name prefix (1 when none matches). A prefix that matches no parameter is a ConfigError, not a no-op.
    """
    if not scale:
        return params
    module = getattr(net, "module", net)  # DDP / compile wrappers keep the bare net as .module
    names = {id(p): n for n, p in module.named_parameters()}
    for prefix in scale:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names.values()):
            raise ConfigError(f"optim.lr_scale: no generator parameter is named {prefix!r}.*")
    by_factor: dict[float, list[nn.Parameter]] = {}
    for p in params:
        name = names.get(id(p), "")
        hits = [k for k in scale if name == k or name.startswith(k + ".")]
        factor = scale[max(hits, key=len)] if hits else 1.0
        by_factor.setdefault(factor, []).append(p)
    return [{"params": ps, "lr": lr * f} for f, ps in sorted(by_factor.items(), reverse=True)]


def make_optimizer(
    params: list[nn.Parameter] | list[dict[str, Any]],
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    impl: str,
    device: torch.device,
) -> torch.optim.Adam:
    """Adam with the fused (CUDA) or foreach kernel; both give the same maths as the plain loop."""
    kw: dict[str, Any] = {}
    if impl == "fused" or (impl == "auto" and device.type == "cuda"):
        kw["fused"] = True
    elif impl in ("foreach", "auto"):
        kw["foreach"] = True
    else:
        kw["foreach"] = False
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, **kw)


def git_revision() -> str:
    """The source revision (plus ``-dirty``), or ``unknown`` outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def rng_state(batcher: Any, ctx: Context) -> dict[str, Any]:
    """Every random state the run depends on, as tensors and plain values (weights_only-safe)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "recipe": ctx.generator.get_state(),
        "batcher": batcher.state_dict(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], batcher: Any, ctx: Context) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(_tuplify(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    ctx.generator.set_state(state["recipe"])
    batcher.load_state_dict(state["batcher"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


#: The checkpoint before ``last.pt`` is kept under this name, so one bad write never ends a run.
PREV_CKPT_NAME = "prev.pt"
#: Checkpoint container format: the torch.save bytes of the state plus their sha256.
_CKPT_FORMAT = 2


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic, checksummed save that keeps the previous checkpoint as ``prev.pt`` (issue 17).

    The state is serialised with torch.save, and that byte string is stored with its sha256, so a
    flipped byte anywhere in the tensors is caught on load instead of resuming silently. The
    previous ``path`` is first hard-linked (copied where links fail) to ``prev.pt``; then the new
    file replaces ``path`` atomically (temp file, fsync, rename). A kill at any moment leaves a
    loadable ``path`` or ``prev.pt``.
    """
    import hashlib
    import io as _io
    import shutil

    buf = _io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    wrapped = {
        "facesr_checkpoint": _CKPT_FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    if path.is_file():
        prev = path.with_name(PREV_CKPT_NAME)
        with atomic_path(prev) as tmp:
            tmp.unlink()
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
    with atomic_path(path) as tmp:
        torch.save(wrapped, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code is unpickled) and verify its sha256."""
    import hashlib
    import io as _io

    if not path.is_file():
        raise DataError(f"no checkpoint at {path}; is this a training run folder?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and state.get("facesr_checkpoint") == _CKPT_FORMAT:
            payload = state["payload"].numpy().tobytes()
            if hashlib.sha256(payload).hexdigest() != state["sha256"]:
                raise DataError(f"{path}: checkpoint fails its sha256 check (corrupt file)")
            inner = _io.BytesIO(payload)
            state = torch.load(inner, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError("not a checkpoint dict")
        return state
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from None


def load_resume_checkpoint(path: Path) -> dict[str, Any]:
    """``load_checkpoint(path)``, falling back to ``prev.pt`` when ``path`` is missing or corrupt.

    A corrupt ``path`` is renamed to ``<name>.corrupt`` (kept for inspection, and so the next save
    does not rotate it over the good previous checkpoint); the fall-back is announced on stderr.
    """
    import sys

    prev = path.with_name(PREV_CKPT_NAME)
    try:
        return load_checkpoint(path)
    except DataError as exc:
        if not prev.is_file():
            raise
        why = str(exc)
    state = load_checkpoint(prev)
    if path.is_file():
        os.replace(path, path.with_name(path.name + ".corrupt"))
    print(f"facesr train: {why}; resuming from {prev.name} (step {state.get('step', '?')})", file=sys.stderr)
    return state


def config_for_resume(run_dir: str | os.PathLike[str], overrides: list[str]) -> TrainConfig:
    """The config embedded in a run's checkpoint, with overrides (e.g. more steps) applied."""
    from facesr.config import apply_overrides

    run_dir = Path(run_dir)
    state = load_resume_checkpoint(run_dir / "ckpt" / CKPT_NAME)
    import yaml

    data = apply_overrides(yaml.safe_load(state["config_yaml"]), overrides)
    data.setdefault("run", {})["out_dir"] = str(run_dir)
    return config_from_dict(data, f"{run_dir}/ckpt/{CKPT_NAME}")


class Meter:
    """Running means of the logged scalars between two log lines, plus throughput."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.images = 0
        self.t0 = time.perf_counter()

    def add(self, logs: dict[str, float], images: int) -> None:
        for k, v in logs.items():  # tensors stay on their device until flush(): no host sync per step
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.images += images

    def flush(self) -> dict[str, float]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        out = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        out["images_per_s"] = self.images / dt
        self.__init__()
        return out


def image_grid(columns: list[torch.Tensor], rows: int = 4) -> np.ndarray:
    """Side-by-side columns (each [N,3,128,128] in [0,1]) for the first ``rows`` samples -> uint8 HxWx3."""
    cols = [c[:rows].detach().float().clamp(0, 1).cpu() for c in columns]
    grid = torch.cat([torch.cat(list(c), dim=2) for c in zip(*cols, strict=True)], dim=1)
    return quantise_half_up(grid.permute(1, 2, 0)).numpy()


def _sync_flag(flag: bool, ctx: Context) -> bool:
    """Rank 0's decision (e.g. 'time is up'), seen by every rank."""
    if ctx.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def _mean_over_ranks(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Average logged scalars over the ranks (each saw its slice of the global batch)."""
    if ctx.world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor(
        [values[k] for k in keys],
        dtype=torch.float64,
        device=ctx.device if ctx.device.type == "cuda" else "cpu",
    )
    dist.all_reduce(t)
    return {k: float(v) / ctx.world for k, v in zip(keys, t.tolist(), strict=True)}


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (the steps that will be redone)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def run_totals(
    prior: dict[str, float], *, step: int, images: int, wall_s: float, device: torch.device
) -> dict[str, float]:
    """Training that went into the exported weights, this run plus ``prior`` (the runs behind
    ``model.init_from``, read when the run started: see ``train``).

    CPU-hours are wall-clock hours times the torch threads of this process (the cores it kept busy); GPU
    hours are wall-clock hours on a CUDA device.
    """
    hours = wall_s / 3600.0
    cpu_h = hours * torch.get_num_threads() if device.type == "cpu" else 0.0
    gpu_h = hours if device.type == "cuda" else 0.0
    return {
        "steps": prior.get("steps", 0.0) + step,
        "faces_seen": prior.get("faces_seen", 0.0) + images,
        "cpu_hours": round(prior.get("cpu_hours", 0.0) + cpu_h, 4),
        "gpu_hours": round(prior.get("gpu_hours", 0.0) + gpu_h, 4),
        "runs": prior.get("runs", 0.0) + 1,
    }


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, resume: bool = False) -> Path:
    """Train according to ``cfg`` (continuing the run in ``cfg.run.out_dir`` if ``resume``)."""
    from facesr.train.recipes import build_recipe, make_batcher

    # 1. Processes, device and precision.
    rank, world, device = init_distributed(cfg.run.device)
    precision = resolve_precision(cfg.run.precision, device)
    if cfg.run.threads is not None and device.type == "cpu":
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    if cfg.data.batch_size % world:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} must be divisible by the {world} processes")
    run_dir = cfg.out_path()
    ckpt_path = run_dir / "ckpt" / CKPT_NAME
    if not resume and ckpt_path.exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another run.name")
    if resume and rank == 0:
        # A kill during a checkpoint write leaves its temporary file; nothing else writes here now.
        for stale in remove_stale_temps(ckpt_path.parent):
            print(f"facesr train: removed {stale.name}, left by an interrupted checkpoint write")

    # 2. Seeds: the same on every rank (same initial weights, same global batches).
    seed = cfg.run.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ctx = Context(
        device=device,
        rank=rank,
        world=world,
        precision=precision,
        generator=torch.Generator().manual_seed(seed + 1),
    )

    # 3. Data: the prepared faces live on the data device; degradation happens in next_batch().
    #    The recipe brings its own batcher, preview batch and description.
    data_device = device if cfg.data.device == "auto" else torch.device(cfg.data.device)
    batcher, preview, data_desc = make_batcher(cfg, data_device, seed)
    val_batch = None
    if cfg.data.val_faces:  # held out of the training batches for run.val_every (facesr.train.validate)
        from facesr.train.validate import carve_validation

        val_batch = carve_validation(batcher, cfg.data.val_faces, seed)
        data_desc += f"; {cfg.data.val_faces} of them held out for validation"

    def fetch() -> dict[str, torch.Tensor]:
        return {k: ctx.local(v).to(device, non_blocking=True) for k, v in batcher.next_batch().items()}

    ctx.fetch = fetch

    # 4. Recipe (networks + losses), optimisers, lr schedules, scaler, EMA.
    recipe = build_recipe(cfg, ctx)
    validator = None
    if val_batch is not None and cfg.run.val_every:
        from facesr.train.validate import Validator

        validator = Validator(val_batch, recipe, cfg.run.val_every, device)
    steps = cfg.run.steps
    milestones = [max(1, round(f * steps)) for f in cfg.schedule.milestones]
    optimizers, schedulers, updaters = {}, {}, {}
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    for name, params in recipe.trainable().items():
        lr, betas = (cfg.optim.d_lr, cfg.optim.d_betas) if name == "D" else (cfg.optim.lr, cfg.optim.betas)
        impl = "fused" if cfg.run.sync == "log" else cfg.optim.impl  # on-device skip needs fused Adam
        groups = lr_groups(recipe.nets[name], params, lr, cfg.optim.lr_scale) if name == "G" else params
        opt = make_optimizer(groups, lr, betas, cfg.optim.weight_decay, impl, device)
        optimizers[name] = opt
        schedulers[name] = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, cfg.schedule.gamma)
        manual = world if name in recipe.sync_manually else 1
        updaters[name] = Updater(name, params, opt, cfg.optim.grad_clip, scaler, average_over=manual)
        updaters[name].deferred = cfg.run.sync == "log"  # checked against optim.impl in config.py
    ema = EMA(recipe.generator, cfg.ema.decay, cfg.ema.start)

    # 5. Resume: every piece of state, then the RNGs last (so nothing above disturbs them).
    # The totals behind model.init_from are read once, when the run starts, and kept in its checkpoints
    # (warmstart.checkpoint_prior_totals says why).
    from facesr.train.warmstart import checkpoint_prior_totals, prior_totals

    start, elapsed_before, images_before = 0, 0.0, 0
    prior = {} if resume else prior_totals(cfg)
    if resume:
        state = load_resume_checkpoint(ckpt_path)
        prior = checkpoint_prior_totals(state, cfg)
        try:  # an override that changes the networks (model.*, recipe.*) cannot continue this run
            for name, net in recipe.nets.items():
                net.load_state_dict(state["nets"][name])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
                sched.milestones = Counter(milestones)  # follow the (possibly extended) run.steps
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            ema.module.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            what = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"--resume {run_dir}: the checkpoint does not fit the config with these overrides "
                f"({type(exc).__name__}: {what}); resume with overrides that keep the networks, e.g. run.steps"
            ) from None
        for name, up in updaters.items():
            up.skipped = int(state.get("skipped", {}).get(name, 0))
        set_rng_state(state["rng"], batcher, ctx)
        start, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        images_before = int(state["images_seen"])
        del state
    recipe.bind()  # DDP-wrap after the weights are final (DDP broadcasts rank 0's weights)

    # Writers (rank 0 only): config, log.jsonl, TensorBoard, progress bar.
    revision = git_revision()
    config_yaml = dump(cfg)
    log_path = run_dir / "log.jsonl"
    writer = None
    bar = None
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", config_yaml)
        if resume:
            _truncate_log(log_path, start)
        if cfg.run.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=start if resume else None)
        if cfg.run.progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, initial=start, desc=cfg.run.name, dynamic_ncols=True, mininterval=2.0)

    def checkpoint(step: int, elapsed: float, images: int) -> None:
        for up in updaters.values():
            up.settle()  # run.sync=log: the on-device skip counts, read once here
        if not ctx.is_main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "elapsed_s": elapsed,
                "images_seen": images,
                "world": world,
                "config_yaml": config_yaml,
                "git": revision,
                "torch": str(torch.__version__),
                "nets": {k: v.state_dict() for k, v in recipe.nets.items()},
                "optimizers": {k: v.state_dict() for k, v in optimizers.items()},
                "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
                "scaler": scaler.state_dict() if scaler is not None else None,
                "ema": ema.module.state_dict(),
                "skipped": {k: u.skipped for k, u in updaters.items()},
                "rng": rng_state(batcher, ctx),
                "prior_totals": prior,
            },
        )

    # 6. The loop.
    t_start = time.perf_counter()
    meter = Meter()
    step = start
    images = images_before
    stopped_early = False
    with open(log_path, "a", encoding="utf-8") if ctx.is_main else contextlib.nullcontext() as log:
        end = steps if cfg.run.stop_step is None else min(steps, cfg.run.stop_step)
        while step < end:
            batch = fetch()
            logs = recipe.step(batch, step, updaters)
            with warnings.catch_warnings():  # the critic's schedule also counts steps before it starts
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                for sched in schedulers.values():
                    sched.step()
            ema.update(recipe.generator, step)
            step += 1
            images += cfg.data.batch_size
            for name, up in updaters.items():
                if up.deferred:  # run.sync=log: device tensors, averaged by the Meter at log time
                    logs[f"skipped/{name}"] = up.last_skipped
                    logs[f"grad_norm/{name}"] = up.last_norm
                    continue
                if up.last_skipped:
                    logs[f"skipped/{name}"] = 1.0
                    if ctx.is_main:
                        msg = f"step {step}: non-finite {name} loss/gradient, update skipped"
                        (bar.write if bar else print)(msg)
                        log.write(json.dumps({"step": step, "event": "skipped", "net": name}) + "\n")
                logs[f"grad_norm/{name}"] = up.last_norm if math.isfinite(up.last_norm) else 0.0
            meter.add(logs, cfg.data.batch_size)
            elapsed = elapsed_before + time.perf_counter() - t_start
            out_of_time = (
                cfg.run.max_minutes is not None and (time.perf_counter() - t_start) > 60 * cfg.run.max_minutes
            )
            at_stop_step = cfg.run.stop_step is not None and step >= cfg.run.stop_step
            stop = (_sync_flag(out_of_time, ctx) or at_stop_step) and step < steps

            if bar is not None:
                bar.update(1)
            if step % cfg.run.log_every == 0 or step == steps or stop:
                means = _mean_over_ranks(meter.flush(), ctx)
            if ctx.is_main and (step % cfg.run.log_every == 0 or step == steps or stop):
                means.update({f"lr/{k}": s.get_last_lr()[0] for k, s in schedulers.items()})
                record = {"step": step, "elapsed_s": round(elapsed, 2), "images": images, **means}
                log.write(json.dumps(record) + "\n")
                log.flush()
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(k, v, step)
                if bar is not None:
                    bar.set_postfix(
                        {
                            k.split("/")[-1]: f"{v:.3g}"
                            for k, v in means.items()
                            if k in recipe.headline or k == "images_per_s"
                        }
                    )
            if ctx.is_main and (step % cfg.run.image_every == 0 or step == steps or stop):
                grid = image_grid(recipe.preview(ema.module, preview))
                write_image(run_dir / "images" / "latest.png", grid)
                if writer is not None:
                    writer.add_image("preview (input | output | target)", grid, step, dataformats="HWC")
            if validator is not None and ctx.is_main and validator.due(step, step == steps or stop):
                t_val = elapsed_before + time.perf_counter() - t_start  # training seconds (setup excluded)
                validator(ema.module, step=step, elapsed_s=t_val, images=images, log=log, writer=writer)
            if step % cfg.run.ckpt_every == 0 or step == steps or stop:
                checkpoint(step, elapsed, images)
            if stop:
                stopped_early = True
                if ctx.is_main:
                    why = "run.stop_step" if at_stop_step else "run.max_minutes"
                    (bar.write if bar else print)(f"{why} reached at step {step}; stopping cleanly")
                break

    # 7. Export (rank 0): EMA generator as fp16 safetensors, card draft, loss curve.
    wall = time.perf_counter() - t_start
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    for up in updaters.values():
        up.settle()
    if ctx.is_main and cfg.run.export:
        from facesr.train.report import write_card, write_loss_curve

        meta = {"facesr.recipe": cfg.recipe.name, "facesr.steps": str(step), "facesr.git": revision}
        meta["facesr.totals"] = json.dumps(
            run_totals(prior, step=step, images=images, wall_s=elapsed_before + wall, device=device),
            sort_keys=True,
        )
        recipe.export(ema.module, run_dir, meta)
        write_loss_curve(log_path, run_dir / "loss_curve.png")
        write_card(
            run_dir,
            cfg,
            step=step,
            wall_s=elapsed_before + wall,
            images=images,
            world=world,
            device=device,
            precision=precision,
            revision=revision,
            stopped_early=stopped_early,
            generator=recipe.generator,
            skipped={k: u.skipped for k, u in updaters.items()},
            data_desc=data_desc,
        )
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run_dir


__all__ = ["EMA", "Context", "Updater", "config_for_resume", "hardware", "iter_log", "train"]
