"""Mask synthesis on real aligned faces: lower face covered, eyes not, deterministic per seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.data.masks import MaskSynthesizer, face_anchors, homography, load_templates, yaw_ratio
from facesr.data.priors import flip_landmarks

FIX = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def faces() -> tuple[torch.Tensor, torch.Tensor]:
    """The four UTKFace fixtures aligned at 128 (image [4,3,128,128], landmarks [4,68,2])."""
    pytest.importorskip("dlib")
    from facesr.data.align import align_face
    from facesr.data.landmarks import detect_landmarks
    from facesr.io import read_image

    imgs, lms = [], []
    for p in sorted((FIX / "utk").glob("*.jpg")):
        im = read_image(p)
        a = align_face(im, detect_landmarks(im).landmarks, 128)
        imgs.append(a.image)
        lms.append(a.landmarks)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    return x, torch.from_numpy(np.stack(lms))


@pytest.fixture(scope="module")
def synth(shared_data: Path) -> MaskSynthesizer:
    return MaskSynthesizer(shared_data)


def _region_cover(occ: torch.Tensor, pts: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Mean coverage in small squares around ``pts [N,K,2]`` -> ``[N]``."""
    vals = []
    for i in range(len(occ)):
        v = []
        for x, y in pts[i].round().long().tolist():
            v.append(
                occ[i, 0, max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1].mean()
            )
        vals.append(torch.stack(v).mean())
    return torch.stack(vals)


def test_templates_parsed(shared_data: Path) -> None:
    tpls = load_templates(shared_data)
    assert len(tpls) == 21  # the 6 empty/inpaint sections and the commented N95_left are skipped
    assert {t.view for t in tpls} == {"front", "left", "right"}
    assert all(t.rgba.shape[2] == 4 and t.anchors.shape == (6, 2) for t in tpls)


def test_lower_face_covered_eyes_not(synth: MaskSynthesizer, faces) -> None:
    x, lm = faces
    for seed in range(6):  # many templates/colours/textures
        g = torch.Generator().manual_seed(seed)
        xr = x.repeat(4, 1, 1, 1)
        lmr = lm.repeat(4, 1, 1)
        masked, occ = synth(xr, lmr, g)
        assert masked.shape == xr.shape and occ.shape == (len(xr), 1, 128, 128)
        assert float(masked.min()) >= 0 and float(masked.max()) <= 1
        mouth = _region_cover(occ, lmr[:, [48, 51, 54, 57, 62, 66]])
        nose_tip = _region_cover(occ, lmr[:, [33]])
        eyes = _region_cover(occ, lmr[:, 36:48], radius=1)
        assert (mouth > 0.9).all(), mouth
        assert (nose_tip > 0.9).all(), nose_tip
        assert (eyes < 0.05).all(), eyes
        # Where the mask is, the pixels changed; elsewhere they did not.
        diff = (masked - xr).abs().amax(1, keepdim=True)
        assert float(diff[occ == 0].max()) < 1e-6


def test_deterministic_per_seed_and_varies_across_seeds(synth: MaskSynthesizer, faces) -> None:
    x, lm = faces
    a = synth(x, lm, torch.Generator().manual_seed(7))
    b = synth(x, lm, torch.Generator().manual_seed(7))
    c = synth(x, lm, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_side_templates_follow_yaw(synth: MaskSynthesizer, faces) -> None:
    _, lm = faces
    assert "gas_left" not in synth.names and "gas" in synth.names  # see masks.EXCLUDED_TEMPLATES
    turned = lm.clone()
    jaw_l, jaw_r = lm[:, 0, 0], lm[:, 16, 0]
    shift = jaw_l + 0.25 * (jaw_r - jaw_l) - lm[:, 30, 0]
    turned[:, 27:36, 0] += shift[:, None]  # nose towards image left: a face turned that way
    choice = synth.draw(turned, torch.Generator().manual_seed(0))
    assert (yaw_ratio(turned) < 0.38).all()
    assert all(synth.names[i].endswith("_left") for i in choice["template"].tolist())
    flipped = flip_landmarks(turned)
    choice = synth.draw(flipped, torch.Generator().manual_seed(0))
    assert all(synth.names[i].endswith("_right") for i in choice["template"].tolist())


def test_homography_maps_anchors(faces) -> None:
    _, lm = faces
    src = face_anchors(lm.double())
    dst = src * 1.7 + 3.0
    h = homography(src, dst)
    p = torch.cat([src, torch.ones_like(src[..., :1])], -1) @ h.transpose(1, 2)
    assert torch.allclose(p[..., :2] / p[..., 2:], dst, atol=1e-6)
