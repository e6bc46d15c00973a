"""Validation during training: PSNR/SSIM of the EMA generator on fixed held-out faces, against time.

Why: the issue asks for *time-to-quality* ("GPU minutes to reach the two-stage PSNR"). The final
benchmark score says where a run ends, not when it got there, so with ``run.val_every: N`` the loop
scores the EMA generator every N steps on the same faces with the same masks and writes
``{"step", "event": "val", "elapsed_s", "images", "val/psnr", "val/ssim", "val/faces"}`` to
``log.jsonl`` (and ``val/psnr``, ``val/ssim`` to TensorBoard). :func:`time_to_quality` then reads the
first record that reaches a target; ``facesr time-to-quality LOG --target 26.1`` prints it.

Which faces: ``data.val_faces`` faces of the training split, chosen by ``run.seed`` (a generator of its
own, so the choice does not disturb any training random stream), are taken out of the training
batches: validation never scores a face the run trains on. With ``data.val_faces: 0`` (the default)
nothing is held out and existing runs are unchanged. Which masks: one draw per face from a generator
seeded with ``seed + VAL_MASK_SEED``, no flips; the LR inputs are rounded to 8 bits and the outputs too,
as for the frozen benchmarks (``facesr.eval.runner``), so the numbers are on the same footing.

What is scored depends on the recipe: a restorer (``jdsr``, ``sr_only``, ``two_stage_sr``) is scored
on its output ``sr`` against the HR face, fed the recipe's input (masked LR, or clean LR for
``two_stage_sr``); the two-stage denoiser on ``denoised`` against the clean LR. A two-stage *chain* is
scored on the same faces by :func:`score_restorer` (``facesr gpu check`` does this) so that its
number is the target the joint model's curve is compared with.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from facesr.errors import ConfigError, DataError
from facesr.pixels import round8

#: Offsets from ``run.seed`` for the hold-out choice and the validation masks (fixed: part of the protocol).
VAL_PICK_SEED = 7919
VAL_MASK_SEED = 104729


def holdout_positions(n_split: int, n_val: int, seed: int) -> np.ndarray:
    """Sorted positions (into a split's rows) of the ``n_val`` held-out faces, chosen by ``seed``."""
    if n_val >= n_split:
        raise ConfigError(f"data.val_faces={n_val} must be smaller than the {n_split} faces of the split")
    rng = np.random.default_rng(seed + VAL_PICK_SEED)
    return np.sort(rng.permutation(n_split)[:n_val])


def carve_validation(batcher: Any, n_val: int, seed: int) -> dict[str, torch.Tensor]:
    """Take ``n_val`` faces out of ``batcher`` (a MaskedFaceBatcher) and return their fixed val batch.

    The val batch (``lr_masked``, ``lr_clean``, ``hr``, ``index``) is synthesised before the faces are
    removed, with its own seeded generator and no flips; the batcher's generator state is restored,
    so the training stream is what it would be with those faces absent from the start.
    """
    for attr in ("rows", "faces", "landmarks", "make_batch", "generator"):
        if not hasattr(batcher, attr):
            raise ConfigError(f"data.val_faces: the batcher {type(batcher).__name__} cannot hold faces out")
    pos = holdout_positions(len(batcher.rows), n_val, seed)
    batch = fixed_batch(batcher, pos, seed)
    keep = np.ones(len(batcher.rows), dtype=bool)
    keep[pos] = False
    keep_t = torch.from_numpy(np.flatnonzero(keep)).to(batcher.faces.device)
    batcher.rows = batcher.rows[keep]
    batcher.faces = batcher.faces[keep_t]
    batcher.landmarks = batcher.landmarks[keep_t]
    return batch


def fixed_batch(batcher: Any, positions: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
    """The val batch of the faces at ``positions``: one seeded mask each, no flip, 8-bit LR inputs."""
    # Validation LR is always the benchmark's clean antialiased bicubic, whatever data.degradation
    # trains on, so runs with and without real-world degradations are scored on the same kind of input.
    state, flip = batcher.generator.get_state(), batcher.flip
    degradation = getattr(batcher, "degradation", None)
    try:
        batcher.generator.manual_seed(seed + VAL_MASK_SEED)
        batcher.flip = False
        batcher.degradation = None
        b = batcher.make_batch(torch.as_tensor(positions, dtype=torch.long))
    finally:
        batcher.generator.set_state(state)
        batcher.flip = flip
        batcher.degradation = degradation
    return {
        "lr_masked": round8(b["lr_masked"]),
        "lr_clean": round8(b["lr_clean"]),
        "hr": b["hr"],
        "index": b["index"],
    }


@torch.no_grad()
def score(
    net: nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    input_key: str,
    output_key: str,
    target_key: str,
    device: torch.device | str,
    chunk: int = 64,
) -> dict[str, float]:
    """Mean PSNR/SSIM of ``net(batch[input_key])[output_key]`` (8-bit rounded) vs ``batch[target_key]``."""
    from facesr.eval.metrics import psnr_per_image, ssim_per_image

    was_training = net.training
    net.eval()
    psnr, ssim = [], []
    try:
        for i in range(0, len(batch[input_key]), chunk):
            x = batch[input_key][i : i + chunk].to(device)
            out = net(x)
            y = out[output_key] if isinstance(out, dict) else out
            y = round8(y)
            t = batch[target_key][i : i + chunk].to(device).float()
            psnr.append(psnr_per_image(y, t).cpu())
            ssim.append(ssim_per_image(y, t).cpu())
    finally:
        net.train(was_training)
    return {
        "val/psnr": round(float(torch.cat(psnr).mean()), 4),
        "val/ssim": round(float(torch.cat(ssim).mean()), 5),
        "val/faces": len(batch[input_key]),
    }


def score_restorer(restorer: nn.Module, batch: dict[str, torch.Tensor], input_key: str = "lr_masked") -> dict:
    """A loaded zoo restorer (tensor in, 128x128 tensor out) on a val batch: how chains get their target."""
    device = next(restorer.parameters()).device
    return score(restorer, batch, input_key=input_key, output_key="sr", target_key="hr", device=device)


class Validator:
    """Scores the EMA generator every ``run.val_every`` steps; writes log.jsonl records and scalars."""

    def __init__(self, batch: dict[str, torch.Tensor], recipe: Any, every: int, device: torch.device) -> None:
        self.batch, self.every, self.device = batch, every, device
        self.input_key = getattr(recipe, "input_key", "lr_masked")
        sr = getattr(recipe, "uses_sr_loss", True)
        self.output_key, self.target_key = ("sr", "hr") if sr else ("denoised", "lr_clean")

    def due(self, step: int, last: bool) -> bool:
        return step % self.every == 0 or last

    def __call__(
        self,
        net: nn.Module,
        *,
        step: int,
        elapsed_s: float,
        images: int,
        log: IO[str] | None = None,
        writer: Any = None,
    ) -> dict[str, Any]:
        """Score ``net`` (the EMA generator) and write one ``{"event": "val"}`` record."""
        res = score(
            net,
            self.batch,
            input_key=self.input_key,
            output_key=self.output_key,
            target_key=self.target_key,
            device=self.device,
        )
        # cpu_s: CPU seconds of this process so far (all threads; setup and validation included), the
        # budget axis of PSNR-vs-CPU-minutes plots, which wall time is not on a shared machine
        record = {
            "step": step,
            "event": "val",
            "elapsed_s": round(elapsed_s, 2),
            "cpu_s": round(time.process_time(), 1),
            "images": images,
            **res,
        }
        if log is not None:
            log.write(json.dumps(record) + "\n")
            log.flush()
        if writer is not None:
            writer.add_scalar("val/psnr", res["val/psnr"], step)
            writer.add_scalar("val/ssim", res["val/ssim"], step)
        return record


# ----------------------------------------------------------------------------------------------
# Time to quality (reads log.jsonl; no torch work)
# ----------------------------------------------------------------------------------------------


def val_records(log_path: str | Path) -> Iterator[dict[str, Any]]:
    """The ``{"event": "val"}`` records of a run's log.jsonl, in order (a line cut by a kill is skipped)."""
    path = Path(log_path)
    if path.is_dir():
        path = path / "log.jsonl"
    if not path.is_file():
        raise DataError(f"no training log at {path}")
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") == "val":
            yield rec


def reference_value(ref: str | Path, metric: str = "val/psnr") -> float:
    """A target read from a file: a JSON object holding ``metric``, or a run/log (its last val record)."""
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if metric not in data:
            raise DataError(f"{path}: no {metric!r} value")
        return float(data[metric])
    recs = list(val_records(path))
    if not recs:
        raise DataError(f"{path}: no validation records (was run.val_every set?)")
    return float(recs[-1][metric])


def time_to_quality(log_path: str | Path, target: float, metric: str = "val/psnr") -> dict[str, Any]:
    """When the run's ``metric`` first reached ``target``: step, training seconds/minutes, images seen."""
    recs = list(val_records(log_path))
    if not recs:
        raise DataError(f"{log_path}: no validation records (was run.val_every set?)")
    out: dict[str, Any] = {"log": str(log_path), "metric": metric, "target": target, "records": len(recs)}
    best = max(recs, key=lambda r: r[metric])
    out["best"] = {"step": best["step"], metric: best[metric], "elapsed_s": best["elapsed_s"]}
    hit = next((r for r in recs if r[metric] >= target), None)
    out["reached"] = hit is not None
    if hit is not None:
        out.update(
            step=hit["step"],
            elapsed_s=hit["elapsed_s"],
            minutes=round(hit["elapsed_s"] / 60.0, 2),
            images=hit.get("images"),
            value=hit[metric],
        )
    return out


def time_to_quality_report(
    logs: list[str], *, target: float | None = None, reference: str | None = None, metric: str = "val/psnr"
) -> list[str]:
    """``facesr time-to-quality``: per run, when its validation metric first reached the target.

    The target is ``target`` or the metric read from ``reference`` (a JSON file or a run folder). Each run
    gives a readable line and its JSON record. Bad input is a DataError (one line).
    """
    value = target if target is not None else reference_value(str(reference), metric)
    lines = []
    for r in (time_to_quality(log, value, metric) for log in logs):
        if r["reached"]:
            lines.append(
                f"{r['log']}: {r['metric']} >= {value:.4g} at step {r['step']} after {r['minutes']} min "
                f"of training ({r['images']} images; value {r['value']})"
            )
        else:
            b = r["best"]
            lines.append(
                f"{r['log']}: {r['metric']} never reached {value:.4g} (best {b[r['metric']]} at step "
                f"{b['step']}, {math.floor(b['elapsed_s'] / 6) / 10} min)"
            )
        lines.append(json.dumps(r))
    return lines
