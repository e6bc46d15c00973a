"""``facesr prepare`` records the alignment matrices: the faces re-create from the originals without dlib."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facesr.data.align import warp
from facesr.data.prepare import prepare
from facesr.data.prepared import PreparedSet
from facesr.geometry import apply_affine
from facesr.io import read_image

FIX = Path(__file__).parent / "fixtures" / "data"
pytest.importorskip("dlib")


def test_manifest_matrices_recreate_the_prepared_faces_exactly(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(FIX / "utk", src)
    out = tmp_path / "out"
    prepare(src, out, workers=1, n_test=1, progress=False)
    ps = PreparedSet.load(out)
    ok = [r for r in ps.manifest() if r["status"] == "ok"]
    assert len(ok) == 4
    src_lm = np.load(out / "landmarks_src.npy")
    assert src_lm.shape == (4, 68, 2) and src_lm.dtype == np.float32
    for rec in ok:
        m128, m64 = np.asarray(rec["matrix"]), np.asarray(rec["matrix64"])
        assert m128.shape == m64.shape == (2, 3)
        image = read_image(src / rec["path"])
        # Exact float64 values survive JSON, so the warp gives the very same uint8 pixels.
        assert np.array_equal(warp(image, m128, 128), ps.faces128[rec["row"]])
        assert np.array_equal(warp(image, m64, 64), ps.faces64[rec["row"]])
        lm128 = apply_affine(m128, src_lm[rec["row"]]).astype(np.float32)
        assert np.array_equal(lm128, ps.landmarks128[rec["row"]])
        # The 128 frame is the 64 frame at twice the size (both fit the same template).
        assert np.allclose(m128[:, :2], 2 * m64[:, :2], rtol=1e-9)
