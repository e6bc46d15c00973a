"""Where the x2 mix's blend thresholds come from: the x4 denoiser's change in and out of masks, and the
PSNR in / out of the mask for candidate thresholds, on TRAINING faces (never the frozen test set).

    python benchmarks/mix_blend.py --model workspace/runs/jdsr_fast_x2_mix/weights.safetensors

1. Distribution of the smoothed per-pixel change the x4 denoiser makes to a face halved to 32 px
   (:func:`facesr.nets.fast_mix.blend_map` before thresholding): inside the synthetic masks, on the
   lower face just outside them, and on the same faces unmasked, clean or degraded (the training
   pipeline's real-world degradations).
2. For each candidate (low, high, grown by one pixel or not): PSNR inside the mask, outside it and
   over the whole face of the blend, and of each part alone (MSE pooled over all faces, RGB).
Uses ``--faces`` faces of the prepared ``utkface`` training split with a fixed seed; ``docs/jdsr-fast.md``
("Session 8") quotes a run.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

CANDIDATES = [
    (0.015, 0.06, True),
    (0.015, 0.06, False),
    (0.03, 0.10, True),
    (0.03, 0.10, False),
    (0.05, 0.15, False),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a jdsr_fast_x2_mix weights file (or zoo name)")
    ap.add_argument("--faces", type=int, default=300)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from facesr.data.datasets import MaskedFaceBatcher
    from facesr.data.realistic import DegradationSettings, RealDegradation
    from facesr.nets.fast_mix import lower_face_ramp
    from facesr.paths import prepared_dir
    from facesr.zoo import load_model

    net = load_model(args.model).net
    ramp = lower_face_ramp()
    batch = 50
    masked = MaskedFaceBatcher(prepared_dir("utkface"), scale=2, batch_size=batch, seed=args.seed, p_mask=1.0)
    degraded = MaskedFaceBatcher(
        prepared_dir("utkface"),
        scale=2,
        batch_size=batch,
        seed=args.seed,
        p_mask=0.0,
        degradation=RealDegradation(DegradationSettings(clean_prob=0.0)),
    )
    changes: dict[str, list[torch.Tensor]] = {
        "in mask": [],
        "lower face outside mask": [],
        "unmasked": [],
        "unmasked, degraded": [],
    }
    sums = {c: [0.0, 0.0, 0.0] for c in [*CANDIDATES, "x2 part alone", "x4 part alone"]}

    def change_of(lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        small = net.shrink @ lr @ net.shrink.T
        inner = net.x4(small)
        ch = (inner["denoised"] - small).abs().mean(1, keepdim=True)
        return F.avg_pool2d(ch, 3, stride=1, padding=1, count_include_pad=False), inner

    def sq(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> float:
        return float(((a - b) ** 2 * w).sum() / (w.sum() * 3))

    lower = ramp > 0.5
    rounds = max(1, args.faces // batch)
    with torch.no_grad():
        for _ in range(rounds):
            bt = masked.next_batch()
            region = F.interpolate(bt["mask_region"], size=32, mode="area")
            ch, inner = change_of(bt["lr_masked"])
            changes["in mask"].append(ch[region > 0.9])
            changes["lower face outside mask"].append(ch[(region < 0.05) & lower.expand_as(region)])
            changes["unmasked"].append(change_of(bt["lr_clean"])[0][lower.expand_as(region)])
            changes["unmasked, degraded"].append(
                change_of(degraded.next_batch()["lr_masked"])[0][lower.expand_as(region)]
            )
            sr2, sr4, hr = net.x2(bt["lr_masked"])["sr"], inner["sr"], bt["hr"]
            occ = (bt["occlusion"] > 0.5).float()
            for cand in sums:
                if cand == "x2 part alone":
                    out = sr2
                elif cand == "x4 part alone":
                    out = sr4
                else:
                    low, high, grow = cand
                    m = ((ch - low) / (high - low)).clamp(0, 1) * ramp
                    m = F.max_pool2d(m, 3, stride=1, padding=1) if grow else m
                    m = F.interpolate(m, size=128, mode="bilinear", align_corners=False)
                    out = sr2 + m * (sr4 - sr2)
                out = out.clamp(0, 1)
                for i, w in enumerate((occ, 1 - occ, torch.ones_like(occ))):
                    sums[cand][i] += sq(out, hr, w)
    print(f"x4 denoiser change (0-1, smoothed 3x3), {rounds * batch} training faces, lower face:")
    for name, vals in changes.items():
        v = torch.cat(vals).numpy()
        qs = " ".join(f"p{q}={np.percentile(v, q):.4f}" for q in (1, 5, 25, 50, 75, 95, 99))
        print(f"  {name:26s} {qs}")
    print("PSNR dB (MSE pooled over the faces): in mask / out of mask / whole face")
    for cand, (a, o, t) in sums.items():
        label = cand if isinstance(cand, str) else f"low {cand[0]}, high {cand[1]}, grown: {cand[2]}"
        db = [-10 * math.log10(x / rounds) for x in (a, o, t)]
        print(f"  {label:36s} {db[0]:6.2f} {db[1]:6.2f} {db[2]:6.2f}")


if __name__ == "__main__":
    main()
