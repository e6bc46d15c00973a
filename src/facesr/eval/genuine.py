"""Evaluation for CR: the ``genuine-lr`` benchmark (no ground truth) and the artificial-LR check.

Genuine LR faces have no HR counterpart, so (papers.md 2.6, DESIGN.md 4; PROPOSAL):

* **FRD** (Frechet distance on face-recognition embeddings; not FID) between the restored genuine
  test faces and *real* HR faces: the UTKFace prepared test split at 64x64;
* **FRD vs masked HR** (``frd_masked_ref``): the same, against those HR faces wearing synthetic
  MaskTheFace masks (:class:`facesr.data.masks.MaskSynthesizer`, seed 0, made at 128 and shrunk to
  64): most genuine faces here are *masked* (RWMFD), so this reference compares like with like;
* **identity vs bicubic input**: cosine between the embedding of the restored face and the
  embedding of the bicubic-upsampled genuine input (the only identity reference we have; it
  rewards keeping who the person is, not sharpness; labelled ``identity_vs_bicubic_input``);
* **PSNR/SSIM on artificial LR**: UTKFace test faces64 -> antialiased bicubic x1/4 -> 16x16 ->
  model (the training degradation, then 8-bit), scored at 64x64 against the HR face (CR must not lose here).

All comparisons happen at 64x64, CR's native HR size: a model with an ``out_size`` attribute (the
CR family) is run at 64; any other restorer's 128x128 output is shrunk to 64 (antialiased
bicubic). For the embedding network (dlib face-recognition ResNet, face-api.js port, which takes
template-aligned 128x128 faces), outputs *and* the real HR faces are bicubic-upsampled 64 -> 128
the same way, so FRD compares like with like.

Is FRD on ~120 faces meaningful? ``frd_ci95`` is a bootstrap interval over faces (both sets
resampled), and the replicate values are stored (``frd_bootstrap``) with a fixed seed, so
``facesr report`` can compute a *paired* interval for the FRD difference between two methods.

Entry points: ``facesr eval --benchmark genuine-lr|utk-art-x4 --model M --name NAME`` (one method,
one benchmark) and ``facesr genuine eval --method NAME=M ...`` (several methods, both benchmarks,
reference embeddings computed once). Both write ``facesr-eval/2`` JSON files named like every other
benchmark's (:mod:`facesr.eval.results`) plus, for genuine-lr, sample strips from which
``facesr report`` builds the grid of genuine inputs and each method's output.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facesr.errors import DataError
from facesr.eval.names import CR_BENCHMARKS
from facesr.eval.results import OUTPUTS, document, write_result
from facesr.geometry import CR_LR_SIZE, CR_NATIVE_SIZE, CR_SCALE, HR_SIZE
from facesr.pixels import quantise, round8
from facesr.pixels import to_tensor as to01

HR = CR_NATIVE_SIZE  # CR's HR frame (the 128 template at half size)
LR = CR_LR_SIZE
EMBED = HR_SIZE  # the identity network takes template-aligned 128x128 faces
SCALE_LEARNED = CR_SCALE
DEFINITIONS = {
    "frd": (
        "Frechet distance between Gaussians fitted to the dlib face-recognition ResNet (face-api.js "
        "port) embeddings of all restored genuine test faces and of the real HR faces (UTKFace prepared "
        "test split), both at 64x64 bicubic-upsampled to 128 for the network (FRD; not FID)"
    ),
    "frd_masked_ref": (
        "FRD as above against the same UTKFace test faces wearing synthetic MaskTheFace masks "
        "(facesr.data.masks.MaskSynthesizer, seed 0, at 128, antialiased bicubic to 64)"
    ),
    "frd_se": (
        "bootstrap standard error of FRD: standard deviation of FRD over 1000 resamplings (with "
        "replacement, seed 0) of the genuine test faces and of the HR reference faces (no percentile "
        "interval: resampled FRD is biased upwards, duplicated faces shrink the covariance)"
    ),
    "identity_vs_bicubic_input": (
        "mean cosine between the embedding of the restored face and the embedding "
        "of its genuine 16x16 input bicubic-upsampled to 128 (no HR exists)"
    ),
    "psnr": "PSNR on RGB in [0,1] at 64x64 vs the UTKFace HR face (artificial LR = bicubic x1/4)",
    "ssim": "SSIM (11x11 Gaussian, sigma 1.5) on RGB at 64x64 vs the UTKFace HR face",
}


def up128(x: torch.Tensor) -> torch.Tensor:
    """Bicubic up-sampling to the embedding network's 128x128 frame (same for outputs and real HR)."""
    return F.interpolate(x, size=(EMBED, EMBED), mode="bicubic", align_corners=False).clamp(0, 1)


@torch.inference_mode()
def restore64(restorer: torch.nn.Module, lr16: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Run a restorer on 16x16 faces and return 64x64 outputs in [0,1], rounded to 8 bits."""
    net = getattr(restorer, "net", restorer)
    dev = next((p.device for p in restorer.parameters()), torch.device("cpu"))
    outs = []
    for i in range(0, len(lr16), batch):
        x = lr16[i : i + batch].to(dev)
        if hasattr(net, "out_size"):
            saved = net.out_size
            net.out_size = HR
            try:
                y = restorer(x)
            finally:
                net.out_size = saved
        else:
            y = restorer(x)
        if y.shape[-1] != HR:
            y = F.interpolate(
                y, size=(HR, HR), mode="bicubic", align_corners=False, antialias=y.shape[-1] > HR
            )
        outs.append(round8(y).cpu())
    return torch.cat(outs)


def bicubic64(lr16: torch.Tensor) -> torch.Tensor:
    """The bicubic x4 baseline at 64 (rounded to 8 bits like every method's output)."""
    return round8(F.interpolate(lr16, size=(HR, HR), mode="bicubic", align_corners=False))


class Embedder:
    """Embeds 64x64 faces with the identity network (upsampled to 128), in batches."""

    def __init__(self, device: str = "cpu", net: Any = None) -> None:
        from facesr.eval.metrics import create_metric

        self.metric = create_metric("identity", device=device, **({"net": net} if net is not None else {}))
        self.custom = net is not None  # a stand-in network: never cache its embeddings

    def __call__(self, img64: torch.Tensor, batch: int = 64) -> torch.Tensor:
        return torch.cat(
            [self.metric.embed(up128(img64[i : i + batch])) for i in range(0, len(img64), batch)]
        )


def load_sets(
    genuine_dir: str | Path, prepared_dir: str | Path, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Genuine test faces (uint8 [N,16,16,3]) with ids, and the real HR test faces (uint8 [M,64,64,3])."""
    from facesr.data.genuine import GenuineSet

    gset = GenuineSet.load(genuine_dir)
    rows = gset.indices("test")
    if len(rows) < 2:
        raise DataError(
            f"{genuine_dir}: fewer than 2 genuine test faces; rebuild with a larger test fraction"
        )
    prep = Path(prepared_dir)
    if not (prep / "faces64.npy").is_file():
        raise DataError(f"prepared set {str(prep)!r} has no faces64.npy; run `facesr prepare utkface` first")
    faces = np.load(prep / "faces64.npy", mmap_mode="r")
    split = np.load(prep / "split.npy")
    hr = np.asarray(faces[np.nonzero(split == 1)[0]])
    if limit:
        rows, hr = rows[:limit], hr[:limit]
    ids = [f"{gset.meta[r]['path']}#{r}" for r in rows]
    return gset.lr[rows], hr, ids


#: FRD reference of the genuine validation split: this many UTKFace *train* faces (seeded choice), so that
#: no test face (genuine or HR) takes part in a model choice. [OURS, issue 19]
VAL_REF_FACES = 1000
VAL_REF_SEED = 0


def load_val_sets(
    genuine_dir: str | Path, prepared_dir: str | Path, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Genuine *validation* faces (:meth:`facesr.data.genuine.GenuineSet.indices` ``"val"``) with ids,
    and the validation FRD reference: :data:`VAL_REF_FACES` UTKFace train faces at 64x64."""
    from facesr.data.genuine import GenuineSet

    gset = GenuineSet.load(genuine_dir)
    rows = gset.indices("val")
    if len(rows) < 2:
        raise DataError(f"{genuine_dir}: fewer than 2 genuine validation faces")
    prep = Path(prepared_dir)
    split = np.load(prep / "split.npy")
    train_rows = np.nonzero(split == 0)[0]
    pick = np.sort(
        np.random.default_rng(VAL_REF_SEED).choice(
            train_rows, size=min(VAL_REF_FACES, len(train_rows)), replace=False
        )
    )
    hr = np.asarray(np.load(prep / "faces64.npy", mmap_mode="r")[pick])
    if limit:
        rows, hr = rows[:limit], hr[:limit]
    ids = [f"{gset.meta[r]['path']}#{r}" for r in rows]
    return gset.lr[rows], hr, ids


def masked_reference(
    prepared_dir: str | Path, data: str | Path | None = None, seed: int = 0, limit: int | None = None
) -> np.ndarray:
    """UTKFace test faces with synthetic masks, uint8 [M,64,64,3] (made at 128, shrunk x2)."""
    from facesr.data.masks import MaskSynthesizer
    from facesr.paths import data_root
    from facesr.resample import downsample

    prep = Path(prepared_dir)
    split = np.load(prep / "split.npy")
    rows = np.nonzero(split == 1)[0]
    rows = rows[:limit] if limit else rows
    faces = np.asarray(np.load(prep / "faces128.npy", mmap_mode="r")[rows])
    lms = torch.from_numpy(np.asarray(np.load(prep / "landmarks128.npy", mmap_mode="r")[rows])).float()
    synth = MaskSynthesizer(data_root(data))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(rows), 64):
        masked, _ = synth(to01(faces[i : i + 64]), lms[i : i + 64], g)
        out.append(downsample(masked.clamp(0, 1), 2))
    return quantise(torch.cat(out))


BENCHMARKS = CR_BENCHMARKS
#: Bootstrap over faces for FRD (``facesr-eval/2`` key ``frd_bootstrap``): replicates and seed. The same
#: seed and set sizes give the same resampled indices for every method, so the replicate values of two
#: result files form a *paired* bootstrap of their difference (used by ``facesr report``).
BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
#: Genuine test faces shown in the comparison grid (seeded choice, the same for every method).
GRID_ROWS = 6
GRID_SEED = 0


def grid_rows(n: int) -> list[int]:
    """The fixed genuine test faces of the comparison grid."""
    rng = np.random.default_rng(GRID_SEED)
    return sorted(rng.choice(n, size=min(GRID_ROWS, n), replace=False).tolist())


def bootstrap_frd(
    e_out: torch.Tensor, e_ref: torch.Tensor, replicates: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """FRD recomputed on ``replicates`` resamplings (with replacement) of BOTH sets of faces.

    The genuine outputs and the HR reference are resampled with one seeded generator whose draws depend
    only on the two set sizes, so two methods scored on the same sets get the same indices (paired).
    Their standard deviation is ``frd_se``. FRD on a resample is biased upwards (duplicated faces
    shrink the covariance), so percentile intervals of single methods would sit above the estimate;
    the paired *ratio* of two methods' replicates is what ``facesr report`` turns into an interval.
    """
    from facesr.eval.metrics import embedding_stats, frechet_distance_from_stats

    rng = np.random.default_rng(seed)
    n, m = len(e_out), len(e_ref)
    out = np.empty(replicates)
    a, b = e_out.double(), e_ref.double()
    for r in range(replicates):
        i = torch.from_numpy(rng.integers(0, n, n))
        j = torch.from_numpy(rng.integers(0, m, m))
        out[r] = frechet_distance_from_stats(*embedding_stats(a[i]), *embedding_stats(b[j]))
    return out


def _cached_embeddings(embedder: Embedder, faces64: np.ndarray, cache_dir: Path | None) -> torch.Tensor:
    """Embeddings of a fixed reference set, cached on disk by the arrays' and the network's checksums."""
    if cache_dir is None or embedder.custom:
        return embedder(to01(faces64))
    from facesr.nets.face_id import WEIGHTS
    from facesr.zoo import sha256_file

    key = hashlib.sha256(
        hashlib.sha256(faces64.tobytes()).hexdigest().encode() + sha256_file(WEIGHTS).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"genuine_ref_emb_{key}.npy"
    if path.is_file():
        arr = np.load(path, allow_pickle=False)
        if arr.shape == (len(faces64), 128):
            return torch.from_numpy(arr)
    emb = embedder(to01(faces64))
    import io as _io

    from facesr.io import atomic_write_bytes

    buf = _io.BytesIO()
    np.save(buf, emb.float().numpy(), allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return emb


class GenuineBench:
    """The two CR benchmarks' data and reference embeddings, loaded once for any number of methods."""

    def __init__(
        self,
        genuine_dir: str | Path,
        prepared_dir: str | Path,
        *,
        limit: int | None = None,
        face_id: Any = None,
        masked_ref: bool = True,
        data: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.gen16, self.hr64, self.ids = load_sets(genuine_dir, prepared_dir, limit)
        self.face_id, self.masked_ref, self.data = face_id, masked_ref, data
        self.cache = Path(cache_dir) if cache_dir is not None else None
        self.limit = limit
        self.checksums = {
            "genuine-lr": hashlib.sha256(self.gen16.tobytes()).hexdigest(),
            "utk-art-x4": hashlib.sha256(self.hr64.tobytes()).hexdigest(),
        }
        self.genuine_dir, self.prepared_dir = str(genuine_dir), str(prepared_dir)

    @cached_property
    def val(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(val genuine faces, val HR reference, ids): loaded on the first ``genuine-lr-val`` run."""
        out = load_val_sets(self.genuine_dir, self.prepared_dir, self.limit)
        self.checksums["genuine-lr-val"] = hashlib.sha256(out[0].tobytes()).hexdigest()
        return out

    @cached_property
    def has_val(self) -> bool:
        """Whether the genuine set has a validation split to score (at least 2 faces)."""
        from facesr.data.genuine import GenuineSet

        return len(GenuineSet.load(self.genuine_dir).indices("val")) >= 2

    @cached_property
    def val_hr_emb(self) -> torch.Tensor:
        return _cached_embeddings(self.embedder, self.val[1], self.cache)

    @cached_property
    def val_in_emb(self) -> torch.Tensor:
        return self.embedder(bicubic64(to01(self.val[0])))

    # The embeddings are only computed when genuine-lr is scored (utk-art-x4 needs none).
    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(net=self.face_id)

    @cached_property
    def hr_emb(self) -> torch.Tensor:
        return _cached_embeddings(self.embedder, self.hr64, self.cache)

    @cached_property
    def gen_in_emb(self) -> torch.Tensor:
        return self.embedder(bicubic64(to01(self.gen16)))

    @cached_property
    def masked_emb(self) -> torch.Tensor | None:
        if not self.masked_ref:
            return None
        faces = masked_reference(self.prepared_dir, self.data, limit=self.limit)
        return _cached_embeddings(self.embedder, faces, self.cache)

    def run(self, benchmark: str, restorer: torch.nn.Module | None) -> dict[str, Any]:
        """Scores of one method (``restorer=None``: bicubic x4) on one benchmark, with per-face values."""
        from facesr.eval.metrics import create_metric

        if benchmark not in BENCHMARKS:
            raise DataError(f"unknown CR benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
        t0 = time.perf_counter()
        run = bicubic64 if restorer is None else (lambda x: restore64(restorer, x))
        if benchmark in ("genuine-lr", "genuine-lr-val"):
            val = benchmark == "genuine-lr-val"
            gen16, ids = (self.val[0], self.val[2]) if val else (self.gen16, self.ids)
            ref, inp = (self.val_hr_emb, self.val_in_emb) if val else (self.hr_emb, self.gen_in_emb)
            out = run(to01(gen16))
            e_out = self.embedder(out)
            ident = create_metric("identity").cosine(e_out, inp)
            boot = bootstrap_frd(e_out, ref)
            metrics: dict[str, Any] = {
                "frd": create_metric("frd")(e_out, ref),
                "frd_se": float(np.std(boot, ddof=1)),
            }
            if not val and self.masked_emb is not None:
                metrics["frd_masked_ref"] = create_metric("frd")(e_out, self.masked_emb)
            metrics["identity_vs_bicubic_input"] = float(ident.mean())
            per = [
                {"id": i, "identity_vs_bicubic_input": float(v)}
                for i, v in zip(ids, ident.tolist(), strict=True)
            ]
            extra = {
                "frd_bootstrap": {
                    "replicates": BOOTSTRAP,
                    "seed": BOOTSTRAP_SEED,
                    "resampled": "genuine test faces and HR reference faces, with replacement",
                    "values": [round(float(v), 6) for v in boot],
                }
            }
            samples = None if val else out[grid_rows(len(out))]
        else:
            from facesr.resample import downsample

            y = to01(self.hr64)
            x_a = round8(downsample(y, SCALE_LEARNED))  # the CR training degradation, then 8-bit
            out = run(x_a)
            psnr = create_metric("psnr")(out.double(), y.double())
            ssim = create_metric("ssim")(out.double(), y.double())
            metrics = {"psnr": float(psnr.mean()), "ssim": float(ssim.mean())}
            prefix = "utk"
            per = [
                {"id": f"{prefix}{k:05d}", "psnr": float(a), "ssim": float(b)}
                for k, (a, b) in enumerate(zip(psnr.tolist(), ssim.tolist(), strict=True))
            ]
            extra = {}
            samples = None
        return {
            "metrics": metrics,
            "per_image": per,
            "extra": extra,
            "samples": samples,
            "wall_s": round(time.perf_counter() - t0, 2),
        }

    def protocol(self, benchmark: str) -> dict[str, Any]:
        """The protocol block of a CR result file (what was compared with what, and how)."""
        n_gen, n_hr = len(self.ids), len(self.hr64)
        if benchmark == "genuine-lr-val":
            n_val, n_ref = len(self.val[2]), len(self.val[1])
        common = {
            "benchmark": benchmark,
            "split": "val" if benchmark == "genuine-lr-val" else "test",
            "scale": SCALE_LEARNED,
            "lr_size": LR,
            "hr_size": HR,
            "colour_space": "RGB in [0,1]",
            "quantisation": "outputs rounded to 8 bits before scoring, as if saved to PNG",
            "complete": self.limit is None,
            "benchmark_checksum": self.checksums[benchmark],
        }
        if benchmark == "genuine-lr-val":
            return {
                **common,
                "data_set": (
                    f"genuine LR faces (`facesr genuine build`, {self.genuine_dir}), validation split "
                    "(facesr.data.genuine.GenuineSet.indices('val'): by photo, from the built train split)"
                ),
                "n_faces": n_val,
                "n_faces_in_benchmark": n_val,
                "input": "genuine 16x16 faces (MTCNN-detected in rwmfd/web_unmasked, template-aligned)",
                "target": (
                    f"none (no ground truth); FRD reference = {n_ref} UTKFace prepared TRAIN faces at 64x64 "
                    f"(seeded choice, seed {VAL_REF_SEED}): no test face takes part in model choice"
                ),
                "metrics": {
                    k: DEFINITIONS[k]
                    .replace("test faces", "validation faces")
                    .replace("(UTKFace prepared test split)", "(UTKFace prepared train faces)")
                    for k in ("frd", "frd_se", "identity_vs_bicubic_input")
                },
            }
        if benchmark == "genuine-lr":
            masked = ("frd_masked_ref",) if self.masked_emb is not None else ()
            return {
                **common,
                "data_set": f"genuine LR faces (`facesr genuine build`, {self.genuine_dir}), test split",
                "n_faces": n_gen,
                "n_faces_in_benchmark": n_gen,
                "input": "genuine 16x16 faces (MTCNN-detected in rwmfd/web_unmasked, template-aligned)",
                "target": f"none (no ground truth); FRD reference = {n_hr} UTKFace prepared test faces at 64x64",
                "sample_rows": grid_rows(n_gen),
                "metrics": {
                    k: DEFINITIONS[k] for k in ("frd", "frd_se", *masked, "identity_vs_bicubic_input")
                },
            }
        return {
            **common,
            "data_set": f"UTKFace prepared test split ({self.prepared_dir})",
            "n_faces": n_hr,
            "n_faces_in_benchmark": n_hr,
            "input": "HR 64 -> antialiased bicubic x1/4 (the CR training degradation) -> 16x16, 8-bit",
            "target": "UTKFace HR at 64x64",
            "metrics": {k: DEFINITIONS[k] for k in ("psnr", "ssim")},
        }


def evaluate_model(
    bench: GenuineBench,
    benchmark: str,
    restorer: torch.nn.Module | None,
    model: dict[str, Any],
    command: str | None = None,
) -> dict[str, Any]:
    """A full ``facesr-eval/2`` document (plus private ``_strips``) for one method on one CR benchmark.

    The document and the files come from the same code as every other benchmark's
    (:func:`facesr.eval.results.document`, :func:`facesr.eval.results.write_result`); for genuine-lr the
    strips are this method's sample outputs and the 16 px inputs enlarged x4 (nearest), from which
    ``facesr report`` builds the comparison grid.
    """
    res = bench.run(benchmark, restorer)
    info = {"kind": "facesr", "input": "genuine" if benchmark == "genuine-lr" else "artificial", **model}
    if restorer is not None and "params" not in info:
        info["params"] = int(sum(p.numel() for p in restorer.parameters()))
    protocol = bench.protocol(benchmark)
    doc = document(
        model=info,
        protocol=protocol,
        metrics=res["metrics"],
        extra=res["extra"],
        per_image=res["per_image"],
        wall_time_s=res["wall_s"],
        device="cpu",
        command=command,
    )
    strips: dict[str, np.ndarray] = {}
    if res["samples"] is not None and protocol.get("complete", True):
        strips[OUTPUTS] = np.concatenate(list(quantise(res["samples"])), axis=0)
        rows = protocol["sample_rows"]
        up = [np.kron(bench.gen16[r], np.ones((SCALE_LEARNED, SCALE_LEARNED, 1), np.uint8)) for r in rows]
        strips["input"] = np.concatenate(up, axis=0)
    return {**doc, "_strips": strips}


def eval_command(
    benchmark: str,
    model_name: str,
    *,
    name: str | None = None,
    label: str | None = None,
    kind: str | None = None,
    notes: str | None = None,
    out_dir: str | Path = "results",
    limit: int | None = None,
    device: str = "cpu",
    command: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """``facesr eval --benchmark genuine-lr|utk-art-x4``: one method on one CR benchmark, from the
    workspace's genuine set (``facesr genuine build``) and prepared UTKFace set (``facesr prepare``)."""
    from facesr.paths import cache_dir as user_cache
    from facesr.paths import prepared_dir, workspace
    from facesr.zoo import load_model, sha256_file

    prep = prepared_dir("utkface")
    bench = GenuineBench(
        workspace() / "genuine",
        prep,
        limit=limit,
        # the masked reference needs the 128 px faces and their landmarks (absent from minimal sets)
        masked_ref=(prep / "faces128.npy").is_file() and (prep / "landmarks128.npy").is_file(),
        cache_dir=user_cache("eval"),
    )
    restorer = None
    model: dict[str, Any] = {}
    if model_name not in ("bicubic", "bicubic-x4"):
        restorer = load_model(model_name, device=device).eval()
        meta = getattr(restorer, "meta", {}) or {}
        model.update({"arch": meta.get("facesr.arch", ""), "arch_args": meta.get("facesr.args", "")})
        if Path(model_name).suffix == ".safetensors":
            model["weights_sha256"] = sha256_file(model_name)
    model["name"] = name or (getattr(restorer, "name", model_name) if restorer is not None else "bicubic-x4")
    model["kind"] = kind or ("baseline" if restorer is None else "facesr")
    model["weights"] = model_name
    if label:
        model["label"] = label
    if notes:
        model["notes"] = notes
    doc = evaluate_model(bench, benchmark, restorer, model, command)
    return write_result(doc, out_dir), doc


def run_genuine_eval(
    methods: Sequence[tuple[str, str]],
    *,
    genuine_dir: str | Path,
    prepared_dir: str | Path,
    out_dir: str | Path,
    limit: int | None = None,
    command: str | None = None,
    face_id: Any = None,
    masked_ref: bool = True,
    data: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> list[Path]:
    """Score several methods (name, zoo name or weights path; ``bicubic`` = bicubic x4) on both CR
    benchmarks in one process (reference embeddings computed once); the files are the same as
    ``facesr eval --benchmark genuine-lr|utk-art-x4 --model M --name NAME`` writes.

    ``face_id`` replaces the identity network (tests pass a small stand-in)."""
    from facesr.zoo import load_model

    bench = GenuineBench(
        genuine_dir,
        prepared_dir,
        limit=limit,
        face_id=face_id,
        masked_ref=masked_ref,
        data=data,
        cache_dir=cache_dir,
    )
    paths = []
    benchmarks = [b for b in BENCHMARKS if b != "genuine-lr-val" or bench.has_val]
    for name, spec in methods:
        restorer = None if spec in ("bicubic", "bicubic-x4") else load_model(spec).eval()
        model = {"name": name, "kind": "baseline" if restorer is None else "facesr", "weights": spec}
        if restorer is not None:
            meta = getattr(restorer, "meta", {}) or {}
            model.update({"arch": meta.get("facesr.arch", ""), "arch_args": meta.get("facesr.args", "")})
        for benchmark in benchmarks:
            doc = evaluate_model(bench, benchmark, restorer, model, command)
            paths.append(write_result(doc, out_dir))
    return paths
