"""kill -9 a tiny CPU training run at random points, resume it each time, compare with an uninterrupted run.

Why: a training run on a shared machine gets killed (OOM killer, pre-emption, Ctrl+\\). Resuming must
continue bit for bit, and a kill in the middle of writing a checkpoint must never leave a checkpoint
that does not load. This script makes both claims measurable with ``--kills`` (default 20) kills.

Procedure (all on CPU, one thread, the tiny config ``configs/tiny_cpu.yaml`` on the synthetic prepared
set that the training tests use, so no shared data is needed):

1. Reference: ``facesr train configs/tiny_cpu.yaml ... run.steps=N`` uninterrupted.
2. Interrupted: the same command, then ``facesr train --resume RUN`` again and again; every process is
   killed with SIGKILL either at a random time (uniform over startup + a few steps) or, on alternate
   kills, the moment a checkpoint temp file appears (i.e. in the middle of writing a checkpoint).
   After each kill every checkpoint file in the run (``ckpt/*.pt``, ``*.safetensors``) must load.
3. A last ``--resume`` runs to the end. Every tensor in the final checkpoint (networks, EMA,
   optimiser states) and in ``weights.safetensors`` must equal the reference's bit for bit, and the
   log must hold each logged step exactly once.

    python benchmarks/fuzz/kill_resume.py --kills 20 --out workspace/fuzz/kill_resume.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
# The synthetic prepared set and tiny-run overrides are the training tests' own fixtures; reuse them
# rather than keep a second copy that could drift.
sys.path.insert(0, str(REPO / "tests"))
from facesr.errors import FacesrError  # noqa: E402
from facesr.train.loop import iter_log, load_checkpoint  # noqa: E402
from train_helpers import TINY, env_1thread, facesr_cmd, make_prepared, tiny_overrides  # noqa: E402


def flat_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested dict/list, keyed by its path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat_tensors(v, f"{prefix}[{i}]"))
    return out


def compared_state(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "ckpt" / "last.pt")
    out = flat_tensors({k: state[k] for k in ("nets", "ema", "optimizers") if k in state})
    from safetensors import safe_open

    with safe_open(str(run / "weights.safetensors"), "pt") as fh:
        for k in fh.keys():  # noqa: SIM118 - safe_open has no iterator
            out[f"weights.safetensors:{k}"] = fh.get_tensor(k)
    return out


def _critic_problems(path: Path) -> list[str]:
    """Why the exported critic (``critic.safetensors``, read by ``model.critic_init_from``) cannot be
    used: unreadable, or a non-finite tensor; [] when it is fine."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        return [f"{path.name}: {exc}"]
    return [f"{path.name}: non-finite {k}" for k, t in tensors.items() if not torch.isfinite(t).all()]


def check_files_load(run: Path) -> tuple[list[str], int]:
    """(checkpoint files that fail to load, leftover temp files) in a run folder."""
    bad = []
    for p in sorted((run / "ckpt").glob("*.pt")) if (run / "ckpt").is_dir() else []:
        try:
            load_checkpoint(p)
        except FacesrError as exc:
            bad.append(f"{p.name}: {exc}")
    for p in sorted(run.glob("*.safetensors")):
        try:
            if p.name == "critic.safetensors":  # the exported critic is no restorer: read its tensors
                bad.extend(_critic_problems(p))
                continue
            from facesr.zoo import load_model

            load_model(p)
        except FacesrError as exc:
            bad.append(f"{p.name}: {exc}")
    temps = len(list(run.rglob(".*.tmp")))
    return bad, temps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--ckpt-every", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="seed for the kill times")
    ap.add_argument("--work", type=Path, default=REPO / "workspace" / "fuzz" / "kill_resume")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    shutil.rmtree(args.work, ignore_errors=True)
    prep = make_prepared(args.work / "prep" / "tiny")
    common = [
        f"run.steps={args.steps}",
        f"run.ckpt_every={args.ckpt_every}",
        "run.log_every=3",
        "run.threads=1",
        "run.tensorboard=false",
        "run.progress=false",
        "run.image_every=1000000",
    ]
    env = env_1thread()

    t0 = time.perf_counter()
    ref = args.work / "ref"
    done = subprocess.run(
        facesr_cmd("train", str(TINY), *tiny_overrides(prep, ref), *common),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"reference run failed:\n{done.stderr[-3000:]}")
    ref_s = time.perf_counter() - t0
    first_log = next(iter_log(ref / "log.jsonl"))
    step_s = first_log["elapsed_s"] / first_log["step"]
    startup_s = max(1.0, ref_s - json.loads((ref / "log.jsonl").read_text().splitlines()[-1])["elapsed_s"])
    print(f"reference: {ref_s:.1f} s ({startup_s:.1f} s startup, {step_s:.2f} s/step)", file=sys.stderr)

    cut = args.work / "cut"
    kills: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    first = True
    while len(kills) < args.kills:
        if first:  # no checkpoint yet: nothing to resume, so the run starts again from scratch
            shutil.rmtree(cut, ignore_errors=True)
        cmd = (
            facesr_cmd("train", str(TINY), *tiny_overrides(prep, cut), *common)
            if first
            else facesr_cmd("train", "--resume", str(cut))
        )
        mode = "during-checkpoint-write" if len(kills) % 2 else "random-time"
        before = (
            load_checkpoint(cut / "ckpt" / "last.pt")["step"] if (cut / "ckpt" / "last.pt").is_file() else 0
        )
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
        delay = rng.uniform(0.5 * startup_s, startup_s + 5 * args.ckpt_every * step_s)
        start = time.monotonic()
        saw_temp = False
        if mode == "random-time":
            while proc.poll() is None and time.monotonic() - start < delay:
                time.sleep(0.01)
        else:  # poll for the atomic writer's temp file and kill as soon as it exists
            ckpt_dir = cut / "ckpt"
            # Temp files left by earlier kills do not count: wait for a new one (a write in progress).
            stale = set(ckpt_dir.glob(".*.tmp")) if ckpt_dir.is_dir() else set()
            limit = startup_s + 8 * args.ckpt_every * step_s
            while proc.poll() is None and time.monotonic() - start < limit:
                if ckpt_dir.is_dir() and set(ckpt_dir.glob(".*.tmp")) - stale:
                    saw_temp = True
                    break
                time.sleep(0.0005)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if finished:
            if proc.returncode != 0:
                raise SystemExit(f"run failed by itself (status {proc.returncode}):\n{stderr[-3000:]}")
            print("run finished before the planned kills; use more --steps", file=sys.stderr)
            break
        first = first and not (cut / "ckpt" / "last.pt").is_file()
        bad, temps = check_files_load(cut)
        after = (
            load_checkpoint(cut / "ckpt" / "last.pt")["step"] if (cut / "ckpt" / "last.pt").is_file() else 0
        )
        kills.append(
            {
                "kill": len(kills) + 1,
                "mode": mode,
                "after_s": round(time.monotonic() - start, 3),
                "saw_checkpoint_temp_file": saw_temp,
                "ckpt_step_before": before,
                "ckpt_step_after": after,
                "unloadable": bad,
                "temp_files_left": temps,
                "traceback": "Traceback" in stderr,
            }
        )
        print(
            f"kill {len(kills)}: {mode} after {kills[-1]['after_s']:.2f} s, checkpoint step {before} -> "
            f"{after}, unloadable {len(bad)}, temp files {temps}",
            file=sys.stderr,
            flush=True,
        )
    final = subprocess.run(
        facesr_cmd("train", "--resume", str(cut)),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    if final.returncode != 0:
        raise SystemExit(f"final resume failed:\n{final.stderr[-3000:]}")
    cut_s = time.perf_counter() - t1

    a, b = compared_state(ref), compared_state(cut)
    differing = sorted(k for k in a.keys() & b.keys() if not torch.equal(a[k], b[k]))
    key_mismatch = sorted(a.keys() ^ b.keys())
    steps = [r["step"] for r in iter_log(cut / "log.jsonl") if "event" not in r]
    ref_steps = [r["step"] for r in iter_log(ref / "log.jsonl") if "event" not in r]
    bad_final, temps_final = check_files_load(cut)
    report = {
        "kills": len(kills),
        "steps": args.steps,
        "ckpt_every": args.ckpt_every,
        "seed": args.seed,
        "tensors_compared": len(a),
        "tensors_differing": len(differing),
        "differing": differing[:20],
        "key_mismatch": key_mismatch[:20],
        "bit_identical": not differing and not key_mismatch,
        "unloadable_checkpoints_seen": sum(len(k["unloadable"]) for k in kills) + len(bad_final),
        "kills_during_checkpoint_write": sum(k["saw_checkpoint_temp_file"] for k in kills),
        "kills_with_progress": sum(k["ckpt_step_after"] > k["ckpt_step_before"] for k in kills),
        "temp_files_left_at_end": temps_final,
        "log_steps_match": steps == ref_steps,
        "reference_s": round(ref_s, 1),
        "interrupted_total_s": round(cut_s, 1),
        "kill_log": kills,
        "command": " ".join(["benchmarks/fuzz/kill_resume.py", *(argv or sys.argv[1:])]),
    }
    out = args.out or (args.work.parent / "kill_resume.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "kill_log"}, indent=2))
    ok = report["bit_identical"] and report["unloadable_checkpoints_seen"] == 0 and report["log_steps_match"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
