"""Hostile files: weights, checkpoints and arrays crafted to run code when loaded do nothing.

Each crafted file carries a pickle payload that, if unpickled, creates a marker file. A positive
control proves the payload is live (an unsafe ``torch.load(weights_only=False)`` in a subprocess
does create the marker); then every facesr loader that a user can point at a file must refuse it
with a one-line FacesrError and leave no marker. A static scan keeps future code honest: no
``torch.load`` without ``weights_only=True``, no ``pickle.load``, no ``allow_pickle=True`` in src/.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.errors import FacesrError

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this runs ``exec(code)``: the classic "checkpoint that runs code on load"."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('pwned')"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.code,))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    """A torch checkpoint that looks like facesr's (nets, step, config) with a payload inside."""
    torch.save({"nets": {"generator": _Payload(marker)}, "step": 10, "config_yaml": "run: {}\n"}, path)
    return path


def test_payload_is_live_when_loaded_unsafely(tmp_path: Path) -> None:
    """Positive control: without weights_only the crafted file does run code (so the tests below mean something)."""
    marker = tmp_path / "marker-control"
    ckpt = _evil_checkpoint(tmp_path / "evil.pt", marker)
    code = f"import torch; torch.load({str(ckpt)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True, timeout=120)
    assert marker.read_text() == "pwned"


def test_training_checkpoint_loader_refuses_payload(tmp_path: Path) -> None:
    from facesr.train.loop import load_checkpoint

    marker = tmp_path / "marker"
    ckpt = _evil_checkpoint(tmp_path / "last.pt", marker)
    with pytest.raises(FacesrError, match="unreadable checkpoint"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_train_resume_cli_refuses_payload(tmp_path: Path) -> None:
    """`facesr train --resume RUN` on a run folder whose last.pt is hostile: one line, exit 2, no code run."""
    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    marker = tmp_path / "marker"
    _evil_checkpoint(run / "ckpt" / "last.pt", marker)
    proc = subprocess.run(
        [sys.executable, "-m", "facesr.cli", "train", "--resume", str(run)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "unreadable checkpoint" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".bin"])
def test_weights_loader_refuses_pickle(tmp_path: Path, suffix: str) -> None:
    """load_model reads safetensors only; a pickle (torch.save or raw) under any name is refused."""
    from facesr.zoo import load_model

    marker = tmp_path / "marker"
    evil = _evil_checkpoint(tmp_path / f"evil{suffix}", marker)
    with pytest.raises(FacesrError):
        load_model(evil)
    raw = tmp_path / f"raw{suffix}"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(FacesrError):
        load_model(raw)
    assert not marker.exists()


def test_restore_cli_refuses_pickled_model(tmp_path: Path) -> None:
    """`facesr restore --model evil.safetensors`: one-line error, exit 2, no code run."""
    marker = tmp_path / "marker"
    evil = _evil_checkpoint(tmp_path / "evil.safetensors", marker)
    photo = sorted((REPO / "src" / "facesr" / "samples").glob("*.jpg"))
    if not photo:
        pytest.skip("no bundled sample photo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facesr.cli",
            "restore",
            str(photo[0]),
            "-o",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--model",
            str(evil),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def _safetensors_with_meta(path: Path, meta: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    "meta",
    [
        {"facesr.arch": "os.system", "facesr.args": "{}"},
        {"facesr.arch": "__import__", "facesr.args": '{"name": "os"}'},
        {"facesr.arch": "jdsr", "facesr.args": "not json {"},
        {"facesr.arch": "jdsr", "facesr.args": '{"__class__": "x", "evil": 1}'},
        {"facesr.arch": "jdsr", "facesr.args": '["a", "list"]'},
    ],
    ids=["arch-os.system", "arch-__import__", "args-not-json", "args-unknown-kwargs", "args-not-a-dict"],
)
def test_weights_metadata_cannot_pick_code(tmp_path: Path, meta: dict[str, str]) -> None:
    """The architecture comes from a registry, never from a dotted path; bad args are a ModelError."""
    from facesr.zoo import load_model

    path = _safetensors_with_meta(tmp_path / "m.safetensors", meta)
    with pytest.raises(FacesrError):
        load_model(path)


def test_safetensors_header_lies_are_clean_errors(tmp_path: Path) -> None:
    """A header length of 2**63 or a truncated header: ModelError, no memory blow-up."""
    from facesr.zoo import load_model

    good = _safetensors_with_meta(tmp_path / "good.safetensors", {"facesr.arch": "x"}).read_bytes()
    cases = {
        "huge-header": (2**63 - 1).to_bytes(8, "little") + good[8:],
        "truncated": good[: len(good) // 2],
        "json-garbage": len(b"{not json").to_bytes(8, "little") + b"{not json",
    }
    for name, data in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(data)
        with pytest.raises(FacesrError):
            load_model(p)


def test_prepared_arrays_are_never_unpickled(tmp_path: Path) -> None:
    """A prepared-set folder whose .npy holds a pickled object array: no code runs, clear error."""
    from facesr.data.prepared import PreparedSet

    marker = tmp_path / "marker"
    prep = tmp_path / "prepared"
    prep.mkdir()
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    np.save(prep / "faces128.npy", evil, allow_pickle=True)
    np.save(prep / "faces64.npy", np.zeros((1, 64, 64, 3), np.uint8))
    np.save(prep / "landmarks128.npy", np.zeros((1, 68, 2), np.float32))
    np.save(prep / "split.npy", np.zeros(1, np.uint8))
    (prep / "manifest.jsonl").write_text(json.dumps({"path": "a.jpg", "status": "ok", "row": 0}) + "\n")
    (prep / "report.json").write_text("{}\n")
    with pytest.raises(FacesrError):
        PreparedSet.load(prep)
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_src() -> None:
    """Static guard: every torch.load passes weights_only=True; no pickle.load(s), no allow_pickle=True."""
    offenders = []
    for path in sorted((REPO / "src").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\((?P<args>[^)]*)\)", text):
            if "weights_only=True" not in m.group("args"):
                offenders.append(f"{path.relative_to(REPO)}: {m.group(0)[:80]}")
        for pat in (r"\bpickle\.loads?\(", r"allow_pickle\s*=\s*True", r"\bdill\.", r"\bjoblib\.load\("):
            offenders += [f"{path.relative_to(REPO)}: {pat}" for _ in re.finditer(pat, text)]
    assert not offenders, "\n".join(offenders)


# ------------------------------------------------------------------------------------------------
# Archives: path traversal, absolute paths, links, bombs
# ------------------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    import stat
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    return path


def _tar(path: Path, build) -> Path:  # type: ignore[no-untyped-def]
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for info, data in build():
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _tarinfo(name: str, data: bytes = b"", kind: bytes | None = None, link: str = ""):  # type: ignore[no-untyped-def]
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    if kind is not None:
        info.type, info.linkname, info.size = kind, link, 0
        return info, None
    return info, data


def _outside_untouched(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name.startswith("evil"))


@pytest.mark.parametrize(
    "case",
    [
        "zip-dotdot",
        "zip-nested-dotdot",
        "zip-absolute",
        "zip-backslash",
        "zip-symlink",
        "tar-dotdot",
        "tar-absolute",
        "tar-symlink-then-write",
        "tar-hardlink",
        "tar-device",
    ],
)
def test_archive_members_cannot_escape(tmp_path: Path, case: str) -> None:
    import tarfile

    from facesr.data.archives import safe_extract
    from facesr.errors import DataError

    base = tmp_path / "base"
    target = base / "target"
    base.mkdir()
    evil_abs = str(base / "evil-abs.txt")
    arc = tmp_path / "a.zip"
    if case == "zip-dotdot":
        _zip(arc, {"ok.txt": b"fine", "../evil.txt": b"x"})
    elif case == "zip-nested-dotdot":
        _zip(arc, {"a/b/../../../evil.txt": b"x"})
    elif case == "zip-absolute":
        _zip(arc, {evil_abs: b"x"})
    elif case == "zip-backslash":
        _zip(arc, {"..\\evil.txt": b"x"})
    elif case == "zip-symlink":
        _zip(arc, {}, symlink=("link", str(base)))
    else:
        arc = tmp_path / "a.tar.gz"
        builds = {
            "tar-dotdot": lambda: [_tarinfo("ok.txt", b"fine"), _tarinfo("../evil.txt", b"x")],
            "tar-absolute": lambda: [_tarinfo(evil_abs, b"x")],
            "tar-symlink-then-write": lambda: [
                _tarinfo("link", kind=tarfile.SYMTYPE, link=str(base)),
                _tarinfo("link/evil.txt", b"x"),
            ],
            "tar-hardlink": lambda: [_tarinfo("hard", kind=tarfile.LNKTYPE, link=str(base / "evil-target"))],
            "tar-device": lambda: [_tarinfo("dev", kind=tarfile.CHRTYPE)],
        }
        _tar(arc, builds[case])
    with pytest.raises(DataError, match="refusing the archive"):
        safe_extract(arc, target)
    assert _outside_untouched(base) == []
    assert not target.exists() or not any(target.rglob("*")), "nothing is written when a member is refused"


def test_archive_benign_extracts_and_bombs_stop(tmp_path: Path) -> None:
    from facesr.data.archives import safe_extract
    from facesr.errors import DataError

    arc = _zip(tmp_path / "good.zip", {"faces/a.jpg": b"jpegbytes", "b.png": b"pngbytes"})
    files = safe_extract(arc, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == ["b.png", "faces/a.jpg"]
    assert (tmp_path / "out" / "faces" / "a.jpg").read_bytes() == b"jpegbytes"
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (4 << 20)})
    with pytest.raises(DataError, match="limit"):
        safe_extract(bomb, tmp_path / "out2", max_total_bytes=1 << 20)
    not_archive = tmp_path / "x.zip"
    not_archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError):
        safe_extract(not_archive, tmp_path / "out3")


def test_prepare_does_not_unpack_archives(tmp_path: Path) -> None:
    """`facesr prepare` reads folders only: an archive in the source is listed as not-an-image, never unpacked."""
    src = tmp_path / "src"
    src.mkdir()
    _zip(src / "faces.zip", {"../evil.txt": b"x", "face.jpg": b"y"})
    out = tmp_path / "prepared"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facesr.cli",
            "prepare",
            str(src),
            "--out",
            str(out),
            "--workers",
            "1",
            "--n-test",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "evil.txt").exists() and not (src.parent / "evil.txt").exists()
    assert sorted(p.name for p in src.iterdir()) == ["faces.zip"]
    if (out / "manifest.jsonl").is_file():
        recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        assert [(r["path"], r["status"]) for r in recs] == [("faces.zip", "failed")]
    else:
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("facesr: error:")
