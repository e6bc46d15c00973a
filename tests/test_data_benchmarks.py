"""Frozen benchmarks: byte-identical when rebuilt, verified by SHA256SUMS, loadable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from data_support import make_prepared


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("dlib")
    return make_prepared(tmp_path_factory.mktemp("bm"), n_test=2)


@pytest.mark.parametrize("name", ["utk-mask-x8", "celeba10k"])
def test_build_twice_byte_identical(prepared: Path, shared_data: Path, tmp_path: Path, name: str) -> None:
    from facesr.data.benchmarks import build_benchmark, load_benchmark, verify_benchmark
    from facesr.errors import DataError

    a = build_benchmark(name, prepared, tmp_path / "a", shared_data, progress=False)
    b = build_benchmark(name, prepared, tmp_path / "b", shared_data, progress=False)
    da, db = _digest(a), _digest(b)
    assert da == db and len(da) > 5
    assert verify_benchmark(a) == len(da) - 1  # every file but SHA256SUMS itself

    bm = load_benchmark(name, tmp_path / "a")
    n = 1 if name == "celeba10k" else 2
    assert len(bm) == n and bm.hr.shape == (n, 128, 128, 3) and bm.mask.shape == (n, 128, 128)
    assert bm.lr.shape == (n, 16, 16, 3) if name == "utk-mask-x8" else bm.lr.shape == (n, 32, 32, 3)
    assert not np.array_equal(bm.lr, bm.lr_clean)  # the input is masked
    if name == "celeba10k":
        assert bm.identities == [2880]  # identity.txt: 000001.jpg 2880
        assert load_benchmark(name, tmp_path / "a", scale=8).lr.shape == (1, 16, 16, 3)

    (a / "lr_clean" / "00000.png" if name != "celeba10k" else a / "lr_clean_x4" / "00000.png").write_bytes(
        b"x"
    )
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_benchmark(a)


def test_x2_same_faces_and_masks_as_x4(prepared: Path, shared_data: Path, tmp_path: Path) -> None:
    """utk-mask-x2: 64x64 LR of the same faces, with the same mask per index as utk-mask-x4."""
    from facesr.data.benchmarks import NAMES, SOURCES, build_benchmark, load_benchmark, verify_benchmark
    from facesr.eval.names import FROZEN_BENCHMARKS
    from facesr.eval.report import TITLES

    assert "utk-mask-x2" in NAMES and SOURCES["utk-mask-x2"] == "utkface"
    assert FROZEN_BENCHMARKS["utk-mask-x2"] == ("utk-mask-x2", 2)
    assert TITLES["utk-mask-x2"] == "UTK-Mask x2 (64x64 masked LR -> 128x128)"
    for name in ("utk-mask-x2", "utk-mask-x4"):
        build_benchmark(name, prepared, tmp_path, shared_data, limit=2, progress=False)
    assert verify_benchmark(tmp_path / "utk-mask-x2") == 5 * 2 + 1  # five image folders + meta.json
    x2, x4 = load_benchmark("utk-mask-x2", tmp_path), load_benchmark("utk-mask-x4", tmp_path)
    assert x2.scale == 2 and x2.meta["scale"] == 2 and x2.meta["scales"] == [2]
    assert x2.lr.shape == x2.lr_clean.shape == (2, 64, 64, 3) and x2.hr.shape == (2, 128, 128, 3)
    assert not np.array_equal(x2.lr, x2.lr_clean)  # the input is masked
    assert x2.ids == x4.ids
    np.testing.assert_array_equal(x2.mask, x4.mask)  # the mask depends only on seed + index
    np.testing.assert_array_equal(x2.hr_masked, x4.hr_masked)
    np.testing.assert_array_equal(x2.hr, x4.hr)
    for a, b in zip(x2.meta["faces"], x4.meta["faces"], strict=True):
        assert a == b
    with pytest.raises(Exception, match="x2, not x4"):
        load_benchmark("utk-mask-x2", tmp_path, scale=4)


def test_unknown_and_missing(tmp_path: Path) -> None:
    from facesr.data.benchmarks import load_benchmark
    from facesr.errors import DataError

    with pytest.raises(DataError, match="not found"):
        load_benchmark("utk-mask-x4", tmp_path)


def test_cli_build_verify_preview(prepared: Path, shared_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    from facesr.cli import main

    out = tmp_path / "bench"
    assert main(["benchmarks", "verify", "--out", str(out)]) == 2  # nothing built yet: one-line error
    args = ["--prepared", str(prepared), "--data", str(shared_data), "--out", str(out)]
    assert main(["benchmarks", "build", "--only", "utk-mask-x4", *args]) == 0
    assert main(["benchmarks", "build", "--only", "nope", *args]) == 2
    assert main(["benchmarks", "verify", "--out", str(out)]) == 0
    png = tmp_path / "sheet.png"
    prep = ["--prepared", str(prepared / "utkface"), "--data", str(shared_data)]
    assert main(["preview", "--n", "2", "--split", "all", "-o", str(png), *prep]) == 0
    assert Image.open(png).size == (7 * 128, 2 * 128)


def test_cli_build_skips_what_is_not_prepared(
    prepared: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only UTKFace prepared: the UTK sets are built, CelebA-10k is skipped with the command that gives it."""
    import shutil

    from facesr.cli import main

    utk_only = tmp_path / "prepared"
    shutil.copytree(prepared / "utkface", utk_only / "utkface")
    out = tmp_path / "bench"
    args = ["--prepared", str(utk_only), "--data", str(shared_data), "--out", str(out)]
    assert main(["benchmarks", "build", *args]) == 0
    cap = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["utk-mask-x2", "utk-mask-x4", "utk-mask-x8"]
    assert "skipped celeba10k needs the celeba10k set" in cap.err
    assert (
        "run `facesr prepare celeba10k --all-test`, then `facesr benchmarks build --only celeba10k`"
        in cap.err
    )
    assert "built 3 of 4 benchmarks (skipped: celeba10k)" in cap.out
    assert "next: `facesr eval --model" in cap.out and "--benchmark utk-mask-x4`" in cap.out

    assert main(["benchmarks", "build", "--only", "celeba10k", *args]) == 2  # asked for by name: an error
    assert "run `facesr prepare celeba10k --all-test`" in capsys.readouterr().err


def test_cli_build_with_nothing_prepared_names_the_first_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facesr.cli import main

    args = ["--prepared", str(tmp_path / "none"), "--out", str(tmp_path / "bench"), "--data", str(tmp_path)]
    assert main(["benchmarks", "build", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facesr: error: no complete prepared set under") and len(err.splitlines()) == 1
    assert "`facesr prepare utkface`" in err and err.endswith("then `facesr benchmarks build`")
    assert not (tmp_path / "bench").exists()


def test_missing_benchmark_message_names_the_next_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesr.data.benchmarks import load_benchmark
    from facesr.errors import DataError

    monkeypatch.setenv("FACESR_WORKSPACE", str(tmp_path / "ws"))  # nothing prepared there
    with pytest.raises(
        DataError, match=r"run `facesr prepare utkface`, then `facesr benchmarks build --only utk"
    ):
        load_benchmark("utk-mask-x8", tmp_path)
