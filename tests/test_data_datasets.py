"""MaskedFaceBatcher: contract shapes and ranges, determinism, flips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_support import make_prepared


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("dlib")
    return make_prepared(tmp_path_factory.mktemp("ds"), n_test=1) / "utkface"


@pytest.mark.parametrize("scale", [4, 8])
def test_batch_contract(prepared: Path, shared_data: Path, scale: int) -> None:
    from facesr.data.datasets import MaskedFaceBatcher

    b = MaskedFaceBatcher(prepared, "train", scale, "cpu", 5, 0, data=shared_data)
    batch = b.next_batch()  # 3 train faces, batch of 5: wraps into the next epoch
    h = 128 // scale
    shapes = {
        "lr_masked": (5, 3, h, h),
        "lr_clean": (5, 3, h, h),
        "hr": (5, 3, 128, 128),
        "hr_masked": (5, 3, 128, 128),
        "occlusion": (5, 1, 128, 128),
        "mask_region": (5, 1, 128, 128),
        "heatmaps": (5, 68, 64, 64),
        "parsing": (5, 11, 64, 64),
    }
    for k, s in shapes.items():
        assert tuple(batch[k].shape) == s, k
        assert batch[k].dtype == torch.float32
        assert float(batch[k].min()) >= 0.0 and float(batch[k].max()) <= 1.0, k
    assert float(batch["occlusion"].mean()) > 0.1


def test_mask_region_is_drawn_for_unmasked_faces_too(prepared: Path, shared_data: Path) -> None:
    """With ``p_mask`` 0.5 some faces wear no mask (occlusion 0) but every face has its mask region, and it
    equals the occlusion wherever a mask is worn: the mask-region loss can reward keeping a real mouth."""
    from facesr.data.datasets import MaskedFaceBatcher

    b = MaskedFaceBatcher(prepared, "train", 4, "cpu", 16, 0, data=shared_data, p_mask=0.5)
    batch = b.next_batch()
    worn = batch["occlusion"].flatten(1).sum(1) > 0
    assert 0 < int(worn.sum()) < 16
    assert bool((batch["mask_region"].flatten(1).sum(1) > 0).all())
    assert torch.equal(batch["mask_region"][worn], batch["occlusion"][worn])
    assert torch.equal(batch["hr_masked"][~worn], batch["hr"][~worn])


def test_same_seed_same_batches(prepared: Path, shared_data: Path) -> None:
    from facesr.data.datasets import MaskedFaceBatcher

    a = MaskedFaceBatcher(prepared, "train", 4, "cpu", 2, 3, data=shared_data)
    b = MaskedFaceBatcher(prepared, "train", 4, "cpu", 2, 3, data=shared_data, masks=a.masks)
    for _ in range(2):
        ba, bb = a.next_batch(), b.next_batch()
        assert all(torch.equal(ba[k], bb[k]) for k in ba)


def test_flip_mirrors_face_and_landmarks(prepared: Path, shared_data: Path) -> None:
    from facesr.data.datasets import MaskedFaceBatcher

    b = MaskedFaceBatcher(prepared, "train", 4, "cpu", 3, 0, data=shared_data, shuffle=False, flip=False)
    plain = b.make_batch(torch.arange(3))
    b.flip = True
    seen_flip = False
    for _ in range(6):
        fb = b.make_batch(torch.arange(3))
        for i in range(3):
            if torch.equal(fb["hr"][i], plain["hr"][i].flip(-1)):
                seen_flip = True
                # left eye stays on the image left after the swap
                assert fb["landmarks"][i, 36:42, 0].mean() < fb["landmarks"][i, 42:48, 0].mean()
            else:
                assert torch.equal(fb["hr"][i], plain["hr"][i])
    assert seen_flip
