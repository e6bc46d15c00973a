"""`facesr prepare`: real faces in, bad inputs listed with a one-line reason, inputs untouched, resumable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.data import prepare as prep_mod
from facesr.data.prepare import choose_test, prepare
from facesr.data.prepared import PreparedSet

FIX = Path(__file__).parent / "fixtures" / "data"
pytest.importorskip("dlib")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    """A ~100-byte PNG whose header claims ``w x h`` pixels (decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def bad_folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    face = FIX / "utk" / "22_0_0.jpg"
    shutil.copy(face, src / "good.jpg")
    data = face.read_bytes()
    rgb = Image.open(face).convert("RGB")
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    (src / "notes.txt").write_text("not an image\n")
    (src / "fake.png").write_text("this is text with an image name\n")
    rgb.convert("L").save(src / "gray.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(src / "rgba.png")
    gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(src / "gray16.png")  # uint16 -> a 16-bit greyscale PNG
    Image.new("RGB", (1, 1), (128, 128, 128)).save(src / "one.png")
    (src / "bomb.png").write_bytes(_bomb_png())
    (src / "empty.jpg").write_bytes(b"")
    (src / "sub").mkdir()
    shutil.copy(FIX / "utk" / "35_0_0.jpg", src / "sub" / "nested.jpg")
    (src / "locked").mkdir()
    (src / "locked" / "hidden_face.jpg").write_bytes(data)
    return src


def test_bad_inputs_are_listed_and_inputs_unchanged(
    bad_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _tree_digest(bad_folder)
    real_scandir = os.scandir

    def scandir(path: str):  # the test runs as root, so chmod 000 would not stop it; simulate EACCES
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    entries = prep_mod.scan(bad_folder, scandir=scandir)
    monkeypatch.setattr(prep_mod, "scan", lambda root: entries)
    out = tmp_path / "out"
    report = prepare(bad_folder, out, workers=2, n_test=1, progress=False)
    assert _tree_digest(bad_folder) == before, "prepare modified its input folder"

    recs = {r["path"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    ok = {p for p, r in recs.items() if r["status"] == "ok"}
    assert {"good.jpg", "gray.png", "rgba.png", "gray16.png", "sub/nested.jpg"} <= ok
    expect_failed = {
        "truncated.jpg": "",
        "corrupt.jpg": "",
        "notes.txt": "not an image file type",
        "fake.png": "not a recognised image format",
        "one.png": "too small",
        "bomb.png": "limit",
        "empty.jpg": "",
        "locked/": "cannot read folder",
    }
    for path, needle in expect_failed.items():
        rec = recs[path]
        assert rec["status"] == "failed", path
        assert rec["reason"] and "\n" not in rec["reason"] and needle in rec["reason"], (path, rec["reason"])
    assert report["files"] == len(recs) and report["failed"] == len(expect_failed)
    assert {f["path"] for f in report["failures"]} == set(expect_failed)

    ps = PreparedSet.load(out)
    assert ps.faces128.shape == (len(ok), 128, 128, 3) and ps.faces128.dtype == np.uint8
    assert ps.faces64.shape == (len(ok), 64, 64, 3)
    assert ps.landmarks128.shape == (len(ok), 68, 2) and ps.landmarks128.dtype == np.float32
    assert sorted(r["row"] for r in recs.values() if r["status"] == "ok") == list(range(len(ok)))
    # The grayscale and 16-bit copies are the same face: same landmarks to within a pixel or two.
    rows = {p: recs[p]["row"] for p in ("good.jpg", "gray16.png")}
    assert np.abs(ps.landmarks128[rows["good.jpg"]] - ps.landmarks128[rows["gray16.png"]]).mean() < 2.0


def test_resume_after_interrupt_gives_same_result(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(FIX / "utk", src)
    monkey_chunk = prep_mod.CHUNK
    prep_mod.CHUNK = 2  # two chunks for four files
    try:
        out = tmp_path / "out"
        prepare(src, out, workers=1, n_test=1, progress=False)
        first = {f: (out / f).read_bytes() for f in ("faces128.npy", "landmarks128.npy", "split.npy")}
        (out / "chunks" / "chunk_00001.npz").unlink()  # as if killed before the 2nd chunk finished
        (out / "faces128.npy").unlink()
        rep = prepare(src, out, workers=1, n_test=1, progress=False)
        assert rep["resumed_chunks"] == 1 and rep["processed_files"] == 2
        assert {f: (out / f).read_bytes() for f in first} == first
    finally:
        prep_mod.CHUNK = monkey_chunk


def test_split_by_content_keeps_duplicates_together() -> None:
    hashes = ["d" * 64, "a" * 64, "d" * 64, "b" * 64, "c" * 64, "a" * 64]
    test = choose_test(hashes, 2)
    assert test.sum() == 2
    for h in set(hashes):
        sides = {bool(t) for hh, t in zip(hashes, test, strict=True) if hh == h}
        assert len(sides) == 1, "a duplicate straddles train and test"
    assert [h for h, t in zip(hashes, test, strict=True) if t] == ["b" * 64, "c" * 64]
    assert choose_test(hashes, None).all()
    from facesr.errors import DataError

    with pytest.raises(DataError, match="--n-test"):
        choose_test(hashes, 5)  # only 2 distinct singletons


def test_cli_prepare_and_bad_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facesr.cli import main

    src = tmp_path / "in"
    shutil.copytree(FIX / "utk", src)
    assert main(["prepare", str(src), "--out", str(tmp_path / "o"), "--workers", "1", "--n-test", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert summary["aligned"] == 4 and summary["test"] == 1
    assert main(["prepare", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facesr: error:") and len(err.splitlines()) == 1


def test_bomb_png_header_is_small_and_claims_huge_size() -> None:
    data = _bomb_png()
    assert len(data) < 200
    assert struct.unpack(">II", data[16:24]) == (20000, 20000)  # the IHDR width/height fields
