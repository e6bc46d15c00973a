"""Genuine-LR set: detection + cropping on real photos (MTCNN), and the build protocol itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facesr.data.genuine import GenuineConfig, GenuineSet, build_genuine, crop16, detect_photo, sharpness
from facesr.geometry import apply_affine, similarity_transform, template
from facesr.io import read_image, write_image

#: Real RWMFD photos with small faces (paths relative to the shared data folder).
SMALL_FACE_PHOTOS = ("rwmfd/0002/0032.jpg",)


class _Dets:
    def __init__(self, boxes: list[list[float]], scores: list[float], lms: list[np.ndarray]) -> None:
        self.boxes = np.array(boxes, np.float32).reshape(-1, 4)
        self.scores = np.array(scores, np.float32)
        self.landmarks = np.array(lms, np.float32).reshape(-1, 5, 2)


def _face_landmarks(x0: float, y0: float, side: float) -> np.ndarray:
    """Template landmarks placed in a ``side`` px box at (x0, y0)."""
    return template(128) * side / 128.0 + np.array([x0, y0])


def _fake_detector(image: np.ndarray) -> _Dets:
    """Every photo has: a 24 px face (kept), a 48 px face (train only), a 6 px face (too small),
    a low-score face and a 120 px face (larger than train_max_size)."""
    faces = [(10, 10, 24, 0.99), (60, 10, 48, 0.99), (10, 80, 6, 0.99), (40, 80, 24, 0.5), (0, 0, 120, 0.99)]
    boxes = [[x, y, x + s, y + s] for x, y, s, _ in faces]
    return _Dets(boxes, [f[3] for f in faces], [_face_landmarks(x, y, s) for x, y, s, _ in faces])


@pytest.fixture
def photo_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for src, n in (("rwmfd", 4), ("web_unmasked", 2)):
        (tmp_path / src).mkdir()
        for i in range(n):
            write_image(tmp_path / src / f"{i}.png", rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    shutil.copy(tmp_path / "rwmfd" / "0.png", tmp_path / "rwmfd" / "dup.png")  # byte-identical duplicate
    (tmp_path / "web_unmasked" / "broken.jpg").write_bytes(b"not an image")
    return tmp_path


def test_build_protocol_counts_reasons_and_split(photo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = GenuineConfig(max_size=32, train_max_size=64, min_size=8, min_sharpness=0.0, test_fraction=0.5)
    rep = build_genuine(photo_root, out, cfg, detector=_fake_detector, progress=False)
    photos_ok = 4 + 2  # the duplicate is skipped, the broken file reported
    assert rep["photos_duplicate_skipped"] == 1
    assert [u["path"] for u in rep["photos_unreadable"]] == ["web_unmasked/broken.jpg"]
    assert rep["faces_kept"] == 2 * photos_ok
    assert rep["per_source"]["rwmfd"]["rejected"] == {"too small": 4, "low score": 4}
    assert rep["per_source"]["web_unmasked"]["excluded_larger_than_train_max_size"] == 2
    gset = GenuineSet.load(out)
    assert gset.lr.shape == (2 * photos_ok, 16, 16, 3) and gset.lr.dtype == np.uint8
    test = [gset.meta[i] for i in gset.indices("test")]
    assert test and all(m["native_size"] <= 32 for m in test)  # 48 px faces are train only
    assert (
        len(
            {m["path"] for m in test}
            & {gset.meta[i]["path"] for i in gset.indices("train") if gset.meta[i]["native_size"] <= 32}
        )
        == 0
    )  # split by photo
    assert rep["per_source"]["rwmfd"]["size_histogram_kept"]["24-32"] == 4
    again = build_genuine(photo_root, tmp_path / "again", cfg, detector=_fake_detector, progress=False)
    assert json.dumps(again["per_source"]) == json.dumps(rep["per_source"])  # seeded, deterministic
    assert (out / "split.npy").read_bytes() == (tmp_path / "again" / "split.npy").read_bytes()


def test_blurred_faces_are_rejected(photo_root: Path, tmp_path: Path) -> None:
    flat = np.full((128, 128, 3), 128, np.uint8)
    for p in (photo_root / "rwmfd").glob("*.png"):
        write_image(p, flat)
    cfg = GenuineConfig(min_sharpness=1.0, sources=["rwmfd"])
    rep = build_genuine(photo_root, tmp_path / "out", cfg, detector=_fake_detector, progress=False)
    assert rep["faces_kept"] == 0
    assert rep["per_source"]["rwmfd"]["rejected"]["too blurred"] > 0


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    from facesr.errors import DataError

    with pytest.raises(DataError, match="not found"):
        build_genuine(tmp_path, tmp_path / "out", GenuineConfig(), detector=_fake_detector, progress=False)


def test_sharpness_of_flat_and_textured() -> None:
    assert sharpness(np.full((16, 16, 3), 90, np.uint8)) == 0.0
    rng = np.random.default_rng(0)
    assert sharpness(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) > 20


@pytest.mark.slow
@pytest.mark.parametrize("rel", SMALL_FACE_PHOTOS)
def test_mtcnn_crops_small_faces_on_real_photos(shared_data: Path, rel: str) -> None:
    from facesr.data.genuine import default_detector

    image = read_image(shared_data / rel)
    before = image.copy()
    cfg = GenuineConfig()
    faces, crops = detect_photo(image, "rwmfd", rel, default_detector(cfg), cfg)
    assert np.array_equal(image, before)  # input untouched
    kept = [(f, c) for f, c in zip(faces, crops, strict=True) if f.status == "kept"]
    assert kept, f"no small face kept in {rel}: {[(f.native_size, f.reason) for f in faces]}"
    for f, c in kept:
        assert c.shape == (16, 16, 3) and c.dtype == np.uint8
        assert cfg.min_size <= f.native_size <= cfg.train_max_size and f.score >= cfg.min_score
        assert f.sharpness >= cfg.min_sharpness


def test_crop16_puts_landmarks_on_the_template() -> None:
    """A synthetic photo whose 5 points are known: the crop's similarity maps them onto template(16)."""
    lm = _face_landmarks(30.0, 40.0, 40.0)
    image = np.zeros((120, 120, 3), np.uint8)
    for x, y in lm.round().astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    crop, outside = crop16(image, lm)
    m = similarity_transform(lm, template(16))
    assert np.abs(apply_affine(m, lm) - template(16)).max() < 1e-6
    assert outside == 0.0 and crop.shape == (16, 16, 3) and crop.max() > 0


def test_summary_markdown_lists_every_source(photo_root: Path, tmp_path: Path) -> None:
    from facesr.data.genuine import summary_markdown

    cfg = GenuineConfig(min_sharpness=0.0)
    rep = build_genuine(photo_root, tmp_path / "out", cfg, detector=_fake_detector, progress=False)
    md = summary_markdown(rep)
    assert "| rwmfd | 20 | 8 |" in md and "| web_unmasked |" in md and "too small: 4" in md


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facesr.cli import main

    assert main(["genuine", "build", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert main(["genuine", "eval", "--method", "no-equals-sign"]) == 2
    assert main(["genuine", "summary", "--genuine", str(tmp_path)]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x]
    assert len(lines) == 3 and all(x.startswith("facesr: error:") for x in lines)
