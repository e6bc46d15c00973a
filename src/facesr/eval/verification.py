"""Face-verification protocol on a labelled benchmark (CelebA-10k): fixed pairs, scores, TAR/EER.

PSNR says how close the pixels are; verification says whether the restored face *still verifies
as the right person*. The pairs are drawn once from the benchmark's identity labels with a fixed
seed, so every model is scored on the same pairs:

* genuine pairs: every unordered pair of different images of the same identity, subsampled
  (seeded) to at most ``max_genuine``;
* impostor pairs: ``n_impostor`` distinct unordered pairs of images of different identities,
  sampled uniformly with the same seed.

A pair ``(i, j)`` (``i < j``) is scored as ``cos(embed(probe_i), embed(gallery_j))``. Three
settings answer the question in issue 5: HR-vs-HR (the ceiling, probe = clean HR), bicubic-vs-HR
(evaluate ``bicubic``) and restored-vs-HR (probe = the model's output). The gallery is always the
clean HR face, as in a watch-list search where enrolment photos are good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facesr.errors import DataError

DEFAULT_SEED = 0
DEFAULT_MAX_GENUINE = 5000
DEFAULT_N_IMPOSTOR = 50000


@dataclass(frozen=True)
class Pairs:
    """Fixed verification pairs: row indices into the benchmark arrays."""

    genuine: np.ndarray  # [G, 2] int64, i < j, same identity
    impostor: np.ndarray  # [I, 2] int64, i < j, different identities
    seed: int

    def describe(self) -> dict[str, Any]:
        """Protocol summary for the result JSON (counts, seed, a checksum of the pair lists)."""
        import hashlib

        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.genuine, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.impostor, dtype="<i8").tobytes())
        return {
            "n_genuine": len(self.genuine),
            "n_impostor": len(self.impostor),
            "seed": self.seed,
            "pairs_sha256": h.hexdigest(),
        }


def make_pairs(
    labels: Sequence[Any],
    *,
    seed: int = DEFAULT_SEED,
    max_genuine: int = DEFAULT_MAX_GENUINE,
    n_impostor: int = DEFAULT_N_IMPOSTOR,
) -> Pairs:
    """Genuine and impostor pairs from per-image identity labels, deterministic for a seed."""
    lab = np.asarray([str(x) for x in labels])
    n = len(lab)
    if n < 2:
        raise DataError("verification needs at least two labelled faces")
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(lab, return_inverse=True)
    genuine: list[tuple[int, int]] = []
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    for group in np.split(order, bounds):
        g = np.sort(group)
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                genuine.append((int(g[a]), int(g[b])))
    if not genuine:
        raise DataError("verification: no identity has two or more faces in this benchmark")
    gen = np.asarray(genuine, dtype=np.int64)
    if len(gen) > max_genuine:
        keep = np.sort(rng.choice(len(gen), size=max_genuine, replace=False))
        gen = gen[keep]
    n_diff = n * (n - 1) // 2 - len(genuine)
    want = min(n_impostor, n_diff)
    seen: set[tuple[int, int]] = set()
    imp: list[tuple[int, int]] = []
    while len(imp) < want:
        i = rng.integers(0, n, size=2 * (want - len(imp)) + 16)
        j = rng.integers(0, n, size=i.shape[0])
        for a, b in zip(i.tolist(), j.tolist(), strict=True):
            if inverse[a] == inverse[b]:
                continue
            key = (min(a, b), max(a, b))
            if key in seen:
                continue
            seen.add(key)
            imp.append(key)
            if len(imp) == want:
                break
    return Pairs(genuine=gen, impostor=np.asarray(imp, dtype=np.int64).reshape(-1, 2), seed=seed)


def pair_scores(probe: torch.Tensor, gallery: torch.Tensor, pairs: np.ndarray) -> torch.Tensor:
    """Cosine scores ``cos(probe[i], gallery[j])`` for each row ``(i, j)`` of ``pairs`` (float64)."""
    p = torch.nn.functional.normalize(probe.double(), dim=1)
    g = torch.nn.functional.normalize(gallery.double(), dim=1)
    idx = torch.from_numpy(np.asarray(pairs, dtype=np.int64))
    return (p[idx[:, 0]] * g[idx[:, 1]]).sum(1)


def verify(probe: torch.Tensor, gallery: torch.Tensor, pairs: Pairs, far: float = 0.01) -> dict[str, float]:
    """TAR at ``far`` and EER for probe-vs-gallery embeddings on the fixed pairs."""
    from facesr.eval.metrics import create_metric

    metric = create_metric("verification", far=far)
    return metric(pair_scores(probe, gallery, pairs.genuine), pair_scores(probe, gallery, pairs.impostor))


def labels_from_meta(meta: dict[str, Any], ids: Sequence[str]) -> list[str]:
    """Per-image identity labels, in ``ids`` order, from a benchmark's ``meta.json``.

    Accepts the layouts a benchmark may use: a list aligned with ``ids`` under ``identities`` /
    ``identity`` / ``labels``, or a mapping id -> label, or per-item records with an
    ``identity`` field under ``items`` / ``faces``.
    """
    for key in ("identities", "identity", "identity_labels", "labels"):
        val = meta.get(key)
        if isinstance(val, dict):
            try:
                return [str(val[i]) for i in ids]
            except KeyError as exc:
                raise DataError(f"benchmark meta.json: no identity label for face {exc.args[0]}") from None
        if isinstance(val, list) and len(val) == len(ids):
            return [str(v) for v in val]
    for key in ("items", "faces", "files"):
        val = meta.get(key)
        if isinstance(val, list) and len(val) == len(ids) and val and isinstance(val[0], dict):
            for field in ("identity", "identity_id", "label"):
                if field in val[0]:
                    return [str(v[field]) for v in val]
    raise DataError("benchmark meta.json has no identity labels (needed for verification)")
