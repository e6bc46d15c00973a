"""Issue 16: upscaled output, faces from their own pixels, every photo written, do no harm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from facesr.cli import main
from facesr.geometry import template
from facesr.io import read_image, write_image

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples" / "rwmfd_0002_0078.jpg"


@pytest.fixture(scope="module")
def crowd() -> np.ndarray:
    """A 270x160 part of a sample photo with several small masked faces (frames ~20-30 px)."""
    return read_image(SAMPLE)[40:200, 0:270].copy()


@pytest.fixture(scope="module")
def one_face() -> np.ndarray:
    """One face of the sample with some context, 48x48 px."""
    return read_image(SAMPLE)[81:129, 62:110].copy()


def test_output_is_upscale_times_larger_and_faces_are_restored(crowd: np.ndarray) -> None:
    from facesr.restoration.api import restore

    h, w = crowd.shape[:2]
    n_restored = set()
    for n in (1, 2, 4, 8):
        res = restore(crowd, model="bicubic", device="cpu", upscale=n)
        assert res.image.shape == (h * n, w * n, 3) and res.upscale == n
        n_restored.add(len(res.restored))
    assert len(n_restored) == 1 and n_restored.pop() >= 3  # the same faces at every scale
    with pytest.raises(Exception, match="upscale must be one of"):
        restore(crowd, model="bicubic", device="cpu", upscale=3)


def test_default_upscale_is_two_and_output_limit_lowers_it(crowd: np.ndarray) -> None:
    from facesr.restoration.api import DEFAULT_UPSCALE, restore

    h, w = crowd.shape[:2]
    assert restore(crowd, model="bicubic", device="cpu").image.shape[:2] == (
        h * DEFAULT_UPSCALE,
        w * DEFAULT_UPSCALE,
    )
    res = restore(crowd, model="bicubic", device="cpu", upscale=8, max_output_pixels=h * w * 16)
    assert res.upscale == 4 and res.image.shape[:2] == (h * 4, w * 4)
    assert any("upscale lowered from 8 to 4" in n for n in res.notes)


def test_each_face_gets_the_input_closest_to_its_size(crowd: np.ndarray) -> None:
    from facesr.restoration.api import restore
    from facesr.restoration.pipeline import choose_lr_size

    res = restore(crowd, model="bicubic", device="cpu", upscale=1)
    for f in res.restored:
        assert 128 // f.scale == choose_lr_size(f.native, [16, 32])
        assert 128 // f.scale <= f.native * 1.1 or f.scale == 8


def test_photo_with_only_large_faces_is_written_with_faces_kept(one_face: np.ndarray, tmp_path: Path) -> None:
    big = np.asarray(Image.fromarray(one_face).resize((288, 288), Image.Resampling.BICUBIC))
    src = tmp_path / "big.png"
    write_image(src, big)
    out = tmp_path / "out"
    rc = main(
        ["restore", str(src), "-o", str(out), "--model", "bicubic", "--device", "cpu", "--upscale", "2"]
    )
    assert rc == 0
    assert read_image(out / "big.png").shape == (576, 576, 3)
    rep = json.loads((out / "report.json").read_text())
    faces = rep["files"][0]["faces"]
    assert rep["files"][0]["status"] == "ok"
    kept = [f for f in faces if f["status"] == "kept"]
    assert kept and all("too large for every model" in f["reason"] for f in kept)
    assert not [f for f in faces if f["status"] == "restored"] and rep["counts"]["faces_kept"] == len(kept)


def test_gray_photo_stays_gray(crowd: np.ndarray) -> None:
    from facesr.restoration.api import restore

    gray = np.repeat(np.asarray(Image.fromarray(crowd).convert("L"))[..., None], 3, axis=2)
    res = restore(gray, model="bicubic", device="cpu", upscale=2)
    assert res.restored
    assert np.array_equal(res.image[..., 0], res.image[..., 1]) and np.array_equal(
        res.image[..., 1], res.image[..., 2]
    )


class _Painter(nn.Module):
    """A 'restorer' that enlarges its input bicubically, then gives it a colour cast (``gain``,
    ``offset`` per channel) and paints the lower face of its 128 px frame ``paint`` (peach: what
    made gray photos' faces peach-coloured before issue 16)."""

    scale, lr_size, hr_size, name = 4, 32, 128, "painter"

    def __init__(self, gain=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0), paint=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.gain, self.offset, self.paint = torch.tensor(gain), torch.tensor(offset), paint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from facesr.restoration.mask import lower_face_box

        up = nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        out = (up * self.gain.view(1, 3, 1, 1) + self.offset.view(1, 3, 1, 1)).clamp(0, 1)
        if self.paint is not None:
            y0, y1, x0, x1 = (4 * v for v in lower_face_box(32))
            out[:, :, y0:y1, x0:x1] = torch.tensor(self.paint).view(1, 3, 1, 1)
        return out


def _use_only(monkeypatch, net: nn.Module) -> None:  # type: ignore[no-untyped-def]
    """Every face goes to ``net``; no mask model (the lower face is then left out of the do-no-harm check)."""
    import facesr.restoration.api as api

    monkeypatch.setattr(api.ModelPicker, "candidates", lambda self: {32: (net.name, 4)})
    monkeypatch.setattr(api.ModelPicker, "get", lambda self, name, scale: net)
    monkeypatch.setattr(api, "mask_model", lambda device: None)


def test_a_gray_photo_stays_gray_when_the_restorer_paints_colour(monkeypatch, crowd: np.ndarray) -> None:
    """Issue 16 item 4 with a restorer that does paint colour (bicubic alone keeps gray gray, so
    :func:`test_gray_photo_stays_gray` cannot fail for this reason): the colour photo gets the
    peach lower faces, the gray one stays exactly gray, photo and ``--aligned`` crop alike."""
    import facesr.restoration.api as api

    _use_only(monkeypatch, _Painter(paint=(0.93, 0.72, 0.60)))
    gray = np.repeat(np.asarray(Image.fromarray(crowd).convert("L"))[..., None], 3, axis=2)
    colour = api.restore(crowd, device="cpu", upscale=2, engine="torch")
    assert colour.restored and np.abs(colour.image[..., 0].astype(int) - colour.image[..., 2]).max() > 60
    res = api.restore(gray, device="cpu", upscale=2, engine="torch")
    assert res.restored  # (MTCNN finds fewer of these faces in gray: 4 of 11)
    assert np.array_equal(res.image[..., 0], res.image[..., 1]) and np.array_equal(
        res.image[..., 1], res.image[..., 2]
    )
    crop = np.ascontiguousarray(gray[60:92, 60:92])
    out = api.restore(crop, device="cpu", aligned=True, engine="torch").image
    assert out.shape == (128, 128, 3) and np.array_equal(out[..., 0], out[..., 2])


def test_restored_faces_keep_the_inputs_colours(monkeypatch, crowd: np.ndarray) -> None:
    """Issue 16 item 4: a restorer with a colour cast (R x1.15, B x0.85) is colour-matched to the
    input, so the pasted faces are what a cast-free restorer gives (within 2 levels on average);
    without the colour match they would be off by far more. Photo and ``--aligned`` crop alike."""
    import facesr.restoration.api as api

    cast = _Painter(gain=(1.15, 1.0, 0.85), offset=(0.03, 0.0, -0.02))
    crop = np.ascontiguousarray(crowd[60:92, 60:92])

    def run(net: nn.Module) -> tuple[np.ndarray, np.ndarray, int]:
        _use_only(monkeypatch, net)
        res = api.restore(crowd, device="cpu", upscale=2, engine="torch")
        aligned = api.restore(crop, device="cpu", aligned=True, engine="torch").image
        return res.image.astype(float), aligned.astype(float), len(res.restored)

    plain, plain_aligned, n = run(_Painter())
    out, out_aligned, n_cast = run(cast)
    with monkeypatch.context() as m:  # the check can fail: the same cast without the colour match
        m.setattr(api, "colour_match", lambda sr, lr: sr)
        out_raw, aligned_raw, _ = run(cast)
    faces = np.abs(out_raw - plain).max(2) > 0  # where the faces were pasted
    assert n >= 3 and n_cast == n and faces.mean() > 0.05
    assert np.abs(out - plain)[faces].mean() < 2.0 < 6.0 < np.abs(out_raw - plain)[faces].mean()
    assert np.abs(out_aligned - plain_aligned).mean() < 2.0 < 6.0 < np.abs(aligned_raw - plain_aligned).mean()


def test_a_restoration_that_paints_the_lower_face_brighter_is_not_pasted(
    monkeypatch, crowd: np.ndarray
) -> None:
    """The pink patch on the hair of heads seen from above (docs/img/restore_before_after.jpg): the
    models paint skin wherever their denoiser sees a mask, and the mask box is left out of the
    disagreement. A restorer that paints the lower face white brightens every face's lower face
    that was darker: those are kept with the reason; painting it dark (as removing a light mask
    darkens it) is not stopped by this rule."""
    import facesr.restoration.api as api

    _use_only(monkeypatch, _Painter(paint=(1.0, 1.0, 1.0)))
    res = api.restore(crowd, device="cpu", upscale=1, engine="torch")
    tried = [f for f in res.faces if f.brightening is not None]
    by_rule = [f for f in tried if f.reason.startswith("restoration paints the lower face brighter")]
    assert len(by_rule) >= 3 and all(f.status == "kept" for f in by_rule)
    assert all(f.brightening > api.MAX_LOWER_BRIGHTENING for f in by_rule)
    assert all(f.brightening <= api.MAX_LOWER_BRIGHTENING for f in res.restored)
    assert all(f.to_json()["lower_brightening"] == round(f.brightening, 4) for f in tried)
    _use_only(monkeypatch, _Painter(paint=(0.05, 0.05, 0.05)))
    dark = api.restore(crowd, device="cpu", upscale=1, engine="torch")
    assert dark.restored and not [f for f in dark.faces if "brighter" in f.reason]


def test_the_mask_threshold_belongs_to_the_installed_mask_model() -> None:
    """mask.THRESHOLD is a score of one set of weights: retraining moves the score's scale (the
    0.0117 of the session-3 jdsr-fast-x4 called every face of a crowd masked under session 4)."""
    from facesr.checksums import sha256_file
    from facesr.restoration import mask
    from facesr.restoration.api import model_installed
    from facesr.zoo import get_entry

    if not model_installed("jdsr-fast-x4"):
        pytest.skip("jdsr-fast-x4 is not installed")
    assert sha256_file(get_entry("jdsr-fast-x4").path) == mask.THRESHOLD_WEIGHTS, (
        "jdsr-fast-x4 changed: re-measure facesr.restoration.mask.THRESHOLD with "
        "`python benchmarks/mask_detect.py --per-class 150 --json-out results/restore/mask_detect.json`, "
        "then set THRESHOLD and THRESHOLD_WEIGHTS (and re-run benchmarks/restore_checks.py and restore_harm.py)"
    )


def test_tight_crop_is_found(one_face: np.ndarray) -> None:
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import detect_faces

    tight = np.asarray(Image.fromarray(one_face[10:40, 9:39]).resize((96, 96), Image.Resampling.BICUBIC))
    det = _cached_detector("cpu")
    found = detect_faces(tight, det)
    assert len(found) >= 1 and found[0].status == "ok"
    assert (
        found[0].landmarks[:, 0].min() >= 0 and found[0].landmarks[:, 0].max() <= 96
    )  # back in crop coordinates


class _StubDetector:
    """Reports one confident 'face' whose 5 points are no face's (eyes below the mouth)."""

    def detect(self, image: np.ndarray, min_size: float | None = None, factor: float | None = None):
        from facesr.restoration.mtcnn import Detections

        pad = (image.shape[0] - 160) // 2  # detect_faces pads the 160 px photo before detecting
        lm = template(128)[[3, 4, 2, 0, 1]] * 0.5 + [40 + pad, 30 + pad]
        return Detections(
            np.array([[40 + pad, 30 + pad, 104 + pad, 94 + pad]], np.float32),
            np.array([0.99], np.float32),
            lm[None].astype(np.float32),
        )


def test_a_detection_that_is_not_a_face_is_not_painted(monkeypatch) -> None:
    import facesr.restoration.api as api
    from facesr.restoration.background import resize

    monkeypatch.setattr(api, "_cached_detector", lambda device: _StubDetector())
    photo = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    res = api.restore(photo, model="bicubic", device="cpu", upscale=2)
    assert res.faces[0].status == "skipped" and res.faces[0].reason.startswith("not a frontal face")
    assert np.array_equal(res.image, resize(photo, 320, 320))


class _CutFaceDetector:
    """One confident, frontal face whose box and template frame hang over the photo's left edge."""

    def __init__(self, left: float) -> None:
        self.left = left  # x of the box's left edge in the photo (negative: cut by the border)

    def detect(self, image: np.ndarray, min_size: float | None = None, factor: float | None = None):
        from facesr.restoration.mtcnn import Detections

        pad = (image.shape[0] - 160) // 2  # detect_faces pads the photo before detecting
        lm = template(128) * 0.5 + [self.left + pad, 30 + pad]
        box = np.array([[self.left + pad, 30 + pad, self.left + pad + 64, 30 + pad + 64]], np.float32)
        return Detections(box, np.array([0.99], np.float32), lm[None].astype(np.float32))


@pytest.mark.parametrize("left", [-32.0, -40.0])
def test_a_face_cut_by_the_photo_border_is_skipped_not_smeared(monkeypatch, left: float) -> None:
    import facesr.restoration.api as api
    from facesr.restoration.background import resize

    monkeypatch.setattr(api, "_cached_detector", lambda device: _CutFaceDetector(left))
    photo = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    res = api.restore(photo, model="bicubic", device="cpu", upscale=2)
    face = res.faces[0]
    assert face.status == "skipped" and face.reason.startswith("cut by the photo border"), face.reason
    assert face.face.extra["outside"] >= 0.5
    assert np.array_equal(res.image, resize(photo, 320, 320))  # nothing painted


def test_a_whole_face_at_the_border_is_not_called_cut() -> None:
    from facesr.restoration.detect import DetectOptions, outside_share

    assert outside_share([0, 0, 64, 64], (160, 160)) == 0.0
    assert abs(outside_share([-32, 0, 32, 64], (160, 160)) - 0.5) < 1e-9
    assert outside_share([-8, 10, 56, 74], (160, 160)) <= DetectOptions().max_outside  # a tight crop's box


def test_a_real_face_cut_by_the_photo_border_is_skipped(shared_data: Path) -> None:
    """A real masked face (rwmfd 0001/0112, reduced to a 45 px box) with its chin cut off by the bottom edge.

    With 38 % of its box outside, MTCNN still finds it (on the padded copy) and it is skipped; cut
    by 18 % it is a face with a little chin missing and is not called cut.
    """
    from facesr.restoration.api import _cached_detector
    from facesr.restoration.detect import detect_faces

    img = np.asarray(
        Image.open(shared_data / "rwmfd" / "0001" / "0112.jpg")
        .convert("RGB")
        .resize((128, 128), Image.Resampling.BOX)
    )
    det = _cached_detector("cpu")
    cut = [f for f in detect_faces(img[:66].copy(), det) if f.box[3] > 60]
    assert cut and all(f.status == "skipped" and f.reason.startswith("cut by the photo border") for f in cut)
    less = [f for f in detect_faces(img[:78].copy(), det) if f.box[3] > 70]
    assert less and all(not f.reason.startswith("cut by") for f in less)


class _Inverter(nn.Module):
    """A 'restorer' whose output disagrees with its input everywhere (colours inverted)."""

    scale = 4
    lr_size = 32
    name = "inverter"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)


def test_a_restoration_that_disagrees_with_its_input_is_not_pasted(monkeypatch, crowd: np.ndarray) -> None:
    import facesr.restoration.api as api

    inv = _Inverter()
    monkeypatch.setattr(api.ModelPicker, "candidates", lambda self: {32: ("inverter", 4)})
    monkeypatch.setattr(api.ModelPicker, "get", lambda self, name, scale: inv)
    res = api.restore(crowd, device="cpu", upscale=1, engine="torch")
    tried = [f for f in res.faces if f.model == "inverter"]
    assert tried and all(f.status == "kept" and "disagrees with its input" in f.reason for f in tried)
    assert not res.restored and np.array_equal(res.image, crowd)  # nothing pasted
    monkeypatch.undo()
    assert api.restore(crowd, model="bicubic", device="cpu", upscale=1).restored  # a faithful one passes


class _UpNet(nn.Module):
    """x4 nearest upsampling then a random 3x3 conv: receptive field 1 input px."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(nn.functional.interpolate(x, scale_factor=4, mode="nearest")))


def test_tiled_background_network_equals_the_whole_image_run() -> None:
    from facesr.restoration.background import BackgroundUpsampler, network_factor

    net = _UpNet().eval()
    img = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    assert network_factor(net) == 4
    whole = BackgroundUpsampler(name="t", net=net, factor=4, tile=1000)(img, 4)
    tiled = BackgroundUpsampler(name="t", net=net, factor=4, tile=32, overlap=4)(img, 4)
    assert whole.shape == (280, 360, 3) and np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    assert BackgroundUpsampler(name="t", net=net, factor=4, tile=32)(img, 2).shape == (140, 180, 3)


def test_a_face_restorer_is_refused_as_background_upsampler() -> None:
    from facesr.restoration.background import network_factor
    from facesr.zoo import Bicubic

    class FixedFrame(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, size=(128, 128))

    assert network_factor(Bicubic(2)) == 2
    with pytest.raises(ValueError, match="not an integer upscale"):
        network_factor(FixedFrame())


def test_mask_score_reads_the_lower_face() -> None:
    from facesr.restoration.mask import lower_face_box, mask_scores

    noise = torch.full((2, 3, 32, 32), 0.05)
    y0, y1, x0, x1 = lower_face_box(32)
    noise[0, :, y0:y1, x0:x1] = 0.5  # a mask's worth of noise in the lower face
    s = mask_scores(noise)
    assert s[0] > 10 and abs(float(s[1]) - 1.0) < 1e-5


def test_face_score_is_the_denoisers_change_to_the_lower_face() -> None:
    from types import SimpleNamespace

    from facesr.restoration.mask import face_scores, lower_face_box

    y0, y1, x0, x1 = lower_face_box(32)

    class Denoiser(torch.nn.Module):  # paints the lower face of the first face only, by 10 levels
        def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = lr.clone()
            out[0, :, y0:y1, x0:x1] += 10 / 255
            return torch.zeros_like(lr), out

    restorer = SimpleNamespace(net=SimpleNamespace(denoiser=Denoiser()))
    s = face_scores(restorer, torch.rand(2, 3, 32, 32) * 0.5)
    assert abs(float(s[0]) - 100.0) < 1e-2 and float(s[1]) == 0.0  # 10 levels, squared


def test_aligned_checks_size_and_framing(one_face: np.ndarray) -> None:
    from facesr.restoration.api import restore
    from facesr.restoration.background import resize

    big = np.random.default_rng(4).integers(
        0, 256, (200, 200, 3), dtype=np.uint8
    )  # no face: framing unchecked
    res = restore(big, model="bicubic", device="cpu", aligned=True)
    assert res.faces[0].status == "kept" and "larger than every model input" in res.faces[0].reason
    assert np.array_equal(res.image, big) and any("framing not checked" in n for n in res.notes)
    res = restore(big, model="bicubic", device="cpu", aligned=True, upscale=2)  # kept, enlarged, not shrunk
    assert (
        res.faces[0].status == "kept"
        and res.upscale == 2
        and np.array_equal(res.image, resize(big, 400, 400))
    )
    wide = np.zeros((40, 80, 3), np.uint8)
    res = restore(wide, model="bicubic", device="cpu", aligned=True, upscale=1)
    assert res.notes and "restored as a photo" in res.notes[0] and res.image.shape == (40, 80, 3)


def test_aligned_real_crop_is_checked_for_framing(shared_data: Path) -> None:
    """Issue 16 item 6 on a real face (web_unmasked/406.jpg): aligned to the template at 80 px it is
    restored whole (the 128 px frame; x2: 160 px); the same face framed 12 % of the frame off
    centre is found not template-framed and restored as a photo instead, with a note saying so.
    (On 69 real template-aligned crops the framing error is 0.11 at the median, 6 over 0.2; 64 of
    65 such shifted crops are over it: docs/restore.md, "--aligned".)"""
    from facesr.restoration.api import MAX_ALIGNED_ERROR, _cached_detector, restore
    from facesr.restoration.detect import detect_faces
    from facesr.restoration.pipeline import align_face, native_frame, to_tensor

    img = read_image(shared_data / "web_unmasked" / "406.jpg")
    face = max(
        (f for f in detect_faces(img, _cached_detector("cpu")) if f.status == "ok"), key=lambda f: f.score
    )

    def crop(lm: np.ndarray) -> np.ndarray:
        x = align_face(to_tensor(img), lm, 80)[0].permute(1, 2, 0).numpy()
        return (x * 255).round().astype(np.uint8)

    aligned = crop(face.landmarks)
    res = restore(aligned, model="bicubic", device="cpu", aligned=True)
    err = res.faces[0].face.extra["framing_error"]
    assert (
        not res.notes and res.faces[0].status == "restored" and err is not None and err <= MAX_ALIGNED_ERROR
    )
    assert res.image.shape == (128, 128, 3)
    assert restore(aligned, model="bicubic", device="cpu", aligned=True, upscale=2).image.shape == (
        160,
        160,
        3,
    )
    shifted = crop(face.landmarks + np.array([0.12 * native_frame(face.landmarks), 0.0]))
    res = restore(shifted, model="bicubic", device="cpu", aligned=True, upscale=1)
    assert res.notes and res.notes[0].startswith("crop is not template-framed"), res.notes
    assert "restored as a photo" in res.notes[0] and res.image.shape == (80, 80, 3) and res.faces
