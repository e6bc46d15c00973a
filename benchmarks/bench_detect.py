"""MTCNN detector, this tree against an earlier revision: identical detections, and the time ratio.

Why: the detector was made faster without changing what it finds (``docs/restore.md``, Timings).
Both claims are checked in one process: the earlier ``src/facesr/restoration/mtcnn.py`` is read
from git (``--baseline-rev``, default the revision before the speed work) and loaded as a second
module with the same weights.

``--check`` runs both on every input of the detection benchmarks and compares boxes, scores
and landmarks: the photos of ``detect_precision.py``'s sample (each padded and bounded as
``detect_faces`` does), the photos reduced so that each ground-truth face is 10, 14 and 20 px
(``detect_recall.py``'s inputs), and the composed 1080p and 3 MP photos of ``bench_restore.py``.

``--repeats N`` times the two on the composed photo (``--photo``), interleaved (old, new, old,
new, ...) so that a loaded machine slows both alike; the ratio new/old of each pair is reported
with its median. Absolute seconds on a loaded machine mean nothing; the ratio does.

    python benchmarks/bench_detect.py --check --repeats 15 --json-out results/restore/detect_speed.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
#: The last revision of mtcnn.py before the 2026-12-07 speed work (issue 16).
BASELINE_REV = "eee947b"


def load_baseline(rev: str) -> ModuleType:
    """``facesr/restoration/mtcnn.py`` as it was at ``rev``, imported as its own module."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/facesr/restoration/mtcnn.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="facesr-mtcnn-"))
    path = tmp / f"mtcnn_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"mtcnn_{rev}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def detector_input(image: np.ndarray) -> np.ndarray:
    """What ``detect_faces`` hands the detector: the bounded copy, padded."""
    from facesr.restoration.detect import DETECT_MAX_PIXELS, DetectOptions, detection_copy, pad_for_detection

    small, _, _ = detection_copy(image, DETECT_MAX_PIXELS)
    return pad_for_detection(small, DetectOptions().pad)[0]


def fixture_image() -> np.ndarray:
    """The regression fixture's detector input: the bundled sample photos stacked (711 x 410), padded.

    Why this image: real small faces (the four ``src/facesr/samples`` crowd photos), tall enough
    that PNet runs its first levels in several strips and wide enough that the small pyramid
    levels come from the summed-area table: every fast path of the detector is on it.
    """
    from facesr.io import read_image
    from facesr.restoration.detect import DetectOptions, pad_for_detection

    photos = [read_image(f) for f in sorted((ROOT / "src" / "facesr" / "samples").glob("*.jpg"))]
    canvas = np.full((sum(p.shape[0] for p in photos), max(p.shape[1] for p in photos), 3), 128, np.uint8)
    y = 0
    for p in photos:
        canvas[y : y + p.shape[0], : p.shape[1]] = p
        y += p.shape[0]
    return pad_for_detection(canvas, DetectOptions().pad)[0]


def write_fixture(detector: object, path: Path, rev: str) -> None:
    """The baseline's detections on :func:`fixture_image`, at full float precision, as JSON."""
    det = detector.detect(fixture_image(), min_size=10.0)  # type: ignore[attr-defined]
    payload = {
        "written_by": f"python benchmarks/bench_detect.py --write-fixture {path}",
        "baseline_rev": rev,
        "min_size": 10.0,
        "boxes": det.boxes.tolist(),
        "scores": det.scores.tolist(),
        "landmarks": det.landmarks.tolist(),
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


def difference(a: object, b: object) -> float | None:
    """Largest absolute difference of boxes, scores and landmarks; None when the counts differ."""
    if len(a) != len(b):  # type: ignore[arg-type]
        return None
    if len(a) == 0:  # type: ignore[arg-type]
        return 0.0
    return float(max(np.abs(getattr(a, k) - getattr(b, k)).max() for k in ("boxes", "scores", "landmarks")))


def check_inputs(
    data: Path, rwmfd: int, web: int, sizes: list[float], composed: bool = True
) -> Iterator[tuple[str, np.ndarray]]:
    """The detection benchmarks' inputs (see the module docstring), as (name, detector input)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_restore import compose
    from detect_precision import sample_files

    from facesr.io import read_image
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import DetectOptions, detect_faces

    for photo in ("1080p", "3mp") if composed else ():
        yield photo, detector_input(compose(data, size=photo))
    det = _cached_detector("cpu")
    for f in sample_files(data, rwmfd, web):
        img = read_image(f)
        yield f.name, detector_input(img)
        for face in detect_faces(img, det, DetectOptions(min_size=10.0, factor=0.709)):
            side = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
            if face.status != "ok" or side < 24:
                continue
            h, w = img.shape[:2]
            for s in sizes:
                k = s / side
                nw, nh = max(1, round(w * k)), max(1, round(h * k))
                small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BOX))
                yield f"{f.name}@face{face.index}:{s:g}px", detector_input(small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--check", action="store_true", help="compare detections on the benchmark inputs")
    parser.add_argument("--rwmfd", type=int, default=60)
    parser.add_argument("--web", type=int, default=20)
    parser.add_argument("--sizes", default="10,14,20")
    parser.add_argument("--no-composed", action="store_true", help="--check without the composed photos")
    parser.add_argument("--repeats", type=int, default=0, help="interleaved timing pairs (0: none)")
    parser.add_argument("--photo", default="1080p", choices=("1080p", "3mp"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument(
        "--write-fixture",
        type=Path,
        default=None,
        help="write the baseline's detections on the test fixture (tests/fixtures/restore/mtcnn_fast_path.json)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from facesr.paths import data_root
    from facesr.restoration import mtcnn

    data = data_root(args.data)
    old = load_baseline(args.baseline_rev).MTCNN().load_weights(mtcnn.WEIGHTS)
    new = mtcnn.MTCNN().load_weights()
    out: dict[str, object] = {
        "command": "python " + " ".join(sys.argv),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "baseline_rev": args.baseline_rev,
        "threads": args.threads,
    }
    if args.write_fixture:
        write_fixture(old, args.write_fixture, args.baseline_rev)
    if args.check:
        sizes = [float(s) for s in args.sizes.split(",")]
        inputs = check_inputs(data, args.rwmfd, args.web, sizes, composed=not args.no_composed)
        diffs, faces, bad, n = [], 0, [], 0
        for name, img in inputs:
            n += 1
            a, b = old.detect(img, min_size=10.0), new.detect(img, min_size=10.0)
            d = difference(a, b)
            faces += len(a)
            if d is None or d > 1e-4:
                bad.append({"input": name, "old": len(a), "new": len(b), "max_abs_diff": d})
            else:
                diffs.append(d)
            print(f"{name}: {len(a)} faces, max abs diff {d}", flush=True)
        out["check"] = {
            "inputs": n,
            "faces_old": faces,
            "identical_inputs": sum(d == 0.0 for d in diffs),
            "max_abs_diff": max(diffs, default=0.0),
            "differing": bad,
        }
        print(json.dumps(out["check"], indent=2), flush=True)
    if args.repeats:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_restore import compose

        img = detector_input(compose(data, size=args.photo))
        old.detect(img, min_size=10.0)  # warm-up: primitive caches, allocator
        new.detect(img, min_size=10.0)
        t_old, t_new = [], []
        for _ in range(args.repeats):
            for det, acc in ((old, t_old), (new, t_new)):
                t = time.perf_counter()
                det.detect(img, min_size=10.0)
                acc.append(time.perf_counter() - t)
        ratios = [n / o for o, n in zip(t_old, t_new, strict=True)]
        out["timing"] = {
            "photo": args.photo,
            "detector_input": list(img.shape),
            "repeats": args.repeats,
            "median_ratio_new_over_old": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "median_s_old_loaded_machine": round(statistics.median(t_old), 3),
            "median_s_new_loaded_machine": round(statistics.median(t_new), 3),
        }
        print(json.dumps(out["timing"], indent=2), flush=True)
    if args.json_out:
        from facesr.io import atomic_write_text

        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json_out, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
