"""Make a warm-start file: a shipped jdsr-fast model's denoiser with its SR module back at the general-SR weights.

Why (docs/jdsr-fast.md, "session 4 redesign"): trained jointly at one lr, the SR module learnt to paint the
mask itself and drew a dotted sub-pixel grid over it, while the denoiser stayed nearly the identity. The
redesign gives the SR module a tenth of the lr (``optim.lr_scale``), so the denoiser has to remove the mask
at LR as the paper intends; it restarts the SR module from the pretrained general-SR weights (no grid) and
keeps what the denoiser learnt, mapped onto the bilinear CNN_D layout when asked. Totals are carried on.

    python scripts/restart_sr_module.py src/facesr/weights/jdsr-fast-x4.safetensors \
        workspace/init/jdsr-fast-x4-redesign.safetensors --unet-up bilinear
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--unet-up", choices=["transpose", "bilinear"], default="bilinear")
    ap.add_argument("--keep-sr", action="store_true", help="keep the trained SR module (only remap CNN_D)")
    args = ap.parse_args()
    from facesr.nets.fast import build_jdsr_fast, init_from_general_sr
    from facesr.nets.jdsr import transpose_to_bilinear
    from facesr.zoo import save_weights

    with safe_open(str(args.source), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        state = {k: fh.get_tensor(k).float() for k in fh.keys()}  # noqa: SIM118
    if meta.get("facesr.arch") != "jdsr_fast":
        raise SystemExit(f"{args.source}: not a jdsr_fast model")
    arch_args = json.loads(meta["facesr.args"])
    if args.unet_up == "bilinear":
        state = transpose_to_bilinear(state)
        arch_args["unet_up"] = "bilinear"
    net = build_jdsr_fast(**arch_args)
    part = state if args.keep_sr else {k: v for k, v in state.items() if k.startswith("denoiser.")}
    missing, unexpected = net.load_state_dict(part, strict=False)
    if unexpected or any(k.startswith("denoiser.") or args.keep_sr for k in missing):
        raise SystemExit(f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if not args.keep_sr:
        init_from_general_sr(net)
    keep = {k: v for k, v in meta.items() if k in ("facesr.totals",)}
    origin = "its own SR module" if args.keep_sr else "the SR module from general-SR weights"
    keep["facesr.init_note"] = f"denoiser of {args.source.name} ({args.unet_up} CNN_D), {origin}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(
        net,
        args.out,
        arch="jdsr_fast",
        args=arch_args,
        scale=int(meta["facesr.scale"]),
        output_key="sr",
        extra=keep,
        dtype=torch.float32,
    )
    with torch.no_grad():
        out = net(torch.rand(1, 3, net.lr_size, net.lr_size))["sr"]
    print(f"wrote {args.out} ({tuple(out.shape)} output)")


if __name__ == "__main__":
    main()
