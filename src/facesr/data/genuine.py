"""Genuine low-resolution faces for CR: detect small faces in real photos, align, shrink to 16x16.

Why: CR's consistifier needs an unpaired *genuine* LR domain (real camera blur, noise, JPEG), not
faces we down-sampled ourselves. We have no WIDER FACE (data.md 2.3), so we detect faces in the
real photos of ``<data>/rwmfd`` (street/crowd shots of masked people) and ``<data>/web_unmasked``
(web crops) with MTCNN (:mod:`facesr.restoration.mtcnn`), which reaches ~12 px faces.

Protocol (all values in :class:`GenuineConfig`, recorded in ``report.json``):

* *native size* = the side of MTCNN's box in source pixels (max of width and height);
* rejected, with a reason: detector score < ``min_score`` ("low score"), native size <
  ``min_size`` ("too small"), 16x16 crop with mean |Laplacian| < ``min_sharpness`` ("too blurred"),
  crop more than ``max_outside`` outside the photo ("mostly outside the photo");
* kept: native size <= ``max_size`` (the genuine split, train and test); faces in
  ``(max_size, train_max_size]`` go to train only (more unpaired data, never tested on);
  larger faces are counted as "larger than train_max_size", not kept;
* crop: similarity transform of the 5 MTCNN landmarks onto ``facesr.geometry.template(16)`` (the
  same frame as the prepared HR faces at 64, scaled), warped with the data pipeline's
  antialiased warp (:func:`facesr.data.align.warp`);
* split: by source photo (all faces of one photo on one side; byte-identical photos are processed
  once, RWMFD has 170 duplicates), seeded, ``test_fraction`` of photos with a kept face go to test.

Output folder (default ``workspace/genuine/``): ``lr16.npy`` uint8 ``[N,16,16,3]``, ``meta.jsonl``
(one line per kept face: ``row``, ``source``, ``path``, ``box``, ``score``, ``native_size``,
``sharpness``, ``split``), ``split.npy`` (0 train / 1 test) and ``report.json`` (counts per source,
size histogram, rejected faces with reasons).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesr.errors import DataError
from facesr.geometry import CR_LR_SIZE, similarity_transform, template

SOURCES = ("rwmfd", "web_unmasked")
LR = CR_LR_SIZE  # the genuine faces' side: CR's input
#: Histogram bin edges (native box side, px) for the report.
HIST_EDGES = (0, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128, 100000)


@dataclass
class GenuineConfig:
    """Every choice of the genuine-LR protocol (PROPOSAL; defaults justified in docs/cr.md)."""

    max_size: float = 32.0  # kept for train/test (native box side, px)
    train_max_size: float = 64.0  # faces in (max_size, train_max_size] go to train only
    min_size: float = 8.0  # smaller detections are "too small" to be faces at 16 px
    detect_min_size: float = 10.0  # smallest face MTCNN searches for
    min_score: float = 0.95  # ONet probability
    min_sharpness: float = 1.5  # mean |Laplacian| of the grey 16x16 crop, 0-255 units
    max_outside: float = 0.35  # share of the 16x16 crop that falls outside the photo
    test_fraction: float = 0.3
    seed: int = 0
    sources: Sequence[str] = field(default_factory=lambda: list(SOURCES))


@dataclass
class Face:
    """One detection and what happened to it."""

    source: str
    path: str
    box: list[float]
    score: float
    native_size: float
    sharpness: float = 0.0
    outside: float = 0.0
    status: str = "kept"  # kept | rejected | excluded
    reason: str = ""
    split: str = ""


def sharpness(img16: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of the grey crop (0-255 units): ~0 for a flat blob."""
    g = img16.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(np.abs(lap).mean())


def crop16(image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, float]:
    """Align a face to ``template(16)`` by its 5 landmarks; returns (16x16x3 uint8, outside share)."""
    from facesr.data.align import outside_fraction, warp

    m = similarity_transform(landmarks5, template(LR))
    return warp(image, m, LR), outside_fraction(m, image.shape[:2], LR)


def _classify(face: Face, cfg: GenuineConfig) -> None:
    if face.score < cfg.min_score:
        face.status, face.reason = "rejected", f"low score ({face.score:.3f} < {cfg.min_score})"
    elif face.native_size < cfg.min_size:
        face.status, face.reason = "rejected", f"too small ({face.native_size:.1f} px < {cfg.min_size})"
    elif face.native_size > max(cfg.max_size, cfg.train_max_size):
        face.status = "excluded"
        face.reason = f"larger than train_max_size ({face.native_size:.1f} px > {max(cfg.max_size, cfg.train_max_size)})"
    elif face.outside > cfg.max_outside:
        face.status, face.reason = (
            "rejected",
            f"mostly outside the photo ({face.outside:.2f} > {cfg.max_outside})",
        )
    elif face.sharpness < cfg.min_sharpness:
        face.status, face.reason = (
            "rejected",
            f"too blurred (sharpness {face.sharpness:.2f} < {cfg.min_sharpness})",
        )


def histogram(sizes: Sequence[float]) -> dict[str, int]:
    """Counts of native sizes per bin ``[lo, hi)`` of :data:`HIST_EDGES`."""
    out: dict[str, int] = {}
    arr = np.asarray(sizes, dtype=np.float64)
    for lo, hi in itertools.pairwise(HIST_EDGES):
        label = f"{lo}-{hi}" if hi < 100000 else f">={lo}"
        out[label] = int(((arr >= lo) & (arr < hi)).sum())
    return out


Detector = Callable[[np.ndarray], Any]


def default_detector(cfg: GenuineConfig) -> Detector:
    """MTCNN from :mod:`facesr.restoration.mtcnn` at ``detect_min_size``, low stage thresholds so that
    low-score faces are *reported* (the score filter is ours, ``min_score``)."""
    from facesr.restoration.mtcnn import MTCNN

    det = MTCNN(min_size=cfg.detect_min_size, thresholds=(0.6, 0.7, 0.7)).load_weights()
    return det.detect


def detect_photo(
    image: np.ndarray, source: str, rel: str, detector: Detector, cfg: GenuineConfig
) -> tuple[list[Face], list[np.ndarray]]:
    """Detect, crop and classify every face of one photo; crops are returned for all faces."""
    dets = detector(image)
    faces, crops = [], []
    for box, score, lm in zip(dets.boxes, dets.scores, dets.landmarks, strict=True):
        side = float(max(box[2] - box[0], box[3] - box[1]))
        face = Face(
            source=source,
            path=rel,
            box=[round(float(v), 1) for v in box],
            score=round(float(score), 4),
            native_size=round(side, 1),
        )
        img16, outside = crop16(image, lm)
        face.sharpness = round(sharpness(img16), 3)
        face.outside = round(outside, 3)
        _classify(face, cfg)
        faces.append(face)
        crops.append(img16)
    return faces, crops


def build_genuine(
    data_root: Path,
    out_dir: Path,
    cfg: GenuineConfig,
    *,
    detector: Detector | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole protocol and write ``out_dir`` atomically file by file; returns the report."""
    from tqdm import tqdm

    from facesr.errors import ImageReadError
    from facesr.io import atomic_path, atomic_write_text, list_images, read_image

    photos: list[tuple[str, Path]] = []
    for src in cfg.sources:
        root = Path(data_root) / src
        if not root.is_dir():
            raise DataError(f"genuine source folder {str(root)!r} not found (expected under --data)")
        files = sorted(list_images(root))
        photos += (
            [(src, p) for p in files[:limit] if limit is not None] if limit else [(src, p) for p in files]
        )
    if not photos:
        raise DataError(f"no images found in {', '.join(cfg.sources)} under {data_root}")
    detector = detector or default_detector(cfg)

    faces: list[Face] = []
    crops: list[np.ndarray] = []
    unreadable: list[dict[str, str]] = []
    duplicates: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    photo_of_face: list[str] = []
    for src, path in tqdm(photos, desc="detect", unit="photo", disable=not progress):
        rel = f"{src}/{path.relative_to(Path(data_root) / src).as_posix()}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            duplicates.append({"path": rel, "same_as": seen[digest]})
            continue
        seen[digest] = rel
        try:
            image = read_image(path)
        except ImageReadError as exc:
            unreadable.append({"path": rel, "reason": str(exc)})
            continue
        f, c = detect_photo(image, src, rel, detector, cfg)
        faces += f
        crops += c
        photo_of_face += [digest] * len(f)

    # Split by photo, seeded: photos with at least one face kept for the genuine (<= max_size) split.
    kept = [i for i, f in enumerate(faces) if f.status == "kept"]
    small_photos = sorted({photo_of_face[i] for i in kept if faces[i].native_size <= cfg.max_size})
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(small_photos))
    n_test = round(cfg.test_fraction * len(small_photos))
    test_photos = {small_photos[j] for j in order[:n_test]}
    for i in kept:
        f = faces[i]
        if f.native_size > cfg.max_size:
            f.split = "train"  # (max_size, train_max_size]: train only
        else:
            f.split = "test" if photo_of_face[i] in test_photos else "train"

    lr = np.stack([crops[i] for i in kept]) if kept else np.zeros((0, LR, LR, 3), np.uint8)
    split = np.array([faces[i].split == "test" for i in kept], dtype=np.uint8)
    report = _report(faces, kept, cfg, len(photos), unreadable, duplicates)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in (("lr16.npy", lr), ("split.npy", split)):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    lines = []
    for row, i in enumerate(kept):
        d = asdict(faces[i])
        d.pop("status")
        d.pop("reason")
        lines.append(json.dumps({"row": row, **d}))
    atomic_write_text(out_dir / "meta.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _report(
    faces: list[Face],
    kept: list[int],
    cfg: GenuineConfig,
    n_photos: int,
    unreadable: list[dict[str, str]],
    duplicates: list[dict[str, str]],
) -> dict[str, Any]:
    per_source: dict[str, Any] = {}
    for src in cfg.sources:
        fs = [f for f in faces if f.source == src]
        ks = [f for f in fs if f.status == "kept"]
        per_source[src] = {
            "detections": len(fs),
            "kept": len(ks),
            "kept_train": sum(f.split == "train" for f in ks),
            "kept_test": sum(f.split == "test" for f in ks),
            "rejected": dict(Counter(f.reason.split(" (")[0] for f in fs if f.status == "rejected")),
            "excluded_larger_than_train_max_size": sum(f.status == "excluded" for f in fs),
            "size_histogram_all_detections_score_ok": histogram(
                [f.native_size for f in fs if f.score >= cfg.min_score]
            ),
            "size_histogram_kept": histogram([f.native_size for f in ks]),
        }
    return {
        "protocol": "facesr genuine build (PROPOSAL, docs/cr.md): MTCNN -> 5-point similarity to template(16)",
        "config": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(cfg).items()},
        "photos": n_photos,
        "photos_unreadable": unreadable,
        "photos_duplicate_skipped": len(duplicates),
        "faces_kept": len(kept),
        "faces_train": sum(faces[i].split == "train" for i in kept),
        "faces_test": sum(faces[i].split == "test" for i in kept),
        "per_source": per_source,
        "size_histogram_bins_px": list(HIST_EDGES),
        "rejected_faces": [
            {"path": f.path, "box": f.box, "score": f.score, "native_size": f.native_size, "reason": f.reason}
            for f in faces
            if f.status == "rejected"
        ],
    }


#: Genuine validation split [OURS, issue 19]: share of the train photos (with a face <= max_size) whose
#: faces are held out for model choice, and the seed of that draw (independent of the build's test draw).
VAL_FRACTION = 0.2
VAL_SEED = 1


@dataclass
class GenuineSet:
    """A built genuine-LR folder: ``lr`` uint8 [N,16,16,3], ``split`` (0 train / 1 test), ``meta``."""

    lr: np.ndarray
    split: np.ndarray
    meta: list[dict[str, Any]]
    max_size: float = 32.0  # the build's max_size (report.json), for the val split

    @classmethod
    def load(cls, folder: str | Path) -> GenuineSet:
        folder = Path(folder)
        if not (folder / "lr16.npy").is_file():
            raise DataError(f"genuine-LR set not found in {str(folder)!r}; run `facesr genuine build` first")
        lr = np.load(folder / "lr16.npy")
        split = np.load(folder / "split.npy")
        meta = [
            json.loads(line)
            for line in (folder / "meta.jsonl").read_text(encoding="utf-8").splitlines()
            if line
        ]
        if len(lr) != len(split) or len(lr) != len(meta):
            raise DataError(f"{folder}: lr16.npy, split.npy and meta.jsonl disagree in length")
        max_size = GenuineConfig.max_size
        if (folder / "report.json").is_file():
            cfg = json.loads((folder / "report.json").read_text(encoding="utf-8")).get("config", {})
            max_size = float(cfg.get("max_size", max_size))
        return cls(lr=lr, split=split, meta=meta, max_size=max_size)

    def indices(self, which: str) -> np.ndarray:
        """Rows of a split: ``test`` (as built), ``val`` (faces <= ``max_size`` of a seeded
        :data:`VAL_FRACTION` of the train photos that have one), ``train`` (the built train split
        minus every face of those photos, so no photo is in two splits) or ``train_all`` (the built
        train split, val included: what the models trained before the val split saw)."""
        if which not in ("train", "val", "test", "train_all"):
            raise DataError(f"split must be train, val, test or train_all, not {which!r}")
        if which == "test":
            return np.nonzero(self.split == 1)[0]
        if which == "train_all":
            return np.nonzero(self.split == 0)[0]
        in_val_photo, small = self._val_photos()
        if which == "val":
            return np.nonzero(in_val_photo & small)[0]
        return np.nonzero((self.split == 0) & ~in_val_photo)[0]

    def _val_photos(self) -> tuple[np.ndarray, np.ndarray]:
        """(train face in a validation photo, face <= max_size) masks over all rows. [OURS]

        Drawn by photo (``meta['path']``; byte-identical photos were already merged by the build) from
        the train photos with at least one face <= ``max_size``, seeded (:data:`VAL_SEED`), so the
        validation faces are genuine faces of the size the test split has, from photos that are in
        neither the test split nor the (new) train split."""
        train = self.split == 0
        small = np.array([float(m.get("native_size", 0)) <= self.max_size for m in self.meta], dtype=bool)
        paths = [m["path"] for m in self.meta]
        photos = sorted({paths[i] for i in np.nonzero(train & small)[0]})
        order = np.random.default_rng(VAL_SEED).permutation(len(photos))
        val = {photos[j] for j in order[: round(VAL_FRACTION * len(photos))]}
        in_val = np.array([p in val for p in paths], dtype=bool) & train
        return in_val, small


def summary_markdown(report: dict[str, Any]) -> str:
    """Counts per source and the native-size histograms of a build report, as Markdown tables."""
    srcs = list(report["per_source"])
    lines = [
        f"photos scanned: {report['photos']} ({report['photos_duplicate_skipped']} byte-identical duplicates "
        f"skipped, {len(report['photos_unreadable'])} unreadable); faces kept: {report['faces_kept']} "
        f"(train {report['faces_train']}, test {report['faces_test']})",
        "",
        "| source | detections | kept | train | test | larger than train_max_size | rejected (reason: count) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in srcs:
        v = report["per_source"][s]
        rej = ", ".join(f"{k}: {n}" for k, n in sorted(v["rejected"].items())) or "none"
        lines.append(
            f"| {s} | {v['detections']} | {v['kept']} | {v['kept_train']} | {v['kept_test']} | "
            f"{v['excluded_larger_than_train_max_size']} | {rej} |"
        )
    bins = list(report["per_source"][srcs[0]]["size_histogram_kept"]) if srcs else []
    lines += [
        "",
        "Native face size (MTCNN box side, px) of detections with score >= min_score / of kept faces:",
        "",
    ]
    lines.append("| source | " + " | ".join(bins) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in bins) + " |")
    for s in srcs:
        v = report["per_source"][s]
        det, kept = v["size_histogram_all_detections_score_ok"], v["size_histogram_kept"]
        lines.append(f"| {s} | " + " | ".join(f"{det[b]} / {kept[b]}" for b in bins) + " |")
    return "\n".join(lines) + "\n"
