"""Convert facenet-pytorch's MTCNN state dicts (PNet, RNet, ONet) into one safetensors file.

Why: the restore pipeline needs a real small-face detector without facenet-pytorch's old pins
(torch<2.3, torchvision, numpy<2) and without unpickling anything at run time. The wheel ships
three plain state dicts (``facenet_pytorch/data/{pnet,rnet,onet}.pt``, MIT licence); this script
reads them once with ``torch.load(weights_only=True)`` and writes
``src/facesr/weights/mtcnn.safetensors`` (fp32, keys prefixed ``pnet.`` / ``rnet.`` / ``onet.``),
which :mod:`facesr.restoration.mtcnn` loads.

Usage::

    python scripts/convert_mtcnn.py /work/scratch/facenet_pytorch-2.6.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from facesr.io import atomic_path

OUT = Path(__file__).resolve().parents[1] / "src" / "facesr" / "weights" / "mtcnn.safetensors"
NETS = ("pnet", "rnet", "onet")


def convert(wheel: Path, out: Path = OUT) -> dict[str, int]:
    """Read the three state dicts from the wheel and write the combined safetensors file."""
    state: dict[str, torch.Tensor] = {}
    digests = {}
    with zipfile.ZipFile(wheel) as zf:
        for net in NETS:
            raw = zf.read(f"facenet_pytorch/data/{net}.pt")
            digests[net] = hashlib.sha256(raw).hexdigest()
            sd = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            for key, value in sd.items():
                state[f"{net}.{key}"] = value.detach().to(torch.float32).contiguous()
    meta = {
        "source": f"{wheel.name} (facenet_pytorch/data/*.pt), MIT licence, Copyright (c) 2019 Timothy Esler",
        **{f"sha256.{k}.pt": v for k, v in digests.items()},
    }
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return {net: sum(v.numel() for k, v in state.items() if k.startswith(net + ".")) for net in NETS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl")
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()
    counts = convert(args.wheel, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes); parameters: {counts}")


if __name__ == "__main__":
    main()
