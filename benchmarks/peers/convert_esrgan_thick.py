"""Convert UpscalerJS ESRGAN-thick (TF.js layers models) to facesr safetensors, fp32.

Reads ``<package>/models/x4/model.json`` and ``x8`` (the unpacked npm tarball of
``@upscalerjs/esrgan-thick@1.0.0``), builds our PyTorch port (:mod:`facesr.nets.peers`, which checks
the whole layer graph), and writes ``esrgan-thick-x4.safetensors`` / ``esrgan-thick-x8.safetensors``
with :func:`facesr.zoo.save_weights` in float32 (no fp16 rounding: the peer is scored as shipped).
Each file is then re-loaded through :func:`facesr.zoo.load_model` and must reproduce the in-memory
network bit for bit, so ``facesr eval --model <file>`` scores exactly what was converted.

The weights are the package's (MIT, (c) Kevin Scott); they are written to the git-ignored
workspace and never committed. Usage::

    python benchmarks/peers/convert_esrgan_thick.py --package workspace/peers/esrgan-thick/package \
        --out workspace/peers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

PACKAGE = "@upscalerjs/esrgan-thick"
VERSION = "1.0.0"


def convert(package: Path, out: Path, scale: int) -> dict[str, object]:
    """Convert one scale; returns a summary (file, params, hyper-parameters, checks)."""
    import torch

    from facesr.errors import ModelError
    from facesr.nets.peers import rrdn_from_tfjs
    from facesr.zoo import load_model, save_weights

    model_json = package / "models" / f"x{scale}" / "model.json"
    if not model_json.is_file():
        raise ModelError(f"{model_json} not found; run benchmarks/peers/install_peers.sh first")
    meta_pkg = json.loads((package / "package.json").read_text(encoding="utf-8"))
    if (meta_pkg.get("name"), meta_pkg.get("version")) != (PACKAGE, VERSION):
        raise ModelError(
            f"{package}: expected {PACKAGE}@{VERSION}, found {meta_pkg.get('name')}@{meta_pkg.get('version')}"
        )
    net, args = rrdn_from_tfjs(model_json)
    if args["scale"] != scale:
        raise ModelError(f"{model_json}: model is x{args['scale']}, expected x{scale}")
    path = out / f"esrgan-thick-x{scale}.safetensors"
    extra = {
        "facesr.peer": "UpscalerJS ESRGAN-thick (idealo ISR RRDN, DIV2K), PyTorch port",
        "facesr.peer.source": f"npm {PACKAGE}@{VERSION} models/x{scale}/model.json",
        "facesr.peer.licence": "MIT (c) Kevin Scott",
        "facesr.peer.model_json_sha256": hashlib.sha256(model_json.read_bytes()).hexdigest(),
    }
    save_weights(net, path, arch="esrgan_thick", args=args, scale=scale, dtype=None, extra=extra)
    loaded = load_model(path, scale=scale)
    side = loaded.lr_size  # the model's own input size
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        same = torch.equal(loaded.net(x), net(x))
    if not same:
        raise ModelError(f"{path}: re-loaded weights do not reproduce the converted network")
    return {
        "file": str(path),
        "scale": scale,
        "args": args,
        "params": int(sum(p.numel() for p in net.parameters())),
        "reload_bit_identical": same,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", required=True, type=Path, help="unpacked npm tarball (its package/ folder)")
    ap.add_argument("--out", required=True, type=Path, help="folder for esrgan-thick-x{4,8}.safetensors")
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 8], choices=(4, 8))
    args = ap.parse_args(argv)
    import torch

    from facesr.errors import FacesrError

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for scale in args.scales:
            print(json.dumps(convert(args.package, args.out, scale)))
    except FacesrError as exc:
        print(f"convert_esrgan_thick: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
