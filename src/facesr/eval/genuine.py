"""Evaluation for CR: the ``genuine-lr`` benchmark (no ground truth) and the artificial-LR check.

Genuine LR faces have no HR counterpart, so (papers.md 2.6, DESIGN.md 4; PROPOSAL):

* **FRD** (Frechet distance on face-recognition embeddings; not FID) between the restored genuine
  test faces and *real* HR faces: the UTKFace prepared test split at 64x64;
* **FRD vs masked HR** (``frd_masked_ref``): the same, against those HR faces wearing synthetic
  MaskTheFace masks (:class:`facesr.data.masks.MaskSynthesizer`, seed 0, made at 128 and shrunk to
  64): most genuine faces here are *masked* (RWMFD), so this reference compares like with like;
* **identity vs bicubic input**: cosine between the embedding of the restored face and the
  embedding of the bicubic-upsampled genuine input (the only identity reference we have; it
  rewards keeping who the person is, not sharpness; labelled ``identity_vs_bicubic_input``);
* **PSNR/SSIM on artificial LR**: UTKFace test faces64 -> antialiased bicubic x1/4 -> 16x16 ->
  model (the training degradation, then 8-bit), scored at 64x64 against the HR face (CR must not lose here).

All comparisons happen at 64x64, CR's native HR size: a model with an ``out_size`` attribute (the
CR family) is run at 64; any other restorer's 128x128 output is shrunk to 64 (antialiased
bicubic). For the embedding network (dlib face-recognition ResNet, face-api.js port, which takes
template-aligned 128x128 faces), outputs *and* the real HR faces are bicubic-upsampled 64 -> 128
the same way, so FRD compares like with like.

Results are ``facesr-eval/1`` JSON files (benchmarks ``genuine-lr`` and ``utk-art-x4``) written
with :func:`facesr.eval.runner.write_result`'s layout, plus a grid PNG of genuine inputs and each
method's output.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facesr.errors import DataError

HR = 64
LR = 16
EMBED = 128
DEFINITIONS = {
    "frd": (
        "Frechet distance between Gaussians fitted to the dlib face-recognition ResNet (face-api.js "
        "port) embeddings of all restored genuine test faces and of the real HR faces (UTKFace prepared "
        "test split), both at 64x64 bicubic-upsampled to 128 for the network (FRD; not FID)"
    ),
    "frd_masked_ref": (
        "FRD as above against the same UTKFace test faces wearing synthetic MaskTheFace masks "
        "(facesr.data.masks.MaskSynthesizer, seed 0, at 128, antialiased bicubic to 64)"
    ),
    "identity_vs_bicubic_input": (
        "mean cosine between the embedding of the restored face and the embedding "
        "of its genuine 16x16 input bicubic-upsampled to 128 (no HR exists)"
    ),
    "psnr": "PSNR on RGB in [0,1] at 64x64 vs the UTKFace HR face (artificial LR = bicubic x1/4)",
    "ssim": "SSIM (11x11 Gaussian, sigma 1.5) on RGB at 64x64 vs the UTKFace HR face",
}


def to01(u8: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 255.0


def up128(x: torch.Tensor) -> torch.Tensor:
    """Bicubic up-sampling to the embedding network's 128x128 frame (same for outputs and real HR)."""
    return F.interpolate(x, size=(EMBED, EMBED), mode="bicubic", align_corners=False).clamp(0, 1)


@torch.inference_mode()
def restore64(restorer: torch.nn.Module, lr16: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Run a restorer on 16x16 faces and return 64x64 outputs in [0,1], rounded to 8 bits."""
    net = getattr(restorer, "net", restorer)
    outs = []
    for i in range(0, len(lr16), batch):
        x = lr16[i : i + batch]
        if hasattr(net, "out_size"):
            saved = net.out_size
            net.out_size = HR
            try:
                y = restorer(x)
            finally:
                net.out_size = saved
        else:
            y = restorer(x)
        if y.shape[-1] != HR:
            y = F.interpolate(
                y, size=(HR, HR), mode="bicubic", align_corners=False, antialias=y.shape[-1] > HR
            )
        outs.append(y.clamp(0, 1).mul(255).round().div(255))
    return torch.cat(outs)


def bicubic64(lr16: torch.Tensor) -> torch.Tensor:
    """The bicubic x4 baseline at 64 (rounded to 8 bits like every method's output)."""
    y = F.interpolate(lr16, size=(HR, HR), mode="bicubic", align_corners=False).clamp(0, 1)
    return y.mul(255).round().div(255)


class Embedder:
    """Embeds 64x64 faces with the identity network (upsampled to 128), in batches."""

    def __init__(self, device: str = "cpu", net: Any = None) -> None:
        from facesr.eval.metrics import create_metric

        self.metric = create_metric("identity", device=device, **({"net": net} if net is not None else {}))

    def __call__(self, img64: torch.Tensor, batch: int = 64) -> torch.Tensor:
        return torch.cat(
            [self.metric.embed(up128(img64[i : i + batch])) for i in range(0, len(img64), batch)]
        )


def load_sets(
    genuine_dir: str | Path, prepared_dir: str | Path, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Genuine test faces (uint8 [N,16,16,3]) with ids, and the real HR test faces (uint8 [M,64,64,3])."""
    from facesr.data.genuine import GenuineSet

    gset = GenuineSet.load(genuine_dir)
    rows = gset.indices("test")
    if len(rows) < 2:
        raise DataError(
            f"{genuine_dir}: fewer than 2 genuine test faces; rebuild with a larger test fraction"
        )
    prep = Path(prepared_dir)
    if not (prep / "faces64.npy").is_file():
        raise DataError(f"prepared set {str(prep)!r} has no faces64.npy; run `facesr prepare` first")
    faces = np.load(prep / "faces64.npy", mmap_mode="r")
    split = np.load(prep / "split.npy")
    hr = np.asarray(faces[np.nonzero(split == 1)[0]])
    if limit:
        rows, hr = rows[:limit], hr[:limit]
    ids = [f"{gset.meta[r]['path']}#{r}" for r in rows]
    return gset.lr[rows], hr, ids


def masked_reference(
    prepared_dir: str | Path, data: str | Path | None = None, seed: int = 0, limit: int | None = None
) -> np.ndarray:
    """UTKFace test faces with synthetic masks, uint8 [M,64,64,3] (made at 128, shrunk x2)."""
    from facesr.data.degrade import downsample
    from facesr.data.masks import MaskSynthesizer
    from facesr.paths import data_root

    prep = Path(prepared_dir)
    split = np.load(prep / "split.npy")
    rows = np.nonzero(split == 1)[0]
    rows = rows[:limit] if limit else rows
    faces = np.asarray(np.load(prep / "faces128.npy", mmap_mode="r")[rows])
    lms = torch.from_numpy(np.asarray(np.load(prep / "landmarks128.npy", mmap_mode="r")[rows])).float()
    synth = MaskSynthesizer(data_root(data))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(rows), 64):
        masked, _ = synth(to01(faces[i : i + 64]), lms[i : i + 64], g)
        out.append(downsample(masked.clamp(0, 1), 2))
    x = torch.cat(out)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def evaluate_method(
    name: str,
    restorer: torch.nn.Module | None,
    gen16: np.ndarray,
    hr64: np.ndarray,
    embedder: Embedder,
    hr_emb: torch.Tensor,
    gen_in_emb: torch.Tensor,
    masked_emb: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Scores of one method (``restorer=None`` = bicubic) on both benchmarks, plus its outputs."""
    from facesr.eval.metrics import create_metric

    t0 = time.perf_counter()
    x_g = to01(gen16)
    y = to01(hr64)
    from facesr.train.cr import artificial_lr

    x_a = artificial_lr(y).clamp(0, 1).mul(255).round().div(255)  # same degradation as training, 8-bit
    run = bicubic64 if restorer is None else (lambda x: restore64(restorer, x))
    out_g = run(x_g)
    out_a = run(x_a)
    e_out = embedder(out_g)
    ident = create_metric("identity").cosine(e_out, gen_in_emb)
    frd = create_metric("frd")(e_out, hr_emb)
    frd_masked = create_metric("frd")(e_out, masked_emb) if masked_emb is not None else None
    psnr = create_metric("psnr")(out_a.double(), y.double())
    ssim = create_metric("ssim")(out_a.double(), y.double())
    return {
        "name": name,
        "frd": float(frd),
        "frd_masked_ref": None if frd_masked is None else float(frd_masked),
        "identity_vs_bicubic_input": float(ident.mean()),
        "psnr": float(psnr.mean()),
        "ssim": float(ssim.mean()),
        "per_image_identity": ident.tolist(),
        "outputs_genuine": out_g,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def result_docs(
    res: dict[str, Any],
    ids: list[str],
    n_hr: int,
    command: str | None,
    params: int | None,
    checksums: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Two ``facesr-eval/1`` documents (genuine-lr and utk-art-x4) for one method."""
    from facesr.eval.runner import FORMAT, code_revision, hardware, software, utc_now

    masked = ("frd_masked_ref",) if res.get("frd_masked_ref") is not None else ()
    checksums = checksums or {"genuine": "unknown", "hr": "unknown"}
    model = {
        "name": res["name"],
        "kind": "baseline" if res["name"].startswith("bicubic") else "facesr",
        "input": "genuine",
        "row": res["name"],
        **({"params": params} if params else {}),
    }
    run = {
        "code_revision": code_revision(),
        "date": utc_now(),
        "wall_time_s": res["wall_s"],
        "hardware": hardware(torch.device("cpu")),
        "software": software(),
        "command": command,
    }
    gen = {
        "format": FORMAT,
        "model": model,
        "protocol": {
            "benchmark": "genuine-lr",
            "data_set": "genuine LR faces (facesr genuine build, test split)",
            "split": "test",
            "scale": 4,
            "n_faces": len(ids),
            "n_faces_in_benchmark": len(ids),
            "complete": True,
            "benchmark_checksum": checksums["genuine"],
            "lr_size": LR,
            "hr_size": HR,
            "input": "genuine 16x16 faces (MTCNN-detected in rwmfd/web_unmasked, template-aligned)",
            "target": f"none; FRD reference = {n_hr} UTKFace prepared test faces at 64x64",
            "metrics": {k: DEFINITIONS[k] for k in ("frd", "identity_vs_bicubic_input", *masked)},
        },
        "metrics": {
            "frd": res["frd"],
            "identity_vs_bicubic_input": res["identity_vs_bicubic_input"],
            **{k: res[k] for k in masked},
        },
        "verification": None,
        "run": run,
        "per_image": [
            {"id": i, "identity_vs_bicubic_input": round(v, 6)}
            for i, v in zip(ids, res["per_image_identity"], strict=True)
        ],
    }
    art = {
        "format": FORMAT,
        "model": {**model, "input": "artificial"},
        "protocol": {
            "benchmark": "utk-art-x4",
            "data_set": "UTKFace prepared test split",
            "split": "test",
            "scale": 4,
            "n_faces": n_hr,
            "n_faces_in_benchmark": n_hr,
            "complete": True,
            "benchmark_checksum": checksums["hr"],
            "lr_size": LR,
            "hr_size": HR,
            "input": "HR 64 -> antialiased bicubic x1/4 -> 16x16, 8-bit",
            "target": "UTKFace HR at 64x64",
            "metrics": {k: DEFINITIONS[k] for k in ("psnr", "ssim")},
        },
        "metrics": {"psnr": res["psnr"], "ssim": res["ssim"]},
        "verification": None,
        "run": run,
        "per_image": [],
    }
    return [gen, art]


def grid(
    inputs16: np.ndarray, columns: Sequence[tuple[str, torch.Tensor]], rows: Sequence[int], tile: int = 96
) -> np.ndarray:
    """Rows of genuine inputs (nearest-upsampled) followed by each method's 64x64 output, at ``tile`` px."""
    from PIL import Image, ImageDraw

    label_h = 14
    ncol = 1 + len(columns)
    canvas = Image.new("RGB", (ncol * tile, label_h + len(rows) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(["input 16px", *[n for n, _ in columns]]):
        draw.text((c * tile + 2, 1), name[: tile // 6], fill=(0, 0, 0))
    for r, row in enumerate(rows):
        tiles = [Image.fromarray(inputs16[row]).resize((tile, tile), Image.Resampling.NEAREST)]
        for _, out in columns:
            arr = (out[row].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            tiles.append(Image.fromarray(arr).resize((tile, tile), Image.Resampling.BICUBIC))
        for c, t in enumerate(tiles):
            canvas.paste(t, (c * tile, label_h + r * tile))
    return np.asarray(canvas)


def run_genuine_eval(
    methods: Sequence[tuple[str, str]],
    *,
    genuine_dir: str | Path,
    prepared_dir: str | Path,
    out_dir: str | Path,
    grid_path: str | Path | None,
    limit: int | None = None,
    command: str | None = None,
    grid_rows: int = 8,
    seed: int = 0,
    face_id: Any = None,
    masked_ref: bool = True,
    data: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``methods`` (name, zoo name or weights path; ``bicubic`` = bicubic x4) and write results.

    ``face_id`` replaces the identity network (tests pass a small stand-in)."""
    from facesr.eval.runner import result_stem
    from facesr.io import atomic_write_text, write_image
    from facesr.zoo import load_model

    gen16, hr64, ids = load_sets(genuine_dir, prepared_dir, limit)
    embedder = Embedder(net=face_id)
    hr_emb = embedder(to01(hr64))
    gen_in_emb = embedder(bicubic64(to01(gen16)))
    checksums = {
        "genuine": hashlib.sha256(gen16.tobytes()).hexdigest(),
        "hr": hashlib.sha256(hr64.tobytes()).hexdigest(),
    }
    masked_emb = embedder(to01(masked_reference(prepared_dir, data, limit=limit))) if masked_ref else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary, columns = [], []
    for name, spec in methods:
        restorer = None if spec in ("bicubic", "bicubic-x4") else load_model(spec).eval()
        res = evaluate_method(name, restorer, gen16, hr64, embedder, hr_emb, gen_in_emb, masked_emb)
        params = sum(p.numel() for p in restorer.parameters()) if restorer is not None else None
        for doc in result_docs(res, ids, len(hr64), command, params, checksums):
            atomic_write_text(
                out / f"{result_stem(doc)}.json", json.dumps(doc, indent=1, allow_nan=False) + "\n"
            )
        columns.append((name, res["outputs_genuine"]))
        summary.append(
            {
                k: res[k]
                for k in ("name", "frd", "frd_masked_ref", "identity_vs_bicubic_input", "psnr", "ssim")
            }
        )
    if grid_path is not None:
        rng = np.random.default_rng(seed)
        rows = sorted(rng.choice(len(gen16), size=min(grid_rows, len(gen16)), replace=False).tolist())
        write_image(grid_path, grid(gen16, columns, rows))
    table = markdown(summary, len(ids), len(hr64))
    atomic_write_text(out / "genuine-lr__summary.md", table)
    return summary


def markdown(summary: Sequence[dict[str, Any]], n_gen: int, n_hr: int) -> str:
    """One table: FRD (vs clean and vs masked HR) and identity on genuine LR, PSNR/SSIM on artificial LR."""
    lines = [
        f"genuine-lr: {n_gen} genuine test faces; FRD references and utk-art-x4: {n_hr} UTKFace test faces "
        "(64x64).",
        "",
        "| method | FRD vs HR (genuine) | FRD vs masked HR (genuine) | identity vs bicubic input | "
        "PSNR dB (artificial) | SSIM (artificial) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in summary:
        fm = "n/a" if s.get("frd_masked_ref") is None else f"{s['frd_masked_ref']:.4f}"
        lines.append(
            f"| {s['name']} | {s['frd']:.4f} | {fm} | {s['identity_vs_bicubic_input']:.4f} | "
            f"{s['psnr']:.2f} | {s['ssim']:.4f} |"
        )
    return "\n".join(lines) + "\n"
