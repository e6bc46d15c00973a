"""Identity loss (papers.md 1.4).

[PAPER J1] the generator uses "identity information". [UNSTATED -> PROPOSAL] the form 1 - cos between
embeddings of the SR output and the HR ground truth, from a frozen face-recognition network. The only
network obtainable offline is dlib's face-recognition ResNet (face-api.js port, facesr.nets.face_id), so
that is the embedding (papers.md 5: the choice is forced; keep it pluggable: any ``embed`` works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_loss(emb_pred: torch.Tensor, emb_target: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cosine similarity between two ``[B, D]`` embedding batches."""
    return (1.0 - F.cosine_similarity(emb_pred, emb_target, dim=1)).mean()
