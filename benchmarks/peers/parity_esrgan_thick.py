"""Parity check: our PyTorch port of ESRGAN-thick vs the original TF.js model, on the same faces.

Feeds the same LR faces (RGB / 255, the model's input range) to

* the shipped TF.js layers model, run by Node with ``@tensorflow/tfjs@4.11.0`` and the wasm backend
  through ``parity_esrgan_thick.mjs`` (which registers the package's own custom layers), and
* the converted safetensors file, loaded through :func:`facesr.zoo.load_model` (what ``facesr eval``
  scores),

and reports the max and mean absolute difference of the raw (unclamped) outputs on the 0-255 scale,
plus how many 8-bit output values differ after rounding. Not a CI test: it needs npm packages
(``install_peers.sh --with-tfjs``). Usage::

    python benchmarks/peers/parity_esrgan_thick.py --faces 8 \
        --out results/peers/parity_esrgan_thick.json

Faces: the first ``--faces`` of each benchmark's ``lr/`` and ``lr_clean/`` when the frozen benchmarks
exist (``workspace/benchmarks``), else the PNGs of ``--images`` (one folder per scale, ``4=DIR``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _benchmark_faces(scale: int, n: int) -> tuple[np.ndarray, str] | None:
    from facesr.errors import FacesrError
    from facesr.eval.runner import load_eval_set

    try:
        ev = load_eval_set(f"utk-mask-x{scale}")
    except FacesrError:
        return None
    parts = [ev.lr[:n]] + ([ev.lr_clean[:n]] if ev.lr_clean is not None else [])
    return np.concatenate(parts), f"utk-mask-x{scale}: first {n} faces of lr/ and lr_clean/"


def _folder_faces(folder: Path, n: int, scale: int) -> tuple[np.ndarray, str]:
    from facesr.geometry import input_size
    from facesr.io import read_image

    files = sorted(folder.glob("*.png"))[:n]
    side = input_size(scale)  # the frozen benchmark's input frame
    imgs = [read_image(f) for f in files]
    if not imgs or any(i.shape != (side, side, 3) for i in imgs):
        raise SystemExit(f"parity_esrgan_thick: error: {folder} needs {side}x{side} PNG faces")
    return np.stack(imgs), f"{folder}: first {len(imgs)} PNGs"


def run_tfjs(
    package: Path, tfjs: Path, scale: int, lr01: np.ndarray, backend: str
) -> tuple[np.ndarray, dict]:
    """Run the original model in Node; returns NHWC float32 outputs and Node's summary line."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.f32", Path(tmp) / "out.f32"
        np.ascontiguousarray(lr01, dtype="<f4").tofile(inp)
        n, h, w, c = lr01.shape
        cmd = [
            "node",
            str(HERE / "parity_esrgan_thick.mjs"),
            "--package",
            str(package),
            "--scale",
            str(scale),
            "--input",
            str(inp),
            "--shape",
            f"{n},{h},{w},{c}",
            "--output",
            str(out),
            "--tfjs",
            str(tfjs),
            "--backend",
            backend,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"parity_esrgan_thick: error: node failed: {proc.stderr.strip()[-500:]}")
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        y = np.fromfile(out, dtype="<f4").reshape(n, h * scale, w * scale, c)
    return y, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers-dir", type=Path, default=Path("workspace/peers"))
    ap.add_argument("--faces", type=int, default=8, help="faces per input kind and scale")
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 8], choices=(4, 8))
    ap.add_argument("--images", nargs="*", default=[], help="SCALE=DIR folders of LR PNGs (no benchmark)")
    ap.add_argument("--backend", default="wasm", choices=("wasm", "cpu"))
    ap.add_argument("--out", type=Path, default=None, help="write the report JSON here")
    args = ap.parse_args(argv)
    import torch

    from facesr.provenance import code_revision, utc_now
    from facesr.zoo import load_model

    torch.set_num_threads(1)
    folders = {int(k): Path(v) for k, v in (s.split("=", 1) for s in args.images)}
    package, tfjs = args.peers_dir / "esrgan-thick" / "package", args.peers_dir / "tfjs"
    report: dict = {
        "what": "max/mean |tfjs - torch port| of raw outputs, 0-255 scale",
        "tfjs": "@tensorflow/tfjs@4.11.0 + @tensorflow/tfjs-backend-wasm@4.11.0 (Node "
        f"{subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()})",
        "code_revision": code_revision(),
        "date": utc_now(),
        "command": "python benchmarks/peers/parity_esrgan_thick.py " + " ".join(argv or sys.argv[1:]),
        "scales": {},
    }
    for scale in args.scales:
        got = (
            _folder_faces(folders[scale], args.faces, scale)
            if scale in folders
            else _benchmark_faces(scale, args.faces)
        )
        if got is None:
            raise SystemExit(
                f"parity_esrgan_thick: error: no utk-mask-x{scale} benchmark; pass --images {scale}=DIR"
            )
        lr_u8, source = got
        lr01 = lr_u8.astype(np.float32) / 255.0
        ref, summary = run_tfjs(package, tfjs, scale, lr01, args.backend)
        model = load_model(args.peers_dir / f"esrgan-thick-x{scale}.safetensors", scale=scale)
        with torch.inference_mode():
            port = model.net(torch.from_numpy(lr01).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        diff = np.abs(port.astype(np.float64) - ref.astype(np.float64)) * 255.0

        def q(a: np.ndarray) -> np.ndarray:
            return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)

        report["scales"][f"x{scale}"] = {
            "faces": len(lr_u8),
            "source": source,
            "backend": summary["backend"],
            "max_abs_diff_0_255": float(diff.max()),
            "mean_abs_diff_0_255": float(diff.mean()),
            "uint8_values_differing": int((q(port) != q(ref)).sum()),
            "uint8_values": int(ref.size),
            "tfjs_median_ms_per_face": round(summary["median_ms_per_face"], 1),
            "model_input_range": summary["inputRange"],
            "model_output_range": summary["outputRange"],
        }
        print(json.dumps({f"x{scale}": report["scales"][f"x{scale}"]}))
    if args.out:
        from facesr.io import atomic_write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
