#!/usr/bin/env python
"""Convert face-api.js' FaceRecognitionNet weights (a port of dlib's face-recognition ResNet) to safetensors.

Run once; the output ships with the package as ``src/facesr/weights/face_id.safetensors``.

Regenerate from scratch (needs npm, or any way to fetch the npm tarball)::

    npm pack @vladmandic/face-api@1.7.15          # -> vladmandic-face-api-1.7.15.tgz (MIT)
    tar xzf vladmandic-face-api-1.7.15.tgz        # -> package/model/face_recognition_model*
    python scripts/convert_face_api.py package/model/face_recognition_model-weights_manifest.json

The TF.js manifest stores most tensors as uint8 with an affine ``value = q * scale + min``. We keep the
original uint8 tensors (``<name>.q``) with their ``<name>.scale`` / ``<name>.min`` (float64 scalars, as
written in the JSON) so that de-quantising at load time reproduces face-api exactly, and the file stays
about the size of the original (6.4 MB). Tensors stored as float32 in the manifest are kept as they are
(``<name>``). Shapes are the TF.js ones (conv filters HWIO, ``fc`` [256, 128]); facesr.nets.face_id
transposes them at load time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facesr.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = Path("/work/scratch/package/model/face_recognition_model-weights_manifest.json")
DEFAULT_OUT = REPO / "src" / "facesr" / "weights" / "face_id.safetensors"
DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


def convert(manifest_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read the TF.js manifest + shards and return (tensors, metadata) for safetensors."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    base = manifest_path.parent
    tensors: dict[str, torch.Tensor] = {}
    digests = {}
    for group in manifest:
        buf = b"".join((base / p).read_bytes() for p in group["paths"])
        for p in group["paths"]:
            digests[p] = hashlib.sha256((base / p).read_bytes()).hexdigest()
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            if q:
                dt = DTYPES[q["dtype"]]
                arr = np.frombuffer(buf, dt, n, off).reshape(w["shape"]).copy()
                off += n * np.dtype(dt).itemsize
                tensors[w["name"] + ".q"] = torch.from_numpy(arr)
                tensors[w["name"] + ".scale"] = torch.tensor([q["scale"]], dtype=torch.float64)
                tensors[w["name"] + ".min"] = torch.tensor([q["min"]], dtype=torch.float64)
            else:
                if w["dtype"] != "float32":
                    raise SystemExit(f"unsupported dtype {w['dtype']} for {w['name']}")
                arr = np.frombuffer(buf, np.float32, n, off).reshape(w["shape"]).copy()
                off += 4 * n
                tensors[w["name"]] = torch.from_numpy(arr)
        if off != len(buf):
            raise SystemExit(f"manifest does not cover the weight file ({off} of {len(buf)} bytes read)")
    meta = {
        "source": "npm @vladmandic/face-api@1.7.15, model/face_recognition_model.bin (MIT)",
        "network": "dlib face-recognition ResNet (dlib_face_recognition_resnet_model_v1, CC0), face-api.js port",
        "shard_sha256": json.dumps(digests, sort_keys=True),
        "layout": "TF.js shapes (conv HWIO); quantised tensors as <name>.q uint8 + <name>.scale/.min float64",
    }
    return tensors, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=DEFAULT_MANIFEST,
        help="face_recognition_model-weights_manifest.json from the npm package",
    )
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if not args.manifest.is_file():
        print(
            f"convert_face_api: {args.manifest} not found (see the docstring: npm pack ...)", file=sys.stderr
        )
        return 2
    tensors, meta = convert(args.manifest)
    with atomic_path(args.out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
