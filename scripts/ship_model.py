"""Install a training run's exported weights into the model zoo, with its card, curve and log.

Why a script: the shipped files, their sha256 in ``zoo.json`` and the scores in the card must all come
from the same run and the same result files, never typed by hand. Run it twice: once to install the
weights (so that ``facesr eval --model NAME`` can score them), and again with ``--results`` after
evaluating, to put the measured scores into the card and the zoo entry.

    python scripts/ship_model.py workspace/runs/jdsr_lite_x4_cpu --name jdsr-lite-x4 --task masked
    facesr eval --model jdsr-lite-x4 --benchmark utk-mask-x4 --out results
    python scripts/ship_model.py workspace/runs/jdsr_lite_x4_cpu --name jdsr-lite-x4 --task masked \
        --results results/utk-mask-x4__jdsr-lite-x4.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from facesr import zoo
from facesr.io import atomic_write_text

SCORE_KEYS = ("psnr", "ssim", "psnr_y", "ssim_y", "identity", "frd")


def _scores_table(result_files: list[Path]) -> tuple[str, dict[str, dict[str, float]]]:
    """Markdown table + compact dict of the mean metrics in each ``facesr-eval/2`` result file."""
    lines = [
        "| benchmark | input | faces | PSNR dB | SSIM | PSNR-Y dB | SSIM-Y | identity cos | FRD | result file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    compact: dict[str, dict[str, float]] = {}
    for path in result_files:
        res = json.loads(path.read_text(encoding="utf-8"))
        proto, met = res["protocol"], res["metrics"]
        key = proto["benchmark"] + ("" if proto.get("complete", True) else f" (first {proto['n_faces']})")
        if proto.get("input", "").startswith("unmasked"):
            key += " (unmasked input)"
        compact[key] = {k: round(float(met[k]), 4) for k in SCORE_KEYS if k in met}
        cells = [f"{met[k]:.2f}" if k.startswith("psnr") else f"{met[k]:.4f}" for k in SCORE_KEYS]
        lines.append(
            f"| {proto['benchmark']} | {proto['input']} | {proto['n_faces']} | " + " | ".join(cells) + f" | "
            f"`{path.as_posix()}` |"
        )
        ver = res.get("verification")
        if ver:
            r, h = ver["restored_vs_hr"], ver["hr_vs_hr"]
            lines.append(
                f"| ^ verification | restored vs HR: TAR@FAR1% {r['tar_at_far']:.4f}, EER {r['eer']:.4f} "
                f"(HR vs HR: {h['tar_at_far']:.4f} / {h['eer']:.4f}; {r['n_genuine']} genuine, "
                f"{r['n_impostor']} impostor pairs) | | | | | | | | |"
            )
    return "\n".join(lines), compact


GENERAL_SR_ORIGIN = (
    "\n## Origin of the starting weights and licences\n\n"
    "* The SR module started from RLFN_Prune x4 general-SR weights trained on natural images (DIV2K + LSDIR,\n"
    "  bicubic x4) from the NTIRE 2024 Efficient SR challenge repository (Amazingren/NTIRE2024_ESR @\n"
    "  6404fa48dde4a4adbf241a51debdc661aef20449, `model_zoo/team00_rlfn.pth`; MIT, copyright 2024 BinRen; RLFN\n"
    "  code copyright 2022 ByteDance), as `../shared/pretrained/rlfn_prune_x4_div2k.safetensors`. DIV2K and\n"
    "  LSDIR are research data sets.\n"
    "* Fine-tuned by facesr on UTKFace (non-commercial research only) with MaskTheFace masks; so this model\n"
    "  is for non-commercial research use. Identity/perceptual terms use the dlib face-recognition ResNet\n"
    "  (face-api.js port, MIT; see LICENSES.md).\n"
)


def _totals_section(meta: dict[str, str]) -> str:
    """Accumulated training (``facesr.totals``, summed over warm-started runs) and, for models that started
    from general-SR weights, where those came from and under which terms."""
    out = ""
    totals = json.loads(meta.get("facesr.totals", "{}") or "{}")
    if totals:
        out += (
            "\n## Training behind these weights (all runs, accumulated through model.init_from)\n\n"
            f"* Runs: {int(totals.get('runs', 1))}; steps: {int(totals.get('steps', 0)):,}; faces seen: "
            f"{int(totals.get('faces_seen', 0)):,}.\n"
            f"* CPU-hours: {totals.get('cpu_hours', 0):.2f} (wall-clock hours x torch threads); GPU-hours: "
            f"{totals.get('gpu_hours', 0):.2f}.\n"
        )
    if meta.get("facesr.arch", "").startswith("jdsr_fast"):
        out += GENERAL_SR_ORIGIN
    return out


def _shipped_scores(name: str) -> dict[str, dict[str, float]]:
    entries = json.loads(zoo.ZOO_FILE.read_text(encoding="utf-8"))["models"]
    return next((e.get("scores", {}) for e in entries if e["name"] == name), {})


def refuse_worse(name: str, src: Path, dst: Path, results: list[Path], replace_worse: bool) -> None:
    """Refuse to replace a shipped model with a run that scores worse on the same frozen benchmark.

    Why: training accumulates across sessions by warm-starting from the shipped weights; a run that went
    wrong (a bad setting, a diverged critic) must not silently overwrite the model it started from. A run
    replacing a shipped file must come with result files of *its own* weights (``facesr eval --model
    RUN/weights.safetensors``), and on every benchmark the shipped model has a score for, the run's PSNR
    must not be lower. ``--replace-worse`` overrides, for a deliberate trade (say why in ``--note``).
    """
    if not dst.exists() or zoo.sha256_file(dst) == zoo.sha256_file(src):
        return
    if not results:
        raise SystemExit(
            f"ship_model: {name} is already shipped; score the run first "
            f"(facesr eval --model {src} --benchmark ...) and pass the result files with --results"
        )
    old = _shipped_scores(name)
    for path in results:
        res = json.loads(path.read_text(encoding="utf-8"))
        if res.get("model", {}).get("weights_sha256") not in (None, zoo.sha256_file(src)):
            raise SystemExit(f"ship_model: {path} scores another weights file, not {src}")
        proto = res["protocol"]
        key = proto["benchmark"] + ("" if proto.get("complete", True) else f" (first {proto['n_faces']})")
        if proto.get("input", "").startswith("unmasked"):
            key += " (unmasked input)"
        before = old.get(key, {}).get("psnr")
        after = float(res["metrics"]["psnr"])
        if before is not None and after < before and not replace_worse:
            raise SystemExit(
                f"ship_model: refusing to replace {name}: {key} PSNR {after:.2f} dB < shipped {before:.2f} dB "
                "(train longer, or pass --replace-worse with a --note that says why)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="training run folder (weights.safetensors, card.md, ...)")
    ap.add_argument("--name", required=True, help="zoo name, e.g. jdsr-lite-x4")
    ap.add_argument("--task", required=True, choices=["masked", "genuine"])
    ap.add_argument("--description", default="")
    ap.add_argument(
        "--note", default="", help="text for the card: how this run differs from the paper recipe"
    )
    ap.add_argument("--results", type=Path, nargs="*", default=[], help="facesr eval JSON files to quote")
    ap.add_argument(
        "--replace-worse",
        action="store_true",
        help="ship even if the run scores below the shipped model on a frozen benchmark (say why in --note)",
    )
    args = ap.parse_args()

    src = args.run_dir / "weights.safetensors"
    if not src.is_file():
        raise SystemExit(f"ship_model: {src} not found (did the run export its weights?)")
    dst = zoo.WEIGHTS_DIR / f"{args.name}.safetensors"
    refuse_worse(args.name, src, dst, args.results, args.replace_worse)
    if not dst.exists() or zoo.sha256_file(dst) != zoo.sha256_file(src):
        shutil.copyfile(src, dst)
    size_mib = dst.stat().st_size / 2**20
    if size_mib >= 16:
        raise SystemExit(
            f"ship_model: {dst.name} is {size_mib:.1f} MiB; shipped weights must stay under 16 MiB"
        )
    meta = zoo.load_model(dst, verify=False).meta
    scale = int(meta["facesr.scale"])

    # Curve and log travel next to the card (issue: "committed next to its card"). A model with no
    # training run of its own (scripts/compose_mix.py) has neither, and the old model's are removed.
    trained = (args.run_dir / "log.jsonl").is_file()
    for name, out in (("loss_curve.png", f"{args.name}.loss.png"), ("log.jsonl", f"{args.name}.log.jsonl")):
        if (args.run_dir / name).is_file():
            shutil.copyfile(args.run_dir / name, zoo.WEIGHTS_DIR / out)
        elif not trained:
            (zoo.WEIGHTS_DIR / out).unlink(missing_ok=True)

    table, compact = _scores_table(args.results)
    card_src = (args.run_dir / "card.md").read_text(encoding="utf-8")
    card = card_src.replace("(draft card written by `facesr train`)", f"-> zoo model `{args.name}`", 1)
    card += (
        f"\n\n## Shipped as `{args.name}`\n\n"
        f"* File: `{dst.name}` ({size_mib:.2f} MiB, sha256 `{zoo.sha256_file(dst)}`), installed by\n"
        f"  `python scripts/ship_model.py {args.run_dir.as_posix()} --name {args.name} --task {args.task}`.\n"
    )
    if trained:
        card += f"* Loss curve: `{args.name}.loss.png`; training log: `{args.name}.log.jsonl` (next to this card).\n"
    card += _totals_section(meta)
    if args.note:
        card += f"\n## How this training run differs from the paper recipe\n\n{args.note}\n"
    if args.results:
        card += (
            "\n## Benchmark scores (copied from the result files by scripts/ship_model.py)\n\n"
            "Protocol of each benchmark: RESULTS.md and docs/evaluation.md (RGB in [0,1], 128x128, no crop;\n"
            "Y metrics on BT.601 luma; identity = cosine of dlib face-recognition ResNet (face-api.js port)\n"
            "embeddings, restored vs clean HR; FRD = Frechet distance on those embeddings, not FID).\n\n"
            + table
            + "\n"
        )
    atomic_write_text(zoo.WEIGHTS_DIR / f"{args.name}.md", card)

    entries = json.loads(zoo.ZOO_FILE.read_text(encoding="utf-8"))["models"]
    old_desc = next((e.get("description", "") for e in entries if e["name"] == args.name), "")
    entries = [e for e in entries if e["name"] != args.name]
    entries.append(
        {
            "name": args.name,
            "file": dst.name,
            "sha256": zoo.sha256_file(dst),
            "scale": scale,
            "task": args.task,
            "card": f"{args.name}.md",
            "description": args.description or old_desc,
            "scores": compact,
        }
    )
    entries.sort(key=lambda e: e["name"])
    atomic_write_text(zoo.ZOO_FILE, json.dumps({"models": entries}, indent=2) + "\n")
    print(f"shipped {args.name}: {dst} ({size_mib:.2f} MiB), x{scale}, {len(compact)} benchmark score(s)")


if __name__ == "__main__":
    main()
