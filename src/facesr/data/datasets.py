"""Training batches for masked-face SR, degraded on the fly on the training device.

Why not a ``DataLoader``: the whole prepared set is small (8,780 UTKFace faces at 128x128 are
431 MB as uint8), so it is held once as a uint8 tensor on the chosen device (the GPU when there
is one) and every step only indexes it. The degradation (random MaskTheFace mask, antialiased
bicubic down-sampling) and the prior targets (heatmaps, landmark-derived parsing) are computed
on that device inside the step, so there are no worker processes and no host->device copies.

Augmentation: horizontal flip with p = 0.5 (PROPOSAL, papers.md 1.6), which swaps the
left/right landmarks so that masks and priors follow the flipped face.

Determinism: one CPU ``torch.Generator`` seeded with ``seed`` drives the order, the flips and the
masks, so a seed gives the same batches on any device.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.data.masks import MaskSynthesizer
from facesr.data.prepared import PreparedSet
from facesr.data.priors import flip_landmarks, heatmaps, parsing_maps
from facesr.data.realistic import RealDegradation
from facesr.resample import downsample


class MaskedFaceBatcher:
    """Endless shuffled batches from a prepared set: ``next_batch()`` -> dict of float tensors in [0, 1].

    Keys: ``lr_masked`` [B,3,h,w] (the model input: masked with p ``p_mask``, then degraded by
    ``degradation``, by default clean bicubic), ``lr_clean`` [B,3,h,w], ``hr`` [B,3,128,128],
    ``hr_masked``, ``occlusion`` [B,1,128,128] (zero for the faces left unmasked), ``mask_region``
    [B,1,128,128] (the mask's coverage drawn for every face, worn or not), ``heatmaps``
    [B,68,64,64], ``parsing`` [B,11,64,64],
    plus ``landmarks`` [B,68,2] (128 frame) and ``index`` [B] (rows of the prepared set).
    """

    def __init__(
        self,
        prepared: PreparedSet | str | Path,
        split: str = "train",
        scale: int = 4,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        seed: int = 0,
        *,
        data: str | Path | None = None,
        flip: bool = True,
        shuffle: bool = True,
        p_mask: float = 1.0,
        masks: MaskSynthesizer | None = None,
        sigma: float = 1.0,
        degradation: RealDegradation | None = None,
    ) -> None:
        from facesr.paths import data_root

        if scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {scale}")
        if not isinstance(prepared, PreparedSet):
            prepared = PreparedSet.load(prepared)
        self.device = torch.device(device)
        self.rows = prepared.indices(split)
        if len(self.rows) == 0:
            raise ValueError(f"the {split!r} split of {prepared.root} is empty")
        faces = np.ascontiguousarray(prepared.faces128[self.rows])
        self.faces = torch.from_numpy(faces).to(self.device)  # uint8 [N,128,128,3]
        lms = np.ascontiguousarray(prepared.landmarks128[self.rows], dtype=np.float32)
        self.landmarks = torch.from_numpy(lms).to(self.device)
        self.scale = scale
        self.batch_size = batch_size
        self.flip = flip
        self.shuffle = shuffle
        self.p_mask = p_mask
        self.sigma = sigma
        self.degradation = degradation  # None: clean antialiased bicubic (the paper's and benchmarks' LR)
        self.masks = masks if masks is not None else MaskSynthesizer(data_root(data), device=self.device)
        self.masks.to(self.device)
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self.epoch = 0

    def state_dict(self) -> dict[str, Any]:
        """Where the batcher is in its epoch, and its generator: what a resumed run needs to draw the same
        batches (the training loop checkpoints it without knowing the batcher's fields)."""
        return {
            "generator": self.generator.get_state(),
            "order": self._order.clone(),
            "pos": int(self._pos),
            "epoch": int(self.epoch),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self._order, self._pos, self.epoch = state["order"].clone(), int(state["pos"]), int(state["epoch"])

    def __len__(self) -> int:
        return len(self.rows)

    def _next_indices(self) -> torch.Tensor:
        out = []
        need = self.batch_size
        while need > 0:
            if self._pos >= len(self._order):
                n = len(self.rows)
                self._order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
                self._pos = 0
                self.epoch += 1
            take = self._order[self._pos : self._pos + need]
            self._pos += len(take)
            need -= len(take)
            out.append(take)
        return torch.cat(out)

    @torch.no_grad()
    def make_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Degrade the faces at positions ``idx`` (into this split) with this batcher's generator."""
        idx_dev = idx.to(self.device)
        hr = self.faces[idx_dev].permute(0, 3, 1, 2).float().div_(255.0)
        lm = self.landmarks[idx_dev]
        if self.flip:
            flip = (torch.rand(len(idx), generator=self.generator) < 0.5).to(self.device)
            hr = torch.where(flip[:, None, None, None], hr.flip(-1), hr)
            lm = torch.where(flip[:, None, None], flip_landmarks(lm, hr.shape[-1]), lm)
        hr_masked, occ = self.masks(hr, lm, self.generator)
        region = occ  # where this face's mask is, or would be: kept for the unmasked faces too
        if self.p_mask < 1.0:
            keep = (torch.rand(len(idx), generator=self.generator) < self.p_mask).to(self.device)
            hr_masked = torch.where(keep[:, None, None, None], hr_masked, hr)
            occ = occ * keep[:, None, None, None]
        return {
            "hr": hr,
            "hr_masked": hr_masked,
            "occlusion": occ,
            "mask_region": region,
            "lr_masked": (
                downsample(hr_masked, self.scale)
                if self.degradation is None
                else self.degradation(hr_masked, self.scale, self.generator)
            ),
            "lr_clean": downsample(hr, self.scale),
            "heatmaps": heatmaps(lm, 64, self.sigma),
            "parsing": parsing_maps(lm, 64),
            "landmarks": lm,
            "index": torch.as_tensor(self.rows, device=self.device)[idx_dev],
        }

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next shuffled batch (a new permutation every epoch)."""
        return self.make_batch(self._next_indices())

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.next_batch()
