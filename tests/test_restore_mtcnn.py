"""MTCNN port: NMS, batched crops, converted weights, and detection on a real crowd photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.restoration.mtcnn import WEIGHTS, _crops, _integral, load_mtcnn, nms


def _nms_reference(boxes: np.ndarray, scores: np.ndarray, thr: float, mode: str) -> list[int]:
    """Plain loop NMS (the facenet-pytorch numpy version, inclusive-pixel areas)."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            iw = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]) + 1)
            ih = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]) + 1)
            inter = iw * ih
            o = inter / (min(area[i], area[j]) if mode == "min" else area[i] + area[j] - inter)
            if o <= thr:
                rest.append(j)
        order = rest
    return keep


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_matches_loop_reference(mode: str) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.permutation(300).astype(np.float64) / 300  # distinct scores: a unique order
    got = nms(torch.tensor(boxes), torch.tensor(scores), 0.5, mode).tolist()
    assert got == _nms_reference(boxes, scores, 0.5, mode)
    assert 0 < len(got) < 300


def test_batched_crops_equal_area_interpolation() -> None:
    img = torch.rand(1, 3, 50, 70) * 255
    boxes = torch.tensor([[1.0, 1, 30, 30], [-5, -3, 20, 25], [40, 30, 80, 60], [10.7, 12.2, 13.9, 14.5]])
    got = _crops(_integral(img), boxes, 24)
    pad = F.pad(img, (20, 20, 20, 20))  # zeros outside the image, as the detector assumes
    for k, (x1, y1, x2, y2) in enumerate(boxes.trunc().long().tolist()):
        crop = pad[:, :, y1 - 1 + 20 : y2 + 20, x1 - 1 + 20 : x2 + 20]
        ref = F.interpolate(crop, size=(24, 24), mode="area")[0]
        torch.testing.assert_close(got[k], ref, atol=1e-3, rtol=0)


def test_integer_summed_area_table_equals_the_float64_one() -> None:
    """The detector's uint8 photo gets an int32 table: the same sums, exactly, in half the time."""
    img = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (1, 3, 61, 83), dtype=np.uint8))
    exact = _integral(img)
    assert exact.dtype == torch.int32
    assert torch.equal(exact.double(), _integral(img.float()))
    boxes = torch.tensor([[1.0, 1, 30, 30], [-5, -3, 20, 25], [40, 30, 90, 70]])
    torch.testing.assert_close(_crops(exact, boxes, 24), _crops(_integral(img.float()), boxes, 24))


def test_weights_file_is_safetensors_with_all_three_nets() -> None:
    from safetensors import safe_open

    with safe_open(str(WEIGHTS), framework="pt") as fh:
        keys = list(fh.keys())
    from facesr.restoration.mtcnn import MTCNN

    assert sorted(keys) == sorted(MTCNN().state_dict())


def test_no_face_in_flat_image() -> None:
    assert len(load_mtcnn().detect(np.full((120, 160, 3), 128, np.uint8))) == 0


def test_detection_count_on_real_crowd_photo(shared_data) -> None:
    """rwmfd/0002/0003.jpg (256x131): a commuter crowd, nearly everyone in a white surgical mask.

    Counted by eye on a 5x enlargement: about 25 faces show both eyes, 14 of them clearly
    (frontal, unoccluded eyes, 10-25 px across); the rest are cut by the frame, turned away or
    hidden behind other heads. MTCNN (min face 10 px) finds 14, all of them real faces.
    """
    from facesr.io import read_image

    img = read_image(shared_data / "rwmfd" / "0002" / "0003.jpg")
    det = load_mtcnn().detect(img, min_size=10)
    assert 10 <= len(det) <= 22
    assert (det.scores > 0.7).all()
    # every landmark set is a plausible face: eyes above the mouth, eye distance 4-20 px.
    eye = np.linalg.norm(det.landmarks[:, 1] - det.landmarks[:, 0], axis=1)
    assert ((eye > 4) & (eye < 20)).all()
    assert (det.landmarks[:, :2, 1].mean(1) < det.landmarks[:, 3:, 1].mean(1)).all()


def test_parity_with_facenet_pytorch_on_the_samples() -> None:
    """Same faces and landmarks as facenet-pytorch's own detect_face with the same weights.

    The fixture is written by ``scripts/mtcnn_reference_fixture.py`` (facenet-pytorch 2.6.0 run
    from its wheel). Ours zero-pads candidate crops that cross the image border where the reference
    clips and stretches them, so faces at the border can differ (1-3 per sample photo); all
    others match to within 0.1 px.
    """
    import json
    from pathlib import Path

    from facesr.io import read_image

    root = Path(__file__).resolve().parents[1]
    ref = json.loads((root / "tests" / "fixtures" / "restore" / "mtcnn_reference.json").read_text())
    det = load_mtcnn()
    matched = total = 0
    for name, want in ref["images"].items():
        got = det.detect(read_image(root / "src" / "facesr" / "samples" / name), min_size=ref["min_size"])
        lm_ref = np.asarray(want["landmarks"])
        assert abs(len(got) - len(lm_ref)) <= 2, name
        err = np.abs(lm_ref[:, None] - got.landmarks[None]).max(axis=(2, 3)).min(1)  # per reference face
        matched += int((err < 0.1).sum())
        total += len(lm_ref)
    assert matched >= 0.85 * total, (matched, total)


@pytest.mark.parametrize("shape", [(1, 10, 264, 301), (1, 10, 13, 14), (2, 4, 12, 12), (1, 3, 1, 5)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_pairwise_max_pool_equals_the_pooling_module(shape: tuple[int, ...], channels_last: bool) -> None:
    """PNet's pooling as two pairwise maxima: the values of ``MaxPool2d(2, 2, ceil_mode=True)``,
    odd last rows and columns included, in the input's memory format."""
    from facesr.restoration.mtcnn import max_pool_2x2

    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = max_pool_2x2(x)
    assert torch.equal(got, torch.nn.MaxPool2d(2, 2, ceil_mode=True)(x))
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("size", [(17, 23), (30, 41), (61, 83), (74, 99), (12, 12)])
def test_pyramid_level_from_the_table_equals_area_interpolation(size: tuple[int, int]) -> None:
    """Small pyramid levels cut from the int32 summed-area table are bit-identical to
    ``F.interpolate(mode="area")`` of the uint8 photo (sums exact, the same two divisions)."""
    from facesr.restoration.mtcnn import _area_resize

    img = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (1, 3, 61, 83), dtype=np.uint8))
    want = F.interpolate(img.float(), size=size, mode="area")
    assert torch.equal(_area_resize(_integral(img), *size), want)


def test_fast_detector_gives_the_reference_detections() -> None:
    """Regression for the 2026-12-07 speed work (docs/restore.md, Timings): on the four bundled
    photos stacked and padded (several PNet strips, small levels from the table), the detector
    finds what the detector before it found (revision eee947b; the fixture is written by
    ``python benchmarks/bench_detect.py --write-fixture tests/fixtures/restore/mtcnn_fast_path.json``).
    Identical on the machine that wrote it; the tolerance allows another CPU's float rounding."""
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_detect", root / "benchmarks" / "bench_detect.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ref = json.loads((root / "tests" / "fixtures" / "restore" / "mtcnn_fast_path.json").read_text())
    det = load_mtcnn().detect(bench.fixture_image(), min_size=ref["min_size"])
    assert len(det) == len(ref["scores"]) > 20
    np.testing.assert_allclose(det.boxes, np.asarray(ref["boxes"]), atol=1e-3, rtol=0)
    np.testing.assert_allclose(det.scores, np.asarray(ref["scores"]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(det.landmarks, np.asarray(ref["landmarks"]), atol=1e-3, rtol=0)
