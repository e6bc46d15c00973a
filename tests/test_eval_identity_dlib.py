"""The identity metric (port of dlib's face-recognition ResNet) agrees with dlib itself.

Real UTKFace faces are aligned to the facesr template, degraded (x4 and x8 bicubic down-up, the
'restored' faces), and the restored-vs-HR cosine is computed twice: by ``create_metric("identity")``
and by dlib's ``face_recognition_model_v1`` on dlib's own 150x150 chip, whose 5 points come from
dlib's 5-point predictor on the HR face (the same chip geometry for both images, as in the port).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


def test_identity_cosine_matches_dlib(shared_data) -> None:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from facesr.data.align import align_face
    from facesr.data.landmarks import detect_landmarks
    from facesr.eval.metrics import create_metric

    hrs = []
    for f in sorted((shared_data / "utkface").glob("*.jpg"))[100:140]:
        img = np.asarray(Image.open(f).convert("RGB"))
        det = detect_landmarks(img)
        if det is not None:
            hrs.append(align_face(img, det.landmarks, 128).image)
        if len(hrs) == 12:
            break
    assert len(hrs) == 12
    hr = np.stack(hrs)
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    metric = create_metric("identity", device="cpu")
    ours, ref = [], []
    for s in (4, 8):
        sr = np.stack(
            [
                np.asarray(
                    Image.fromarray(h)
                    .resize((128 // s,) * 2, Image.BICUBIC)
                    .resize((128, 128), Image.BICUBIC)
                )
                for h in hr
            ]
        )
        t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
        ours.append(metric(t(sr), t(hr)).numpy())
        for h, r in zip(hr, sr, strict=True):
            rects = detector(h, 1)
            shape = sp5(h, rects[0] if len(rects) else dlib.rectangle(0, 0, 127, 127))
            eh = np.array(rec.compute_face_descriptor(h, shape))
            er = np.array(rec.compute_face_descriptor(r, shape))
            ref.append(float(eh @ er / np.linalg.norm(eh) / np.linalg.norm(er)))
    ours_all, ref_all = np.concatenate(ours), np.array(ref)
    diff = np.abs(ours_all - ref_all)
    # measured when written (24 pairs): mean |diff| 0.0042, max 0.021, correlation 0.979
    assert diff.mean() < 0.01 and diff.max() < 0.04
    assert np.corrcoef(ours_all, ref_all)[0, 1] > 0.9
    # and the metric sees the degradation: x8 loses more identity than x4, as dlib says too
    assert ours[1].mean() < ours[0].mean() - 0.01 and ref_all[12:].mean() < ref_all[:12].mean() - 0.01
