"""Verification pairs: fixed by seed, correct by construction, labels read from benchmark meta."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facesr.errors import DataError
from facesr.eval.verification import labels_from_meta, make_pairs, pair_scores, verify


def test_pairs_are_deterministic_and_correct() -> None:
    labels = [i % 7 for i in range(60)]
    a, b = (
        make_pairs(labels, seed=0, max_genuine=100, n_impostor=500),
        make_pairs(labels, seed=0, max_genuine=100, n_impostor=500),
    )
    assert np.array_equal(a.genuine, b.genuine) and np.array_equal(a.impostor, b.impostor)
    assert a.describe() == b.describe()
    c = make_pairs(labels, seed=1, max_genuine=100, n_impostor=500)
    assert not np.array_equal(a.impostor, c.impostor)
    lab = np.asarray(labels)
    assert len(a.genuine) == 100 and len(a.impostor) == 500
    assert (lab[a.genuine[:, 0]] == lab[a.genuine[:, 1]]).all()
    assert (lab[a.impostor[:, 0]] != lab[a.impostor[:, 1]]).all()
    assert (a.genuine[:, 0] < a.genuine[:, 1]).all() and (a.impostor[:, 0] < a.impostor[:, 1]).all()
    assert len({tuple(p) for p in a.impostor.tolist()}) == 500
    # without subsampling every same-identity pair is there: 7 groups of 8 or 9 faces
    full = make_pairs(labels, max_genuine=10**6, n_impostor=10)
    sizes = np.bincount(lab)
    assert len(full.genuine) == int((sizes * (sizes - 1) // 2).sum())


def test_impostors_capped_at_the_number_that_exists() -> None:
    p = make_pairs(["a", "a", "b", "c"], n_impostor=1000)
    assert len(p.genuine) == 1 and len(p.impostor) == 5  # 6 pairs, 1 genuine


def test_no_genuine_pairs_is_a_data_error() -> None:
    with pytest.raises(DataError, match="two or more faces"):
        make_pairs(["a", "b", "c"])


def test_perfect_embeddings_verify_perfectly() -> None:
    labels = [i % 5 for i in range(40)]
    centres = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
    emb = centres[torch.tensor(labels)] + 0.01 * torch.randn(40, 16)
    res = verify(emb, emb, make_pairs(labels, n_impostor=300))
    assert res["tar_at_far"] == 1.0 and res["eer"] == 0.0
    noise = torch.randn(40, 16)
    assert verify(noise, emb, make_pairs(labels, n_impostor=300))["eer"] > 0.1
    s = pair_scores(emb, emb, np.array([[0, 0]]))
    assert s.item() == pytest.approx(1.0)


def test_labels_from_meta_layouts() -> None:
    ids = ["00000", "00001"]
    assert labels_from_meta({"identities": [3, 4]}, ids) == ["3", "4"]
    assert labels_from_meta({"identity": {"00000": 7, "00001": 8}}, ids) == ["7", "8"]
    assert labels_from_meta({"items": [{"identity": 1}, {"identity": 2}]}, ids) == ["1", "2"]
    with pytest.raises(DataError, match="no identity labels"):
        labels_from_meta({"seed": 0}, ids)
