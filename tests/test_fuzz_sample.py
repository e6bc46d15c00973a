"""A sampled run of the fuzzing harness (benchmarks/fuzz/fuzz_inputs.py): ~200 malformed files.

The full run (10,000 files) and its figures are in docs/reliability.md; this keeps the same checks
in CI: no traceback, no hang, no input file changed and no file silently skipped, for
read_image, the restore API, `facesr restore` and `facesr prepare`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "fuzz" / "fuzz_inputs.py"


def _harness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("fuzz_inputs", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inputs"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_corpus_is_deterministic_and_varied() -> None:
    fz = _harness()
    a = fz.generate(300, seed=0)
    b = fz.generate(300, seed=0)
    assert [(c.name, hashlib.sha256(c.data).hexdigest()) for c in a] == [
        (c.name, hashlib.sha256(c.data).hexdigest()) for c in b
    ]
    kinds = {c.kind for c in a}
    assert {
        "truncate",
        "bitflip",
        "header",
        "declared-size",
        "wrong-ext",
        "valid-mode",
        "junk",
        "bomb",
    } <= kinds
    assert any(len(c.data) == 0 for c in a), "no zero-byte file in the sample"


def test_restore_targets_are_checked_against_the_memory_budget() -> None:
    fz = _harness()
    rows = [
        {"target": "read", "peak_rss_mb": 5000.0},  # not a restore process: reported only
        {"target": "api", "peak_rss_mb": 1403.0},
        {"target": "cli", "peak_rss_mb": 1600.0},
        {"target": "prepare", "peak_rss_mb": 9000.0},
    ]
    assert fz.check_budget(rows, 1536) == 1
    assert [r.get("over_budget") for r in rows] == [None, False, True, None]
    unknown = [{"target": "cli", "peak_rss_mb": None}]
    assert fz.check_budget(unknown, 1536) == 1  # a peak that was not measured is not under budget
    spec = importlib.util.spec_from_file_location("memory_probe", REPO / "benchmarks" / "memory_probe.py")
    assert spec and spec.loader
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert fz.BUDGET_MB == probe.BUDGET_MB  # the probe and the harness state one budget


def test_declared_size_rewrites_png_header_with_valid_crc() -> None:
    """The 'enormous dimensions' mutation must produce a PNG whose header Pillow believes."""
    import io

    from PIL import Image

    fz = _harness()
    png = next(d for label, ext, d in fz.base_encodings(fz._seed_images((32,))) if label.endswith("-png"))
    huge = fz.set_declared_size(png, 100_000, 100_000)
    # Pillow trusts the header (CRC valid) and refuses it as a bomb instead of "broken PNG".
    with pytest.raises(Image.DecompressionBombError, match="10000000000 pixels"):
        Image.open(io.BytesIO(huge))


@pytest.mark.slow
def test_fuzz_sample_has_no_traceback_hang_or_change(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--count",
            "200",
            "--seed",
            "1",
            "--workers",
            "1",
            "--cli-batch",
            "200",
            "--timeout",
            "60",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert out.is_file(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["target"]: r for r in report["summary"]}
    assert set(rows) == {"read", "api", "cli", "prepare"}
    for name, row in rows.items():
        assert row["inputs"] == 200, name
        for key in ("tracebacks", "hangs", "changed_inputs", "silent_skips", "grey_filled"):
            assert row.get(key, 0) == 0, (name, key, json.dumps(report["targets"][name], default=str)[:3000])
    # Malformed files must really be refused (not decoded as grey), and valid odd modes accepted.
    assert rows["read"]["clean_errors"] > 50 and rows["read"]["ok"] > 20
    assert rows["read"]["peak_rss_mb"] > 0 and "grey_filled" in rows["api"]  # issue 17: counted
    assert proc.returncode == 0, proc.stderr[-3000:]
