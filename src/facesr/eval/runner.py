"""Evaluate one restorer (or one folder of restored faces) on one frozen benchmark.

The runner is the only place that turns model outputs into reported numbers, so models, baselines
and peers (general-purpose SR systems run by ``benchmarks/peers/``) are scored identically:

1. the benchmark's model input (masked LR by default) goes through the restorer in batches;
2. each restored face is rounded to 8 bits, exactly as if it had been saved to PNG, so that a
   model scored in memory and the same model's saved outputs get the same numbers;
3. every per-image metric of :mod:`facesr.eval.metrics` is computed against the clean HR face,
   plus identity embeddings, FRD over the whole set and (for labelled sets) verification;
4. the result, with the full protocol and the run's provenance, is written as one JSON file
   (format ``facesr-eval/2``, documented in ``docs/evaluation.md``) plus a one-table Markdown
   file, and a strip of fixed sample faces is saved for the comparison grid of ``facesr report``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.errors import DataError, FacesrError
from facesr.eval.names import FROZEN_BENCHMARKS
from facesr.eval.results import OUTPUTS, document
from facesr.eval.tables import row_key
from facesr.geometry import HR_SIZE, input_size
from facesr.pixels import quantise, to_tensor

#: The frozen benchmarks this runner scores: name -> (frozen set folder name, scale) (facesr.eval.names).
BENCHMARKS = FROZEN_BENCHMARKS
#: Number of fixed faces kept for the comparison grid, and the seed that picks them.
N_SAMPLES = 6
SAMPLE_SEED = 0
PAIR_METRICS = ("psnr", "ssim", "psnr_y", "ssim_y")


@dataclass
class EvalSet:
    """One scale of one frozen benchmark, as arrays (what the runner needs and nothing else)."""

    name: str  # e.g. "celeba10k-x4"
    scale: int
    ids: list[str]
    lr: np.ndarray  # uint8 [N, h, w, 3]: model input (masked LR)
    lr_clean: np.ndarray | None  # uint8 [N, h, w, 3]: unmasked LR (peers' best case), may be None
    hr: np.ndarray  # uint8 [N, 128, 128, 3]: clean ground truth
    labels: list[str] | None = None  # identity labels (verification), None when unlabelled
    mask: np.ndarray | None = None  # uint8 [N, 128, 128] occlusion coverage of the synthetic mask, or None
    meta: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    folder: str = ""  # frozen set folder; x4 and x8 of celeba10k share it (and their HR faces)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.hr.shape != (n, HR_SIZE, HR_SIZE, 3) or self.hr.dtype != np.uint8:
            raise DataError(
                f"{self.name}: HR must be uint8 [N,128,128,3], got {self.hr.dtype} {self.hr.shape}"
            )
        lr_side = input_size(self.scale)  # the benchmark's input frame
        for what, arr in (("lr", self.lr), ("lr_clean", self.lr_clean)):
            if arr is not None and (arr.shape != (n, lr_side, lr_side, 3) or arr.dtype != np.uint8):
                raise DataError(
                    f"{self.name}: {what} must be uint8 [N,{lr_side},{lr_side},3], "
                    f"got {arr.dtype} {arr.shape}"
                )
        if self.labels is not None and len(self.labels) != n:
            raise DataError(f"{self.name}: {len(self.labels)} identity labels for {n} faces")

    def sample_indices(self) -> list[int]:
        """The fixed faces shown in comparison grids (seeded, independent of any model)."""
        n = len(self.ids)
        rng = np.random.default_rng(SAMPLE_SEED)
        return sorted(rng.choice(n, size=min(N_SAMPLES, n), replace=False).tolist())

    def checksum(self) -> str:
        """sha256 of the benchmark's SHA256SUMS file when there is one, else of the arrays."""
        if self.root is not None and (self.root / "SHA256SUMS").is_file():
            return hashlib.sha256((self.root / "SHA256SUMS").read_bytes()).hexdigest()
        h = hashlib.sha256()
        for arr in (self.lr, self.hr):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def load_eval_set(name: str, root: str | os.PathLike[str] | None = None) -> EvalSet:
    """Load ``utk-mask-x2|utk-mask-x4|utk-mask-x8|celeba10k-x4|celeba10k-x8`` (facesr.data.benchmarks)."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    folder, scale = BENCHMARKS[name]
    from facesr.data.benchmarks import load_benchmark
    from facesr.paths import benchmarks_dir

    bench = load_benchmark(folder, root=root, scale=scale)
    if int(bench.scale) != scale:
        raise DataError(f"benchmark {folder!r} loaded at x{bench.scale}, expected x{scale}")
    meta = dict(bench.meta or {})
    ids = [str(i) for i in bench.ids]
    labels = None
    if folder.startswith("celeba"):
        from facesr.eval.verification import labels_from_meta

        idents = bench.identities
        labels = [str(x) for x in idents] if idents is not None else labels_from_meta(meta, ids)
    return EvalSet(
        name=name,
        scale=scale,
        ids=ids,
        lr=np.asarray(bench.lr),
        hr=np.asarray(bench.hr),
        lr_clean=None if bench.lr_clean is None else np.asarray(bench.lr_clean),
        labels=labels,
        mask=None if getattr(bench, "mask", None) is None else np.asarray(bench.mask),
        meta=meta,
        root=(Path(root) if root is not None else benchmarks_dir()) / folder,
        folder=folder,
    )


# ---------------------------------------------------------------------------------------------
# the evaluation proper
# ---------------------------------------------------------------------------------------------


class _NoIdentity:
    """Stands in when the caller explicitly turned identity metrics off."""


def _identity_metric(face_id: Any, device: torch.device) -> Any:
    from facesr.eval.metrics import create_metric

    if isinstance(face_id, _NoIdentity):
        return None
    if face_id is not None:
        return create_metric("identity", device=device, net=face_id)
    metric = create_metric("identity", device=device)
    try:
        _ = metric.net
    except ModuleNotFoundError as exc:
        raise FacesrError(
            f"identity metrics need facesr.nets.face_id ({exc}); pass --no-identity to score pixels only"
        ) from None
    return metric


NO_IDENTITY = _NoIdentity()


def region_psnr(sr: torch.Tensor, hr: torch.Tensor, mask_u8: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR (RGB, [0, 1]) inside and outside the benchmark's synthetic mask region, per face.

    Why: on a masked face the whole-face PSNR mixes two tasks, drawing the hidden nose and mouth (inside)
    and super-resolving what is visible (outside). The region is the mask's coverage > 50 %; a face whose
    region is empty gets NaN inside (left out of the mean by ``np.nanmean``).
    """
    inside = torch.from_numpy(mask_u8 >= 128)[:, None].expand_as(sr)
    err = (sr - hr) ** 2
    out: dict[str, np.ndarray] = {}
    for name, sel in (("psnr_mask_in", inside), ("psnr_mask_out", ~inside)):
        n = sel.flatten(1).sum(1).double()
        mse = (err * sel).flatten(1).sum(1) / n.clamp(min=1)
        psnr = 10 * torch.log10(1.0 / mse.clamp(min=1e-10))
        out[name] = torch.where(n > 0, psnr, torch.full_like(psnr, float("nan"))).numpy()
    return out


def score_outputs(
    evalset: EvalSet,
    outputs: Iterator[tuple[np.ndarray, np.ndarray]],
    *,
    face_id: Any = None,
    device: str | torch.device = "cpu",
    far: float = 0.01,
    progress: bool = True,
    total: int | None = None,
    hr_embeddings: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Score restored faces against ``evalset``.

    ``outputs`` yields ``(indices, sr_uint8 [B, 128, 128, 3])`` batches covering rows of the set.
    ``hr_embeddings`` (``[N, 128]`` for every row of the set) skips re-embedding the ground truth,
    which is the same for every model. Returns the ``metrics`` / ``per_image`` / ``verification``
    parts of the result, the HR embeddings used and the sample faces (uint8) for the grid.
    """
    from tqdm import tqdm

    from facesr.eval.metrics import INFOS, create_metric

    dev = torch.device(device)
    pair = {name: create_metric(name) for name in PAIR_METRICS}
    ident = _identity_metric(face_id, dev)
    sample_rows = set(evalset.sample_indices())
    samples: dict[int, np.ndarray] = {}
    per: dict[str, list[np.ndarray]] = {name: [] for name in PAIR_METRICS}
    seen: list[np.ndarray] = []
    emb_sr: list[torch.Tensor] = []
    emb_hr: list[torch.Tensor] = []
    for idx, sr_u8 in tqdm(
        outputs, total=total, disable=not progress, desc=f"eval {evalset.name}", unit="batch", leave=False
    ):
        idx = np.asarray(idx, dtype=np.int64)
        if sr_u8.shape != (len(idx), HR_SIZE, HR_SIZE, 3) or sr_u8.dtype != np.uint8:
            raise FacesrError(f"restored faces must be uint8 [B,128,128,3], got {sr_u8.dtype} {sr_u8.shape}")
        sr = to_tensor(sr_u8).double()
        hr = to_tensor(evalset.hr[idx]).double()
        for name, metric in pair.items():
            per[name].append(metric(sr, hr).numpy())
        if evalset.mask is not None:
            for name, v in region_psnr(sr, hr, evalset.mask[idx]).items():
                per.setdefault(name, []).append(v)
        if ident is not None:
            emb_sr.append(ident.embed(sr.float()))
            emb_hr.append(hr_embeddings[idx] if hr_embeddings is not None else ident.embed(hr.float()))
        for k, row in enumerate(idx.tolist()):
            if row in sample_rows:
                samples[row] = sr_u8[k].copy()
        seen.append(idx)
    rows = np.concatenate(seen) if seen else np.zeros(0, np.int64)
    if len(rows) == 0:
        raise FacesrError(f"{evalset.name}: nothing was evaluated")
    if len(np.unique(rows)) != len(rows):
        raise FacesrError(f"{evalset.name}: a face was scored twice")
    values = {name: np.concatenate(v) for name, v in per.items()}
    metrics: dict[str, Any] = {
        name: float(np.nanmean(v) if name.startswith("psnr_mask") else np.mean(v))
        for name, v in values.items()
    }
    verification = None
    e_hr = None
    if ident is not None:
        e_sr, e_hr = torch.cat(emb_sr), torch.cat(emb_hr)
        values["identity"] = ident.cosine(e_sr, e_hr).numpy()
        metrics["identity"] = float(np.mean(values["identity"]))
        metrics["frd"] = create_metric("frd")(e_sr, e_hr) if len(rows) > 1 else None
        if evalset.labels is not None and len(rows) > 2:
            verification = _verification(evalset, rows, e_sr, e_hr, far)
    per_image = []
    for k, row in enumerate(rows.tolist()):
        rec: dict[str, Any] = {"id": evalset.ids[row]}
        for name, v in values.items():
            rec[name] = float(v[k])  # rounded when written (results.PER_IMAGE_DIGITS)
        per_image.append(rec)
    per_image.sort(key=lambda r: r["id"])
    used = {n: INFOS[n].definition for n in (*values, *(["frd"] if "frd" in metrics else []))}
    if verification is not None:
        used["verification"] = INFOS["verification"].definition
    return {
        "metrics": metrics,
        "metric_definitions": used,
        "per_image": per_image,
        "verification": verification,
        "n": len(rows),
        "samples": samples,
        "rows": rows,
        "hr_embeddings": e_hr,
    }


def _verification(
    evalset: EvalSet, rows: np.ndarray, e_sr: torch.Tensor, e_hr: torch.Tensor, far: float
) -> dict[str, Any] | None:
    from facesr.eval.verification import make_pairs, verify

    labels = [evalset.labels[r] for r in rows.tolist()]  # type: ignore[index]
    try:
        pairs = make_pairs(labels)
    except DataError:
        return None
    return {
        "protocol": pairs.describe(),
        "restored_vs_hr": verify(e_sr, e_hr, pairs, far),
        "hr_vs_hr": verify(e_hr, e_hr, pairs, far),
    }


def _model_outputs(
    restorer: torch.nn.Module, lr: np.ndarray, rows: np.ndarray, batch_size: int, device: torch.device
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        x = to_tensor(lr[idx]).to(device)
        with torch.inference_mode():
            y = restorer(x)
        if y.shape[-2:] != (HR_SIZE, HR_SIZE):
            raise FacesrError(f"model returned {tuple(y.shape)}; restorers must return N x 3 x 128 x 128")
        yield idx, quantise(y)


def _image_outputs(
    folder: Path, ids: list[str], rows: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from facesr.io import read_image

    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        imgs = []
        for r in idx.tolist():
            path = folder / f"{ids[r]}.png"
            if not path.is_file():
                raise DataError(f"{folder}: restored face {path.name} is missing")
            img = read_image(path)
            if img.shape != (HR_SIZE, HR_SIZE, 3):
                raise DataError(f"{path}: restored faces must be 128x128, got {img.shape[1]}x{img.shape[0]}")
            imgs.append(img)
        yield idx, np.stack(imgs)


def _rows(evalset: EvalSet, limit: int | None) -> np.ndarray:
    n = len(evalset.ids)
    if limit is not None:
        if limit < 1:
            raise FacesrError(f"--limit must be at least 1, got {limit}")
        n = min(n, limit)
    return np.arange(n, dtype=np.int64)


def protocol(evalset: EvalSet, input_kind: str, definitions: dict[str, str], n: int) -> dict[str, Any]:
    """The protocol block of a result file: everything needed to reproduce the numbers."""
    meta = evalset.meta
    return {
        "benchmark": evalset.name,
        "data_set": meta.get("prepared_set") or meta.get("data_set") or evalset.name,
        "split": meta.get("split")
        or ("test split of the prepared set" if meta.get("prepared_set") == "utkface" else "all faces"),
        "benchmark_note": meta.get("note"),
        "scale": evalset.scale,
        "n_faces": n,
        "n_faces_in_benchmark": len(evalset.ids),
        "complete": n == len(evalset.ids),
        "lr_size": input_size(evalset.scale),
        "hr_size": HR_SIZE,
        "input": ("masked LR (lr/)" if input_kind == "masked" else "unmasked LR (lr_clean/)"),
        "target": "clean HR (hr/)",
        "colour_space": "RGB in [0,1]; *_y metrics on BT.601 studio-range luma (BasicSR convention)",
        "crop": "none (whole 128x128 aligned face; SSIM averages the valid 11x11 window positions)",
        "quantisation": "restored faces rounded to 8 bits before scoring, as if saved to PNG",
        "benchmark_checksum": evalset.checksum(),
        "benchmark_seed": meta.get("seed"),
        "sample_rows": evalset.sample_indices(),
        "metrics": definitions,
    }


def evaluate(
    evalset: EvalSet,
    *,
    restorer: torch.nn.Module | None = None,
    images: Path | None = None,
    model: dict[str, Any],
    input_kind: str = "masked",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    face_id: Any = None,
    progress: bool = True,
    command: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a restorer (or a folder of restored PNGs named ``<id>.png``) and return the result.

    ``model`` describes what is scored: at least ``name``; ``kind`` is ``baseline`` | ``facesr`` |
    ``peer``; a peer adds ``source`` / ``licence`` / ``notes``. The return value is the full
    ``facesr-eval/2`` document plus the private ``_strips`` of sample faces (written, then dropped, by
    :func:`facesr.eval.results.write_result`).
    """
    if (restorer is None) == (images is None):
        raise FacesrError("evaluate needs exactly one of a restorer or an images folder")
    if input_kind not in ("masked", "clean"):
        raise FacesrError(f"input must be 'masked' or 'clean', got {input_kind!r}")
    if batch_size < 1:
        raise FacesrError(f"batch size must be at least 1, got {batch_size}")
    dev = torch.device(device)
    rows = _rows(evalset, limit)
    lr = evalset.lr if input_kind == "masked" else evalset.lr_clean
    if lr is None:
        raise DataError(f"{evalset.name}: this benchmark has no unmasked LR faces")
    t0 = time.perf_counter()
    if restorer is not None:
        restorer = restorer.to(dev).eval()
        outputs = _model_outputs(restorer, lr, rows, batch_size, dev)
    else:
        outputs = _image_outputs(Path(images), evalset.ids, rows, batch_size)  # type: ignore[arg-type]
    total = (len(rows) + batch_size - 1) // batch_size
    cache = _hr_cache_path(evalset, cache_dir, face_id)
    cached = _load_hr_cache(cache, len(evalset.ids))
    scored = score_outputs(
        evalset, outputs, face_id=face_id, device=dev, progress=progress, total=total, hr_embeddings=cached
    )
    if (
        cache is not None
        and cached is None
        and scored["hr_embeddings"] is not None
        and len(rows) == len(evalset.ids)
    ):
        _save_hr_cache(cache, scored["hr_embeddings"], scored["rows"])
    wall = time.perf_counter() - t0
    info = {"kind": "facesr", "input": input_kind, **model}
    info.setdefault("row", row_key(str(info["name"])))
    if restorer is not None and "params" not in info:
        info["params"] = int(sum(p.numel() for p in restorer.parameters()))
    return {
        **document(
            model=info,
            protocol=protocol(evalset, input_kind, scored["metric_definitions"], scored["n"]),
            metrics=scored["metrics"],
            verification=scored["verification"],
            per_image=scored["per_image"],
            wall_time_s=round(wall, 3),
            run={
                "faces_per_s": round(scored["n"] / wall, 3) if wall > 0 else None,
                "batch_size": batch_size,
            },
            device=dev,
            command=command,
            hr_embeddings="cached" if cached is not None else "computed",
        ),
        "_strips": sample_strips(evalset, scored["samples"], input_kind),
    }


def sample_strips(evalset: EvalSet, samples: dict[int, np.ndarray], input_kind: str) -> dict[str, np.ndarray]:
    """The grid's strips (see :func:`facesr.eval.results.write_result`): this method's outputs, the
    inputs enlarged by pixel repetition, the ground truth; none unless every sample face was scored,
    and none for unmasked input (``facesr report``'s grid shows the masked-input runs only)."""
    rows = evalset.sample_indices()
    if input_kind != "masked" or not samples or not all(r in samples for r in rows):
        return {}
    strips = {OUTPUTS: np.concatenate([samples[r] for r in rows], axis=0)}
    if evalset.lr is not None:
        up = [np.kron(evalset.lr[r], np.ones((evalset.scale, evalset.scale, 1), np.uint8)) for r in rows]
        strips["input"] = np.concatenate(up, axis=0)
    strips["gt"] = np.concatenate([evalset.hr[r] for r in rows], axis=0)
    return strips


def _hr_cache_path(evalset: EvalSet, cache_dir: Any, face_id: Any) -> Path | None:
    """Cache file for the HR embeddings of a benchmark: keyed on the benchmark checksum and the identity
    network's weights file, so a changed benchmark or network never reuses stale embeddings. Only the
    real network (``face_id is None``) is cached."""
    if cache_dir is None or face_id is not None:
        return None
    try:
        from facesr.nets.face_id import WEIGHTS
        from facesr.zoo import sha256_file

        net_sha = sha256_file(WEIGHTS)
    except (ImportError, OSError):
        return None
    key = hashlib.sha256(f"{evalset.checksum()}|{net_sha}|{torch.__version__}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"hr_emb_{evalset.folder or evalset.name}_{key}.npy"


def _load_hr_cache(path: Path | None, n: int) -> torch.Tensor | None:
    if path is None or not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return torch.from_numpy(arr) if arr.shape == (n, 128) and arr.dtype == np.float32 else None


def _save_hr_cache(path: Path, emb: torch.Tensor, rows: np.ndarray) -> None:
    import io as _io

    from facesr.io import atomic_write_bytes

    full = np.zeros((len(rows), emb.shape[1]), np.float32)
    full[rows] = emb.float().numpy()
    buf = _io.BytesIO()
    np.save(buf, full, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
