"""Inputs that would make face detection allocate without bound are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesr.data.prepare import MAX_ASPECT, process_file
from facesr.io import write_image


def test_extreme_aspect_ratio_refused_before_detection(tmp_path: Path) -> None:
    # 20 x 4000 px: detection would up-sample the short side to 200 px (a 200 x 40,000 working copy).
    write_image(tmp_path / "tall.png", np.full((4000, 20, 3), 128, np.uint8))
    rec, faces = process_file(tmp_path, "tall.png")
    assert faces is None and rec["status"] == "failed"
    assert "aspect ratio" in rec["reason"] and f"{MAX_ASPECT}:1" in rec["reason"]
