"""Record facenet-pytorch's own MTCNN output on the bundled samples, as a parity fixture.

Why: ``facesr.restoration.mtcnn`` is a re-implementation; this fixture lets a test check that, with
the converted weights, it finds the same faces and landmarks as the original code. facenet-pytorch
2.6.0 cannot be installed next to torch 2.13 (it pins torch<2.3) and imports torchvision only for
``batched_nms``, so this script unpacks the wheel into a temporary folder and runs its
``detect_face`` with a tiny pure-torch stand-in for ``torchvision.ops.boxes.batched_nms``.

    python scripts/mtcnn_reference_fixture.py facenet_pytorch-2.6.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "restore" / "mtcnn_reference.json"
MIN_SIZE, THRESHOLDS, FACTOR = 10, [0.6, 0.7, 0.7], 0.709


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, thr: float) -> torch.Tensor:
    """torchvision's semantics (union IoU, areas without +1), as a plain loop."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    b = boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    suppressed = torch.zeros(len(b), dtype=torch.bool)
    keep = []
    for i in torch.argsort(scores, descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        iw = (torch.minimum(b[i, 2], b[:, 2]) - torch.maximum(b[i, 0], b[:, 0])).clamp(min=0)
        ih = (torch.minimum(b[i, 3], b[:, 3]) - torch.maximum(b[i, 1], b[:, 1])).clamp(min=0)
        inter = iw * ih
        suppressed |= inter / (area[i] + area - inter) > thr
    return torch.tensor(keep, dtype=torch.long)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    args = parser.parse_args()
    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.boxes = types.ModuleType("torchvision.ops.boxes")
    tv.ops.boxes.batched_nms = _batched_nms
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    for name, mod in {
        "torchvision": tv,
        "torchvision.ops": tv.ops,
        "torchvision.ops.boxes": tv.ops.boxes,
        "torchvision.transforms": tv.transforms,
        "torchvision.transforms.functional": tv.transforms.functional,
    }.items():
        sys.modules[name] = mod
    from facesr.io import read_image

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as zf:
            zf.extractall(tmp)
        # Register the package without running its __init__ (which imports requests for downloads).
        pkg = types.ModuleType("facenet_pytorch")
        pkg.__path__ = [str(Path(tmp) / "facenet_pytorch")]
        sys.modules["facenet_pytorch"] = pkg
        from facenet_pytorch.models import mtcnn as ref
        from facenet_pytorch.models.utils.detect_face import detect_face

        nets = {}
        for name, cls in (("pnet", ref.PNet), ("rnet", ref.RNet), ("onet", ref.ONet)):
            net = cls(pretrained=False)
            sd = torch.load(Path(tmp) / "facenet_pytorch" / "data" / f"{name}.pt", weights_only=True)
            net.load_state_dict(sd)
            nets[name] = net.eval()
        result = {
            "wheel": args.wheel.name,
            "min_size": MIN_SIZE,
            "thresholds": THRESHOLDS,
            "factor": FACTOR,
            "images": {},
        }
        for f in sorted((REPO / "src" / "facesr" / "samples").glob("*.jpg")):
            img = read_image(f)
            with torch.no_grad():
                boxes, points = detect_face(
                    img, MIN_SIZE, nets["pnet"], nets["rnet"], nets["onet"], THRESHOLDS, FACTOR, "cpu"
                )
            result["images"][f.name] = {
                "boxes": [[round(float(v), 3) for v in b] for b in boxes[0]],
                "landmarks": [[[round(float(v), 3) for v in p] for p in pts] for pts in points[0]],
            }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{k}: {len(v['boxes'])} faces" for k, v in result["images"].items()))


if __name__ == "__main__":
    main()
