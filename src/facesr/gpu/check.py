"""Quick held-out check of a training run: PSNR/SSIM of its EMA weights vs bicubic on masked test faces.

NOT the frozen benchmark (``facesr eval --benchmark utk-mask-x4`` is): this draws one seeded mask per
face of the prepared set's ``test`` split (up to ``--n`` faces, fixed seed, no flips), so that a GPU
run can report a number without carrying the benchmark PNGs. Writes ``<run>/metrics.json``.

    facesr gpu check workspace/runs/jdsr_lite_x4 [--n 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    """``facesr gpu check [options]`` (``-h`` lists them)."""
    ap = argparse.ArgumentParser(prog="facesr gpu check", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args(argv)

    import yaml

    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.eval.metrics import psnr_per_image, ssim_per_image
    from facesr.zoo import Bicubic, load_model

    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    scale, prepared = cfg["data"]["scale"], cfg["data"]["prepared"]
    if not Path(prepared).is_dir():
        from facesr.paths import prepared_dir

        prepared = prepared_dir(prepared)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    weights = args.run / "weights.safetensors"
    model = load_model(weights, device=device)
    bicubic = Bicubic(scale).to(device)
    batcher = MaskedFaceBatcher(
        prepared,
        "test",
        scale,
        device,
        args.batch,
        args.seed,
        flip=False,
        shuffle=False,
        data=cfg["data"].get("root"),
    )
    n = min(args.n, len(batcher))
    scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "psnr_bicubic": [], "ssim_bicubic": []}
    for start in range(0, n, args.batch):
        b = batcher.make_batch(torch.arange(start, min(start + args.batch, n)))
        sr = model(b["lr_masked"]).float()
        bi = bicubic(b["lr_masked"]).clamp(0, 1)
        scores["psnr"].append(psnr_per_image(sr, b["hr"]))
        scores["ssim"].append(ssim_per_image(sr, b["hr"]))
        scores["psnr_bicubic"].append(psnr_per_image(bi, b["hr"]))
        scores["ssim_bicubic"].append(ssim_per_image(bi, b["hr"]))
    out = {k: round(float(torch.cat(v).mean()), 4) for k, v in scores.items()}
    out.update(
        {
            "faces": n,
            "mask_seed": args.seed,
            "scale": scale,
            "weights": str(weights),
            "protocol": "prepared test split, one seeded mask per face; not the frozen benchmark",
        }
    )
    (args.run / "metrics.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out))
