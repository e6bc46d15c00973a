"""A whole GPU session in three device-tool commands: data, concurrent training, benchmarks, results.

The device tool runs one command at a time for at most 10 minutes, keeps the machine (and its files)
only ~30 s after a command, lets processes started in a new session (``setsid``) run on between
commands, and brings back at most 8 files of 16 MiB (64 MiB in all) from ``$OUT``. So:

* ``start``: rebuilds the prepared set from ``.gpu`` (:mod:`facesr.gpu.unpack`, checked against the packed
  fingerprints), builds the frozen ``utk-mask-x{2,4,8}`` benchmarks in the background (checked against
  the pixel hashes of the ones built here), measures each run's steps/s for ``--calib-seconds`` with
  all runs sharing the GPU, sets one ``run.steps`` for every run (what the slowest ``jdsr`` run reaches
  by the training deadline; the lr milestones, warm-up and EMA start scale with it), then starts every
  run as its own ``setsid`` process (they share the one GPU) with ``run.max_minutes`` up to the
  deadline, and reports progress until this command's time is up.
* ``continue``: the same checks; a run whose process died is resumed from its on-device checkpoint
  (``facesr train --resume``); on a fresh machine (no state: the last one was given back) it plans
  anew from its own start with ``--train-minutes`` (pass what is still wanted).
  Brings back logs and a snapshot of every run's EMA weights (fp16), in case the machine is lost.
* ``finish``: waits for the runs to stop at the deadline, combines the two-stage parts, scores every
  model on the rebuilt benchmarks (masked and clean input) and, for time-to-quality, every model and
  the two-stage chains on the runs' held-out validation faces, and packs weights, logs, loss curves,
  result JSONs and a summary into at most 7 tar files of <= 15.5 MiB plus ``summary.json`` in ``$OUT``.
  On a fresh machine it trains only until ``--cmd-minutes`` minus ``--eval-reserve``, then does the same;
  a run still going past its deadline is stopped and its last checkpoint's EMA exported instead.

Every phase is idempotent and keyed by absolute times in ``<workspace>/gpu_session/state.json``, so a
repeated or late command does the right thing. Run through ``scripts/gpu_session.sh`` (installs the
carried wheels, sets the paths). See docs/training.md, "Training on a lent GPU".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
MIB = 2**20
PART_LIMIT = int(15.5 * MIB)  # per file brought back (the tool's limit is 16 MiB)
MAX_PARTS = 7  # + summary.json = 8 files, the tool's limit
TOTAL_LIMIT = 63 * MIB
DEFAULT_RUNS = (
    "jdsr_lite_x4",
    "jdsr_lite_x8",
    "sr_only_lite_x4",
    "sr_only_lite_x8",
    "two_stage_denoiser_lite_x4",
    "two_stage_sr_lite_x4",
    "two_stage_denoiser_lite_x8",
    "two_stage_sr_lite_x8",
)


def now() -> float:
    return time.time()


def say(msg: str) -> None:
    print(f"[gpu_session +{now() - T_CMD:5.0f}s] {msg}", flush=True)


T_CMD = now()


# ----------------------------------------------------------------------------------------------
# State, processes
# ----------------------------------------------------------------------------------------------


class Session:
    """Paths and the persisted plan of one GPU session (all under the workspace)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ws = Path(os.environ.get("FACESR_WORKSPACE", REPO / "workspace")).resolve()
        self.dir = self.ws / "gpu_session"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.packed = Path(args.packed).resolve()
        self.prepared = self.ws / "prepared" / "utkface"
        self.bench = self.ws / "benchmarks"
        self.results = self.ws / "gpu_results"
        self.state_path = self.dir / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        )

    def save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.state_path)

    def run_dir(self, name: str) -> Path:
        return self.ws / "runs" / name

    def config(self, name: str) -> dict[str, Any]:
        return yaml.safe_load((Path(self.args.configs) / f"{name}.yaml").read_text())


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(cmd: list[str], log: Path, exit_file: Path) -> int:
    """Start ``cmd`` in its own session (it outlives this command); its exit code goes to ``exit_file``."""
    exit_file.unlink(missing_ok=True)
    wrapper = ["bash", "-c", '"$@"; echo $? > "$EXIT_FILE"', "run", *cmd]
    env = child_env() | {"EXIT_FILE": str(exit_file)}
    with open(log, "a", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            wrapper, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our finished child
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def last_record(run: Path, event: str | None = None) -> dict[str, Any] | None:
    path = run / "log.jsonl"
    if not path.is_file():
        return None
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") == event:
            last = rec
    return last


# ----------------------------------------------------------------------------------------------
# Data and benchmarks
# ----------------------------------------------------------------------------------------------


def ensure_data(s: Session) -> None:
    """The prepared set from the packed JPEGs (once per machine), checked by facesr.gpu.unpack."""
    if (s.prepared / "faces128.npy").is_file():
        return
    from facesr.gpu.unpack import unpack

    say("unpacking the prepared set from .gpu ...")
    report = unpack(s.packed, s.prepared)
    say(f"prepared: {report['train']} train + {report['test']} test faces, check {report['check']}")


def ensure_benchmarks(s: Session, scales: set[int]) -> None:
    """Build the missing utk-mask benchmarks in the background (one process each, CPU)."""
    for scale in sorted(scales):
        name = f"utk-mask-x{scale}"
        done = s.dir / f"{name}.exit"
        if (s.bench / name / "meta.json").is_file() or alive(s.state.get(f"bench_pid_{name}")):
            continue
        code = (
            "import sys; from pathlib import Path; from facesr.data.benchmarks import build_benchmark; "
            f"build_benchmark({name!r}, Path({str(s.prepared.parent)!r}), Path({str(s.bench)!r}), "
            f"Path({str(s.packed)!r}), limit={s.args.bench_limit!r}, progress=False)"
        )
        pid = spawn([sys.executable, "-c", code], s.dir / f"{name}.log", done)
        s.state[f"bench_pid_{name}"] = pid
        s.save()
        say(f"building {name} in the background (pid {pid})")


def verify_benchmarks(s: Session, scales: set[int], wait_s: float) -> dict[str, Any]:
    """Wait for the builds; compare per-image pixel hashes with the ones packed from the frozen sets."""
    import numpy as np

    from facesr.gpu.pack import bench_fingerprints

    t_end = now() + wait_s
    names = [f"utk-mask-x{k}" for k in sorted(scales)]
    while now() < t_end and not all((s.bench / n / "meta.json").is_file() for n in names):
        time.sleep(2)
    fp_file = s.packed / "bench_fingerprints.npz"
    want = dict(np.load(fp_file)) if fp_file.is_file() else {}
    have = bench_fingerprints(s.bench)
    out: dict[str, Any] = {}
    for n in names:
        if not (s.bench / n / "meta.json").is_file():
            out[n] = "not built"
            continue
        if f"{n}/hr" not in want:
            out[n] = "built; no packed fingerprints to compare with"
            continue
        res = {}
        for key in [k for k in want if k.startswith(n + "/") and not k.endswith("/n")]:
            a, b = want[key], have.get(key, np.zeros(0, np.uint64))
            res[key.split("/")[1]] = f"{int((a[: len(b)] == b[: len(a)]).sum())}/{len(a)} identical"
        out[n] = res
    return out


# ----------------------------------------------------------------------------------------------
# Training runs
# ----------------------------------------------------------------------------------------------


def train_args(
    s: Session, name: str, steps: int, minutes: float, out: Path, calib: bool = False
) -> list[str]:
    """Overrides of one run: data from the unpacked set, budget, schedule scaled to ``steps``."""
    cfg = s.config(name)
    recipe = cfg.get("recipe", {}).get("name", "jdsr")
    ov = [
        f"run.out_dir={out}",
        f"data.prepared={s.prepared}",
        f"data.root={s.packed}",
        f"run.steps={steps}",
        f"run.max_minutes={minutes:.3f}",
        "run.progress=false",
    ]
    if calib:
        ov += ["run.export=false", "run.tensorboard=false", "run.log_every=5", f"run.ckpt_every={10**9}"]
        if recipe == "jdsr":
            ov.append("recipe.warmup_steps=0")  # time the full joint step, critic included
    else:
        first = max(1, round(steps / 30))  # the configs' 2,000 of 60,000 steps
        ov += [
            f"ema.start={first}",
            f"run.ckpt_every={max(50, steps // 12)}",
            f"run.image_every={max(50, steps // 6)}",
            f"run.log_every={max(10, steps // 400)}",
        ]
        if recipe == "jdsr":
            ov.append(f"recipe.warmup_steps={first}")
        if s.args.val_faces:
            ov += [
                f"data.val_faces={s.args.val_faces}",
                f"run.val_every={max(10, steps // s.args.val_points)}",
            ]
    return ov + list(s.args.set)


def calibrate(s: Session, names: list[str]) -> dict[str, float]:
    """Steps/s of every run while all share the device (throwaway runs of ``--calib-seconds``)."""
    root = s.dir / "calib"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    minutes = s.args.calib_seconds / 60.0
    pids = {}
    for n in names:
        args = train_args(s, n, 10**7, minutes, root / n, calib=True)
        cmd = [sys.executable, "-m", "facesr.cli", "train", str(Path(s.args.configs) / f"{n}.yaml"), *args]
        pids[n] = spawn(cmd, root / f"{n}.out", root / f"{n}.exit")
    while any(alive(p) for p in pids.values()):
        time.sleep(2)
    rates = {}
    for n in names:
        recs = [
            json.loads(line)
            for line in (root / n / "log.jsonl").read_text().splitlines()
            if line.strip() and "event" not in line
        ]
        if not recs:
            raise SystemExit(f"calibration of {n} logged nothing; see {root / f'{n}.out'}")
        b = recs[-1]
        a = recs[len(recs) // 3] if len(recs) >= 3 else {"step": 0, "elapsed_s": 0.0}  # skip the warm-up
        rates[n] = (b["step"] - a["step"]) / max(1e-6, b["elapsed_s"] - a["elapsed_s"])
    return rates


def plan(s: Session, names: list[str]) -> None:
    """Deadline and the one ``run.steps`` of every run (first call on a machine)."""
    if "steps" in s.state:
        return
    deadline = T_CMD + 60 * s.args.train_minutes
    if s.args.phase != "start":
        say(f"no state from `start` on this machine (a fresh machine?): planning {s.args.phase} from scratch")
    if s.args.phase == "finish":  # train only as long as this one command leaves room to evaluate
        deadline = min(deadline, T_CMD + 60 * s.args.cmd_minutes - s.args.eval_reserve)
    s.state.setdefault("t0", T_CMD)
    s.state.setdefault("deadline", deadline)
    s.save()
    if s.args.steps:
        steps = s.args.steps
        s.state["rates"] = {}
    else:
        rates = calibrate(s, names)
        s.state["rates"] = {k: round(v, 3) for k, v in rates.items()}
        ref = [v for k, v in rates.items() if k.startswith("jdsr")] or list(rates.values())
        left = s.state["deadline"] - now() - s.args.launch_seconds
        steps = max(10, int(min(ref) * left * 0.97))
        say(f"steps/s with all {len(names)} runs sharing the device: {s.state['rates']}")
    s.state["steps"] = steps
    s.save()
    say(
        f"every run trains {steps} steps (or stops at the deadline, {s.state['deadline'] - now():.0f} s away)"
    )


def ensure_runs(s: Session, names: list[str]) -> None:
    """Start, resume or leave each run so that it trains until the deadline."""
    runs = s.state.setdefault("runs", {})
    for n in names:
        info = runs.setdefault(n, {})
        run = s.run_dir(n)
        exit_file = s.dir / f"{n}.exit"
        if alive(info.get("pid")) and not exit_file.is_file():
            continue
        code = exit_file.read_text().strip() if exit_file.is_file() else None
        last = last_record(run)
        done = last is not None and last["step"] >= s.state["steps"]
        left_min = (s.state["deadline"] - now() - s.args.launch_seconds) / 60.0
        if done or left_min < 0.3:
            info["status"] = "finished" if code in (None, "0") else f"exit {code}"
            continue
        run.parent.mkdir(parents=True, exist_ok=True)
        args = train_args(s, n, s.state["steps"], left_min, run)
        if (run / "ckpt" / "last.pt").is_file():
            cmd = [sys.executable, "-m", "facesr.cli", "train", "--resume", str(run), *args[1:]]
            info["resumed"] = info.get("resumed", 0) + 1
            how = "resumed"
        else:
            cmd = [
                sys.executable,
                "-m",
                "facesr.cli",
                "train",
                str(Path(s.args.configs) / f"{n}.yaml"),
                *args,
            ]
            how = "started"
        info["pid"] = spawn(cmd, run.parent / f"{n}.out", exit_file)
        info["status"] = "running"
        say(f"{how} {n} (pid {info['pid']}, {left_min:.1f} min left)")
    s.save()


def progress(s: Session, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for n in names:
        last, val = last_record(s.run_dir(n)), last_record(s.run_dir(n), "val")
        rows.append(
            {
                "run": n,
                "step": last and last["step"],
                "elapsed_s": last and last["elapsed_s"],
                "images_per_s": last and round(last.get("images_per_s", 0.0), 1),
                "val_psnr": val and val.get("val/psnr"),
                "alive": alive(s.state.get("runs", {}).get(n, {}).get("pid")),
                "exit": (s.dir / f"{n}.exit").read_text().strip()
                if (s.dir / f"{n}.exit").is_file()
                else None,
            }
        )
    return rows


def wait_until(s: Session, names: list[str], t_end: float, stop_when_done: bool) -> None:
    next_report = 0.0
    while now() < t_end:
        running = [n for n in names if alive(s.state.get("runs", {}).get(n, {}).get("pid"))]
        if stop_when_done and not running:
            break
        if now() >= next_report:
            say(json.dumps(progress(s, names)))
            next_report = now() + s.args.report_every
        time.sleep(min(5.0, max(0.5, t_end - now())))


def stop_all(s: Session, names: list[str]) -> None:
    for n in names:
        pid = s.state.get("runs", {}).get(n, {}).get("pid")
        if alive(pid):
            say(f"{n} still running past the deadline: stopping it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


def export_ema(run: Path, dest: Path) -> Path | None:
    """The EMA generator of a run's latest checkpoint as fp16 safetensors (a mid-run snapshot)."""
    import torch

    from facesr.train.config import config_from_dict
    from facesr.train.loop import Context, load_checkpoint
    from facesr.train.recipes import build_recipe

    ckpt = run / "ckpt" / "last.pt"
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt)
    cfg = config_from_dict(yaml.safe_load(state["config_yaml"]), str(ckpt))
    recipe = build_recipe(cfg, Context(device=torch.device("cpu")))
    recipe.generator.load_state_dict(state["ema"])
    dest.mkdir(parents=True, exist_ok=True)
    meta = {"facesr.recipe": cfg.recipe.name, "facesr.steps": str(state["step"]), "facesr.snapshot": "ema"}
    return recipe.export(recipe.generator, dest, meta)


def export_missing(s: Session, names: list[str]) -> dict[str, Any]:
    """Runs that were stopped before their own export: their last checkpoint's EMA, in the run folder."""
    done = {}
    for n in names:
        run = s.run_dir(n)
        if any((run / f).is_file() for f in ("weights.safetensors", "denoiser.safetensors")):
            continue
        try:
            path = export_ema(run, run)
        except Exception as exc:  # report it; the other runs still get evaluated
            done[n] = f"failed: {exc}"
            continue
        if path is not None:
            last = last_record(run)
            done[n] = f"{path.name} from the checkpoint (log step {last and last['step']})"
    return done


def model_name(run: str) -> str:
    return run.replace("_", "-") + "-gpu"


def evaluate_all(s: Session, names: list[str]) -> list[dict[str, Any]]:
    """Combine two-stage parts; score each model on its benchmark, masked and clean input."""
    from facesr.train.recipes.jdsr import combine_two_stage

    models = s.results / "models"
    models.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Path, int, str]] = []  # (name, weights, scale, input)
    for n in names:
        cfg, run = s.config(n), s.run_dir(n)
        scale, recipe = cfg["data"]["scale"], cfg["recipe"]["name"]
        if recipe in ("jdsr", "sr_only") and (run / "weights.safetensors").is_file():
            w = models / f"{model_name(n)}.safetensors"
            shutil.copyfile(run / "weights.safetensors", w)
            jobs += [(model_name(n), w, scale, "masked"), (model_name(n), w, scale, "clean")]
        elif recipe == "two_stage_sr" and (run / "weights.safetensors").is_file():
            w = models / f"{model_name(n)}.safetensors"
            shutil.copyfile(run / "weights.safetensors", w)
            jobs.append((model_name(n), w, scale, "clean"))  # FSRNet's task: face SR of clean LR
            den = s.run_dir(n.replace("two_stage_sr", "two_stage_denoiser")) / "denoiser.safetensors"
            if den.is_file():
                chain_name = model_name(n.replace("two_stage_sr", "two_stage"))
                chain = combine_two_stage(
                    den, run / "weights.safetensors", models / f"{chain_name}.safetensors"
                )
                jobs += [(chain_name, chain, scale, "masked"), (chain_name, chain, scale, "clean")]

    def one(job: tuple[str, Path, int, str]) -> dict[str, Any]:
        name, w, scale, inp = job
        cmd = [sys.executable, "-m", "facesr.cli", "eval", "--model", str(w), "--name", name]
        cmd += ["--benchmark", f"utk-mask-x{scale}", "--input", inp, "--out", str(s.results)]
        cmd += ["--benchmarks-root", str(s.bench)]
        if s.args.bench_limit:
            cmd += ["--limit", str(s.args.bench_limit)]
        t = now()
        p = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=REPO)
        lines = (p.stdout + p.stderr).splitlines()
        tail = [x for x in lines if "wrote" in x or "rror" in x][-3:] or lines[-3:]
        return {"model": name, "input": inp, "rc": p.returncode, "seconds": round(now() - t, 1), "tail": tail}

    with ThreadPoolExecutor(max_workers=s.args.eval_workers) as pool:
        return list(pool.map(one, jobs))


def validation_scores(s: Session, names: list[str]) -> dict[str, Any]:
    """Every restorer (two-stage chains included) on the runs' held-out faces; time-to-quality."""
    import torch

    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.train.validate import carve_validation, score_restorer, time_to_quality
    from facesr.zoo import load_model

    if not s.args.val_faces:
        return {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seed = 0
    out: dict[str, Any] = {}
    for scale in sorted({s.config(n)["data"]["scale"] for n in names}):
        seeds = {s.config(n)["run"].get("seed", 0) for n in names if s.config(n)["data"]["scale"] == scale}
        seed = seeds.pop() if len(seeds) == 1 else 0
        batcher = MaskedFaceBatcher(s.prepared, "train", scale, device, 1, seed, data=s.packed)
        val = carve_validation(batcher, s.args.val_faces, seed)
        for w in sorted((s.results / "models").glob(f"*x{scale}-gpu.safetensors")):
            net = load_model(w, device=device)
            inp = "lr_clean" if "two-stage-sr" in w.name else "lr_masked"
            out[w.stem] = {**score_restorer(net, val, inp), "input": inp, "scale": scale}
        jdsr = [n for n in names if n.startswith("jdsr") and s.config(n)["data"]["scale"] == scale]
        chains = [
            k
            for k, v in out.items()
            if k.startswith("two-stage-")
            and not k.startswith(("two-stage-sr-", "two-stage-denoiser-"))
            and v.get("scale") == scale
        ]
        for n in jdsr:
            for chain in chains:
                if (s.run_dir(n) / "log.jsonl").is_file():
                    ttq = time_to_quality(s.run_dir(n), out[chain]["val/psnr"])
                    out[f"ttq_{n}"] = {**ttq, "target_from": f"{chain} val/psnr"}
    (s.results / "validation.json").write_text(json.dumps(out, indent=1))
    return out


def bundle(s: Session, names: list[str], out_dir: Path, summary: dict[str, Any], weights: bool) -> None:
    """Pack what comes back into <= 7 tars of <= 15.5 MiB + summary.json (the tool's 8-file limit)."""
    items: list[tuple[str, Path]] = []
    for n in names:
        run = s.run_dir(n)
        for f in ("log.jsonl", "card.md", "loss_curve.png", "config.yaml", "images/latest.png"):
            if (run / f).is_file():
                items.append((f"runs/{n}/{f}", run / f))
        if (run.parent / f"{n}.out").is_file():
            items.append((f"runs/{n}/train.out", run.parent / f"{n}.out"))
        if weights:
            for f in ("weights.safetensors", "denoiser.safetensors"):
                if (run / f).is_file():
                    items.append((f"runs/{n}/{f}", run / f))
            snap = s.dir / "snapshots" / n
            if not any((run / f).is_file() for f in ("weights.safetensors", "denoiser.safetensors")):
                try:
                    exported = export_ema(run, snap)
                except Exception as exc:  # a snapshot must not cost the logs
                    say(f"snapshot of {n} failed: {exc}")
                    exported = None
                if exported is not None:
                    items.append((f"runs/{n}/snapshot_{exported.name}", exported))
    if s.results.is_dir():
        for f in sorted(s.results.rglob("*")):
            if f.is_file() and "models" not in f.parts:
                items.append((f"results/{f.relative_to(s.results).as_posix()}", f))
    for f in ("state.json", "utk-mask-x2.log", "utk-mask-x4.log", "utk-mask-x8.log"):
        if (s.dir / f).is_file():
            items.append((f"session/{f}", s.dir / f))
    if (s.prepared / "report.json").is_file():
        items.append(("session/prepared_report.json", s.prepared / "report.json"))
    # First-fit decreasing into parts; what does not fit is listed, not silently dropped.
    items.sort(key=lambda it: -it[1].stat().st_size)
    parts: list[list[tuple[str, Path]]] = []
    sizes: list[int] = []
    left_out = []
    for arc, path in items:
        size = path.stat().st_size + 1024
        for i, used in enumerate(sizes):
            if used + size <= PART_LIMIT:
                parts[i].append((arc, path))
                sizes[i] += size
                break
        else:
            if len(parts) < MAX_PARTS and size <= PART_LIMIT and sum(sizes) + size <= TOTAL_LIMIT:
                parts.append([(arc, path)])
                sizes.append(size)
            else:
                left_out.append(arc)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        with tarfile.open(out_dir / f"bundle_{i + 1}.tar", "w") as tar:
            for arc, path in sorted(part):
                tar.add(path, arcname=arc)
    summary["bundle"] = {
        "files": [f"bundle_{i + 1}.tar" for i in range(len(parts))],
        "MiB": [round((out_dir / f"bundle_{i + 1}.tar").stat().st_size / MIB, 2) for i in range(len(parts))],
        "left_out": left_out,
        "unpack": "for f in bundle_*.tar; do tar -xf $f -C workspace/gpu_back; done",
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))


# ----------------------------------------------------------------------------------------------
# Phases
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """``facesr gpu session [options]`` (``-h`` lists them)."""
    ap = argparse.ArgumentParser(prog="facesr gpu session", description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["start", "continue", "finish"])
    ap.add_argument("--cmd-minutes", type=float, default=9.3, help="this command's length (tool limit: 10)")
    ap.add_argument("--train-minutes", type=float, default=22.0, help="training deadline after `start` began")
    ap.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="config names in --configs")
    ap.add_argument("--configs", default=str(REPO / "configs"))
    ap.add_argument("--packed", default=str(REPO / ".gpu"))
    ap.add_argument("--steps", type=int, default=None, help="run.steps for every run (skips calibration)")
    ap.add_argument("--calib-seconds", type=float, default=50.0)
    ap.add_argument("--eval-reserve", type=float, default=240.0, help="finish: seconds kept for evaluation")
    ap.add_argument("--val-faces", type=int, default=256, help="train faces held out for validation (0: off)")
    ap.add_argument("--val-points", type=int, default=40, help="validations per run")
    ap.add_argument("--bench-limit", type=int, default=None, help="benchmark faces (smoke tests only)")
    ap.add_argument("--eval-workers", type=int, default=4)
    ap.add_argument("--report-every", type=float, default=60.0)
    ap.add_argument("--launch-seconds", type=float, default=25.0, help="a run's start-up before it trains")
    ap.add_argument("--out", default=os.environ.get("OUT", str(REPO / "out" / "gpu")))
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (key=value)")
    args = ap.parse_args(argv)

    s = Session(args)
    names = [n for n in args.runs.split(",") if n]
    scales = {int(s.config(n)["data"]["scale"]) for n in names}
    t_end = T_CMD + 60 * args.cmd_minutes
    out_dir = Path(args.out)
    summary: dict[str, Any] = {"phase": args.phase, "device": device_name()}

    ensure_data(s)
    ensure_benchmarks(s, scales)
    plan(s, names)
    ensure_runs(s, names)
    if args.phase != "finish":
        # leave time for the bundle (continue: exporting every run's EMA snapshot on the CPU)
        wait_until(s, names, t_end - (90 if args.phase == "continue" else 30), stop_when_done=False)
        summary["progress"] = progress(s, names)
        bundle(s, names, out_dir, summary, weights=args.phase == "continue")
        say(json.dumps(summary))
        return
    # finish: the runs stop themselves at the deadline (run.max_minutes) and export; a run that has not
    # by then is stopped and its last checkpoint's EMA is exported instead (said in the summary).
    wait_until(s, names, min(s.state["deadline"] + 90, t_end - args.eval_reserve + 60), stop_when_done=True)
    stop_all(s, names)
    wait_until(s, names, now() + 15, stop_when_done=True)
    summary["progress"] = progress(s, names)
    summary["exported_from_checkpoint"] = export_missing(s, names)
    summary["benchmarks"] = verify_benchmarks(s, scales, wait_s=max(10.0, t_end - now() - 240))
    summary["eval"] = evaluate_all(s, names)
    summary["validation"] = validation_scores(s, names)
    summary["runs"] = s.state.get("runs", {})
    summary["steps"], summary["rates_calibration"] = s.state.get("steps"), s.state.get("rates")
    bundle(s, names, out_dir, summary, weights=True)
    say(json.dumps({k: summary[k] for k in ("progress", "benchmarks", "validation", "bundle")}))


def device_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover
        return "unknown"
