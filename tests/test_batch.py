"""`facesr restore-batch` without a cluster: inputs, output names, resume rules, byte identity.

The per-photo steps (:func:`facesr.batch.work.prepare`, :class:`facesr.batch.work.Restorer`) are
called directly here; tests/test_batch_ray_cluster.py runs them on a real two-node Ray cluster.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facesr.batch.inputs import expand_inputs
from facesr.batch.manifest import OutputFolder
from facesr.batch.pipeline import read_task_block
from facesr.batch.settings import RestoreSettings, model_fingerprint
from facesr.batch.work import TASK_COLUMNS, Restorer, prepare, torch_threads
from facesr.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples"
SAMPLE = SAMPLES / "rwmfd_0002_0078.jpg"


def _small_photo(path: Path) -> Path:
    """A crop of a bundled sample with a few faces (keeps each restore short on 2 cores)."""
    from facesr.io import read_image, write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.ascontiguousarray(read_image(SAMPLE)[:100, :128]))
    return path


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _settings(**kw: object) -> RestoreSettings:
    base: dict[str, object] = dict(
        model="bicubic",
        device="cpu",
        precision="fp32",
        engine="torch",
        batch_size=16,
        aligned=False,
        max_pixels=64_000_000,
        min_face=10.0,
        model_fingerprint="bicubic",
        upscale=0,
        bg_upsampler="bicubic",
        bg_fingerprint="bicubic",
    )
    base.update(kw)
    return RestoreSettings(**base)  # type: ignore[arg-type]


def _run_local(folder: OutputFolder, inputs: list[Path], settings: RestoreSettings) -> list[dict]:
    """What the Ray job does, in this process: plan, prepare, restore, append the rows."""
    folder.assign_outputs([(p, Path(p.name)) for p in inputs])
    # the task table as the CPU stage reads it: written in blocks, each read back from its file
    blocks = folder.write_tasks(rows=2)
    table = pa.concat_tables([read_task_block(b) for b in blocks])
    assert table.column_names == list(TASK_COLUMNS)
    batch = {k: np.array(table.column(k).to_pylist(), dtype=object) for k in TASK_COLUMNS}
    restorer = Restorer(settings)
    used = restorer.given_faces.used
    # As the pipeline calls it: faces found by the CPU stage (none for --aligned crops).
    prepared = prepare(
        batch, settings.sha256, settings.max_pixels, None if settings.aligned else settings.min_face
    )
    result = restorer(prepared)
    rows = [json.loads(r) for r in result["row"]]
    todo = sum(s == "todo" for s in prepared["status"])
    # every photo restored here used the faces of the CPU stage: the restore call did not detect again
    assert restorer.given_faces.used - used == (0 if settings.aligned else todo)
    folder.append([r for s, r in zip(result["status"], result["row"], strict=True) if s != "skipped"])
    return rows


# ---- inputs ----------------------------------------------------------------------------------


def test_inputs_from_folders_globs_and_text_csv_parquet_manifests(tmp_path: Path) -> None:
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for rel in ("a/x.jpg", "a/sub/y.png", "b.jpg", "c.jpg"):
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# photos\nb.jpg\n\nsub2/../c.jpg\n")
    (tmp_path / "list.csv").write_text("id,path\n1,b.jpg\n2,a/x.jpg\n")
    pq.write_table(pa.table({"input": [str(tmp_path / "c.jpg"), "missing.jpg"]}), tmp_path / "list.parquet")
    got = list(
        expand_inputs(
            [
                str(tmp_path / "a"),
                str(tmp_path / "list.txt"),
                str(tmp_path / "list.csv"),
                str(tmp_path / "list.parquet"),
                str(tmp_path / "*.jpg"),
            ]
        )
    )
    names = [(str(p.relative_to(tmp_path)), str(rel)) for p, rel in got]
    assert names == [
        ("a/sub/y.png", "sub/y.png"),  # folders: path relative to the folder, like facesr restore
        ("a/x.jpg", "x.jpg"),
        ("b.jpg", "b.jpg"),  # a manifest's relative path keeps its folders ...
        ("c.jpg", "c.jpg"),  # ... unless it climbs (never above the output folder)
        ("missing.jpg", "missing.jpg"),  # kept: recorded as a failed photo
    ]  # b.jpg, a/x.jpg and c.jpg listed again (CSV, Parquet, glob) come once


def test_a_manifest_without_a_path_column_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    rc = main(["restore-batch", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "out"), "--model", "bicubic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [
        f"facesr: error: manifest {tmp_path / 'bad.csv'}: no path column; name one of path, input, file, filename (found a, b)"
    ]
    assert not (tmp_path / "out").exists()


def test_folders_and_globs_stream_in_list_images_order_also_when_sorted_on_disk(
    tmp_path: Path, monkeypatch
) -> None:
    """The driver walks folders one directory at a time (and sorts a long listing on disk), in
    exactly the order of facesr.io.list_images, so both commands name a folder's photos alike."""
    import glob

    from facesr.batch import inputs
    from facesr.io import list_images

    root = tmp_path / "root"
    for rel in (
        "a.jpg",
        "a/b.png",
        "a/c/d.jpg",
        "a-b/x.jpg",
        "a.b/y.JPG",
        "B.jpg",
        ".h.jpg",
        "z.txt",
        "é.png",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "link.png").symlink_to(root / "a.jpg")  # a symlinked file counts
    (root / "dirlink").symlink_to(root / "a", target_is_directory=True)  # a symlinked folder is not entered
    want = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert [rel for _, rel in inputs.iter_images(root)] == want
    monkeypatch.setattr(inputs, "SORT_IN_MEMORY", 2)  # every listing longer than 2 sorted in SQLite
    assert [rel for _, rel in inputs.iter_images(root)] == want
    globbed = [Path(p).name for p, _ in expand_inputs([str(root / "*.*")])]
    # a glob gives the files of sorted(glob.glob(...)) (no dot files; a non-image fails per photo
    # later), each photo once: link.png is a.jpg
    assert [Path(p).name for p in sorted(glob.glob(str(root / "*.*")))] == [
        "B.jpg",
        "a.b",
        "a.jpg",
        "link.png",
        "z.txt",
        "é.png",
    ]
    assert globbed == ["B.jpg", "a.jpg", "z.txt", "é.png"]
    odd = ["b", "a", "\udcff", "é", "ä", "z", "\U0001f600", "A", "a/b", "a.b", "a-b"]
    assert list(inputs.sorted_strings(odd, limit=3)) == sorted(odd)


def test_driver_memory_does_not_grow_with_the_number_of_inputs(tmp_path: Path) -> None:
    """Planning 10x more inputs (a text manifest) costs the driver no more memory: inputs, plan,
    previous manifest rows and the task table stream through an on-disk index (planning only: no
    Ray, nothing restored)."""
    import subprocess
    import textwrap

    probe = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import pyarrow as pa, pyarrow.parquet as pq, pyarrow.json, pyarrow.ipc
        from facesr.batch.inputs import candidates
        from facesr.batch.manifest import OutputFolder
        def mb(key):
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
        man, out = sys.argv[1], Path(sys.argv[2])
        folder = OutputFolder(out)
        folder.prepare()
        # a previous run's journal, so the resume join is measured too
        folder.append([f'{{"input": "{out}/none{i}", "status": "ok"}}' for i in range(100)])
        with pq.ParquetWriter(out / "warm.parquet", pa.schema([("a", pa.string())])) as w:
            w.write_table(pa.table({"a": ["x"]}))  # libparquet's code pages: ~55 MB, the same for any n
        base = mb("VmRSS:")
        n = folder.plan(candidates([man]))
        blocks = folder.write_tasks(rows=256)
        folder.compact()
        folder.close()
        print(n, len(blocks), round(mb("VmHWM:") - base, 1))
        """
    )
    growth = {}
    for n in (30_000, 120_000):
        man = tmp_path / f"list{n}.txt"
        man.write_text("".join(f"cam{i % 97:02d}/day{i // 5000:02d}/photo{i:07d}.jpg\n" for i in range(n)))
        res = subprocess.run(
            [sys.executable, "-c", probe, str(man), str(tmp_path / f"out{n}")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        got, blocks, mb = res.stdout.split()
        assert int(got) == n and int(blocks) == -(-n // 256)
        growth[n] = float(mb)
    # Measured: about 45 MB for either (SQLite's 16 MB page cache, one chunk of rows, Arrow's
    # allocator); the lists and sets of before grew 1.75 kB per line, 157 MB for these 90,000.
    assert growth[120_000] - growth[30_000] < 15, growth
    assert growth[120_000] < 64, growth


# ---- output names and the plan ---------------------------------------------------------------


def test_output_names_are_stable_and_never_replace_a_foreign_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = OutputFolder(out)
    folder.prepare()
    (out / "b.png").write_bytes(b"not ours")
    a1, a2, b = tmp_path / "1" / "a.jpg", tmp_path / "2" / "a.jpg", tmp_path / "b.jpg"
    first = dict(folder.assign_outputs([(a1, Path("a.jpg")), (b, Path("b.jpg"))]))
    assert first[str(a1)] == str(out / "a.png")
    assert first[str(b)] == str(out / "b_1.png")  # b.png exists and is not in the plan
    second = dict(folder.assign_outputs([(a2, Path("a.jpg")), (a1, Path("a.jpg"))]))
    assert second[str(a1)] == str(out / "a.png")  # kept from the first run
    assert second[str(a2)] == str(out / "a_1.png")
    assert (out / "b.png").read_bytes() == b"not ours"
    # the task table on disk, one row per block and two blocks per file, reads back in input order
    blocks = folder.write_tasks(rows=1, blocks_per_file=2)
    assert len({b.path for b in blocks}) == 1 and len(blocks) == 2
    assert [read_task_block(b).column("input").to_pylist() for b in blocks] == [[str(a2)], [str(a1)]]
    folder.close()
    assert not folder.index_path.exists() and not folder.tasks_dir.exists()
    assert folder.read_plan() == {
        str(a1): str(out / "a.png"),
        str(b): str(out / "b_1.png"),
        str(a2): str(out / "a_1.png"),
    }


def test_plan_only_fixes_the_names_without_ray_and_restores_nothing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # planning needs no Ray
    (tmp_path / "list.txt").write_text("x/one.jpg\nx/two.jpg\nx/one.jpg\n")
    out = tmp_path / "out"
    rc = main(
        ["restore-batch", str(tmp_path / "list.txt"), "-o", str(out), "--plan-only", "--model", "bicubic"]
    )
    assert rc == 0, capsys.readouterr().err
    assert "plan only: 2 photos" in capsys.readouterr().out
    assert OutputFolder(out).read_plan() == {
        str(tmp_path / "x" / "one.jpg"): str(out / "x" / "one.png"),
        str(tmp_path / "x" / "two.jpg"): str(out / "x" / "two.png"),
    }
    assert sorted(p.name for p in (out / ".facesr-batch").iterdir()) == ["lock", "plan.parquet"]


# ---- per-photo work: identity with facesr restore, resume rules, failures ---------------------


def test_batch_output_is_byte_identical_to_facesr_restore_and_a_rerun_skips(tmp_path: Path) -> None:
    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    src.write_bytes(SAMPLE.read_bytes())
    ref = tmp_path / "ref"
    # The batch's default one torch thread: float sums, and so output bytes, follow the thread count.
    with torch_threads(1):
        rc = main(
            [
                "restore",
                str(src),
                "-o",
                str(ref),
                "--model",
                "bicubic",
                "--device",
                "cpu",
                "--engine",
                "torch",
            ]
        )
    assert rc == 0
    folder = OutputFolder(tmp_path / "out")
    folder.prepare()
    settings = _settings()
    rows = _run_local(folder, [src], settings)
    assert [r["status"] for r in rows] == ["ok"]
    out = tmp_path / "out" / "photo.png"
    assert out.read_bytes() == (ref / "photo.png").read_bytes()
    assert rows[0]["output_sha256"] == _sha(out) and rows[0]["input_sha256"] == _sha(src)
    report = json.loads((ref / "report.json").read_text())
    assert rows[0]["faces"]["restored"] == report["counts"]["faces_restored"] > 0
    assert rows[0]["faces"]["found"] == report["counts"]["faces_found"]
    mtime = out.stat().st_mtime_ns

    assert [r["status"] for r in _run_local(folder, [src], settings)] == ["skipped"]
    assert out.stat().st_mtime_ns == mtime
    # other settings, other input bytes, or a damaged output: done again
    assert [r["status"] for r in _run_local(folder, [src], _settings(upscale=1, min_face=12.0))] == ["ok"]
    out.write_bytes(b"damaged")
    assert [r["status"] for r in _run_local(folder, [src], _settings(upscale=1, min_face=12.0))] == ["ok"]
    assert out.read_bytes() != b"damaged"
    assert folder.compact() == 1
    assert len(folder.manifest.read_text().splitlines()) == 1


def test_failures_are_recorded_per_photo_and_the_rest_finish(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    good = _small_photo(d / "good.jpg")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (d / "empty.png").write_bytes(b"")
    (d / "blank.png").write_bytes(
        __import__("facesr.io").io.encode_image(np.full((64, 64, 3), 128, np.uint8))
    )
    (d / "notes.gif").write_bytes(b"GIF89a")
    folder = OutputFolder(tmp_path / "out")
    folder.prepare()
    inputs = [good, d / "corrupt.jpg", d / "empty.png", d / "blank.png", d / "notes.gif", d / "missing.jpg"]
    rows = {Path(r["input"]).name: r for r in _run_local(folder, inputs, _settings(upscale=1))}
    assert rows["good.jpg"]["status"] == "ok"
    # like facesr restore, a readable photo without a face is written (enlarged) and counted
    assert rows["blank.png"]["status"] == "ok" and rows["blank.png"]["faces"]["found"] == 0
    for name, why in (
        ("corrupt.jpg", "corrupt.jpg"),
        ("empty.png", "empty file (0 bytes)"),
        ("notes.gif", "unsupported file type '.gif'"),
        ("missing.jpg", "missing.jpg: no such file"),
    ):
        assert rows[name]["status"] == "failed" and why in rows[name]["reason"], rows[name]
        assert "\n" not in rows[name]["reason"] and "<bytes>" not in rows[name]["reason"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".facesr-batch",
        "blank.png",
        "good.png",
        "manifest.jsonl",
    ]


def test_a_journal_cut_mid_line_is_repaired_and_compaction_keeps_the_last_row(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path / "out")
    folder.prepare()
    folder.append(
        [json.dumps({"input": "a", "status": "failed"}), json.dumps({"input": "b", "status": "ok"})]
    )
    folder.append([json.dumps({"input": "a", "status": "ok"})])
    with open(folder.manifest, "a") as fh:
        fh.write('{"input": "c", "sta')  # a kill during the append
    folder.prepare()
    folder.plan([("a", "a", "a"), ("c", "c", "c")])
    assert folder.previous("a")["status"] == "ok" and folder.previous("c") is None
    assert folder.compact() == 2
    rows = [json.loads(line) for line in folder.manifest.read_text().splitlines()]
    assert sorted((r["input"], r["status"]) for r in rows) == [("a", "ok"), ("b", "ok")]
    folder.manifest.write_text('{"input": "d", "sta')  # killed during its very first append
    folder.prepare()
    assert folder.manifest.read_bytes() == b""


# ---- settings hash and the command -----------------------------------------------------------


def test_every_restore_option_that_shapes_the_output_is_in_the_settings_hash() -> None:
    from facesr.commands.batch import restore_batch_cmd
    from facesr.commands.restore import restore_cmd

    # Options of `facesr restore` that only add extra files or name the output folder.
    not_output_shaping = {"inputs", "output", "save_faces", "compare", "overwrite"}
    restore_opts = {p.name for p in restore_cmd.params} - not_output_shaping
    fields = set(RestoreSettings.__dataclass_fields__)
    batch_opts = {p.name for p in restore_batch_cmd.params}
    assert restore_opts <= fields, f"add {sorted(restore_opts - fields)} to RestoreSettings and restore-batch"
    assert restore_opts <= batch_opts, f"restore-batch lacks {sorted(restore_opts - batch_opts)}"
    base = _settings()
    for name in sorted(fields):
        value = getattr(base, name)
        changed = (
            not value
            if isinstance(value, bool)
            else value + 1
            if isinstance(value, (int, float))
            else f"{value}-other"
        )
        assert RestoreSettings(**{**base.__dict__, name: changed}).sha256 != base.sha256, name


def test_model_fingerprint_follows_the_weights(tmp_path: Path) -> None:
    from facesr.errors import ModelError

    assert model_fingerprint("bicubic") == "bicubic"
    from facesr.restoration.api import DEFAULT_MODELS

    assert f"{DEFAULT_MODELS[4]}=" in model_fingerprint("auto")
    with pytest.raises(ModelError):
        model_fingerprint("no-such-model")


def test_without_ray_the_command_says_how_to_install_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    rc = main(["restore-batch", str(SAMPLE), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [
        'facesr: error: facesr restore-batch needs Ray; install it with: pip install "facesr[ray]"'
    ]
    assert not (tmp_path / "out").exists()


def test_restore_needs_no_ray(tmp_path: Path, monkeypatch) -> None:
    from facesr.io import write_image

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    photo = tmp_path / "blank.png"
    write_image(photo, np.full((48, 48, 3), 128, np.uint8))
    assert (
        main(["restore", str(photo), "-o", str(tmp_path / "o"), "--model", "bicubic", "--upscale", "1"]) == 0
    )
    assert (tmp_path / "o" / "blank.png").is_file()


def test_worker_count_leaves_cpus_for_reading() -> None:
    from facesr.batch.pipeline import plan_shape
    from facesr.errors import FacesrError

    kw = dict(cpus_per_worker=1.0, gpus_per_worker=None, photos_per_call=4)
    assert plan_shape({"CPU": 4.0}, "cpu", workers=None, **kw).workers == 3
    assert plan_shape({"CPU": 64.0, "GPU": 8.0}, "cuda", workers=None, **kw).workers == 8
    with pytest.raises(FacesrError, match="leave less than"):
        plan_shape({"CPU": 2.0}, "cpu", workers=2, **kw)


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path: Path) -> None:
    from facesr.errors import FacesrError

    first = OutputFolder(tmp_path / "out")
    first.prepare()
    first.prepare()  # the run that holds the lock may prepare again
    with pytest.raises(FacesrError, match="another facesr restore-batch is writing"):
        OutputFolder(tmp_path / "out").prepare()


def test_the_restore_worker_takes_the_cpu_stage_faces_for_that_photo_only() -> None:
    from facesr.batch.work import _GivenFaces

    calls: list[tuple[int, ...]] = []

    def real(image, detector, opts=None):  # type: ignore[no-untyped-def]
        calls.append(image.shape)
        return ["detected"]

    g = _GivenFaces(real)
    a, b = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    with g.given(a, ["given"]):
        assert g(a.copy(), None) == ["given"]  # the same pixels (restore may copy the array)
        assert g(a, None) == ["detected"]  # a second lookup in the same call detects
    with g.given(a, ["given"]):
        assert g(b, None) == ["detected"]  # other pixels detect
    assert g(a, None) == ["detected"]  # nothing armed outside given()
    assert g.used == 1 and len(calls) == 3


def test_faces_travel_between_stages_as_exact_json() -> None:
    """The CPU stage hands detected faces to the restore workers without pickle, bit for bit."""
    import numpy as np

    from facesr.batch.work import faces_from_bytes, faces_to_bytes
    from facesr.restoration.detect import Face

    rng = np.random.default_rng(0)
    faces = [
        Face(
            index=i,
            box=[float(v) for v in rng.random(4) * 100],
            score=float(rng.random()),
            landmarks=rng.random((5, 2)).astype(dtype),
            eye_distance=float(rng.random() * 30),
            sharpness=float(rng.random() * 1e3),
            extra={"shape_error": 0.123, "outside": 0.0},
        )
        for i, dtype in enumerate((np.float32, np.float64))
    ]
    data = faces_to_bytes(faces)
    assert b"pickle" not in data and data.startswith(b"[")
    back = faces_from_bytes(data)
    for a, b in zip(faces, back, strict=True):
        assert a.landmarks.dtype == b.landmarks.dtype and np.array_equal(a.landmarks, b.landmarks)
        assert (a.index, a.box, a.score, a.eye_distance, a.sharpness, a.extra) == (
            b.index,
            b.box,
            b.score,
            b.eye_distance,
            b.sharpness,
            b.extra,
        )
