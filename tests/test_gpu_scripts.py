"""The GPU tools (facesr gpu ...) on CPU: pack -> unpack re-creates the prepared faces, sizes fit the device
tool's limits, and (slow) the three session commands run end to end with tiny configs and a fake $OUT."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from train_helpers import make_mask_templates

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "data"
MIB = 2**20


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _script(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    p = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env or _env(), cwd=REPO, timeout=timeout
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'This machine': 4 fixture JPEGs prepared with dlib, synthetic masks, a frozen benchmark built."""
    pytest.importorskip("dlib")
    from facesr.data.benchmarks import build_benchmark
    from facesr.data.prepare import prepare

    root = tmp_path_factory.mktemp("here")
    shutil.copytree(FIX / "utk", root / "src")
    prepare(root / "src", root / "prepared" / "utkface", workers=1, n_test=1, progress=False)
    make_mask_templates(root / "data")
    build_benchmark("utk-mask-x4", root / "prepared", root / "benchmarks", root / "data", progress=False)
    return root


def _members(files: list[Path]) -> set[str]:
    out: set[str] = set()
    for f in files:
        with tarfile.open(f) as tar:
            out |= set(tar.getnames())
    return out


def _pack(here: Path, prepared: Path, out: Path, *more: str) -> dict:
    stdout = _script(
        "-m",
        "facesr.cli",
        "gpu",
        "pack",
        f"--prepared={prepared}",
        f"--data={here / 'data'}",
        f"--source={here / 'src'}",
        f"--benchmarks={here / 'benchmarks'}",
        f"--out={out}",
        "--tree-bytes=0",
        *more,
    )
    return json.loads(stdout.strip().splitlines()[-1])


def test_pack_then_unpack_recreates_the_prepared_set(here: Path, tmp_path: Path) -> None:
    from facesr.data.prepared import PreparedSet
    from facesr.gpu.unpack import unpack

    summary = _pack(here, here / "prepared" / "utkface", tmp_path / "gpu", "--check=4")
    assert summary["faces"] == 4 and summary["landmarks128_exact"] == "4/4"
    report = unpack(tmp_path / "gpu", tmp_path / "dev" / "utkface", workers=1)
    assert report["check"]["faces128_exact"] == "4/4" and report["check"]["reference_faces_max_abs_diff"] == 0
    a, b = PreparedSet.load(here / "prepared" / "utkface"), PreparedSet.load(tmp_path / "dev" / "utkface")
    assert np.array_equal(a.faces128, b.faces128) and np.array_equal(a.faces64, b.faces64)
    assert np.array_equal(a.landmarks128, b.landmarks128) and np.array_equal(a.split, b.split)
    # The benchmark rebuilt from the re-created set is the frozen one, image for image.
    from facesr.data.benchmarks import build_benchmark
    from facesr.gpu.pack import bench_fingerprints

    build_benchmark("utk-mask-x4", tmp_path / "dev", tmp_path / "bench", tmp_path / "gpu", progress=False)
    want = dict(np.load(tmp_path / "gpu" / "bench_fingerprints.npz"))
    have = bench_fingerprints(tmp_path / "bench")
    assert want.keys() == have.keys() and all(np.array_equal(want[k], have[k]) for k in want)
    meta_here = json.loads((here / "benchmarks" / "utk-mask-x4" / "meta.json").read_text())
    assert json.loads((tmp_path / "bench" / "utk-mask-x4" / "meta.json").read_text()) == meta_here


def test_pack_detects_again_for_an_older_prepared_set(here: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(here / "prepared" / "utkface", old)
    (old / "landmarks_src.npy").unlink()
    recs = [json.loads(x) for x in (old / "manifest.jsonl").read_text().splitlines()]
    want = {r["path"]: np.array(r.pop("matrix")) for r in recs if r.pop("matrix64", None) is not None}
    (old / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    _pack(here, old, tmp_path / "gpu", "--check=4")
    meta = np.load(tmp_path / "gpu" / "utkface_meta.npz")
    for path, m in zip(meta["paths"], meta["m128"], strict=True):
        assert np.array_equal(m, want[str(path)])  # dlib is deterministic: the same matrices


def test_unpack_refuses_faces_that_differ(here: Path, tmp_path: Path) -> None:
    from facesr.gpu.pack import JPEGS, read_jpegs, write_jpegs
    from facesr.gpu.unpack import unpack

    _pack(here, here / "prepared" / "utkface", tmp_path / "gpu")
    faces = read_jpegs(tmp_path / "gpu" / JPEGS)
    write_jpegs(tmp_path / "gpu" / JPEGS, [faces[1], *faces[1:]])  # another photo in the first one's place
    with pytest.raises(SystemExit, match="differ from the prepared set"):
        unpack(tmp_path / "gpu", tmp_path / "dev", workers=1)


def test_bundle_stays_within_the_device_return_limits(tmp_path: Path) -> None:
    from facesr.gpu import session as gpu_session

    args = argparse.Namespace(packed=str(tmp_path / "gpu"), configs=str(REPO / "configs"))
    os.environ["FACESR_WORKSPACE"] = str(tmp_path / "ws")
    try:
        s = gpu_session.Session(args)
    finally:
        del os.environ["FACESR_WORKSPACE"]
    names = [f"r{i}" for i in range(12)]
    rng = np.random.default_rng(0)
    for n in names:
        run = s.run_dir(n)
        run.mkdir(parents=True)
        (run / "weights.safetensors").write_bytes(rng.bytes(6 * MIB))
        (run / "log.jsonl").write_text('{"step": 1}\n')
    out = tmp_path / "OUT"
    summary: dict = {}
    gpu_session.bundle(s, names, out, summary, weights=True)
    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f.name) for f in files)
    assert all(f.stat().st_size <= 16 * MIB for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * MIB
    packed = _members([f for f in files if f.suffix == ".tar"])
    left = summary["bundle"]["left_out"]
    assert len(left) > 0 and set(left).isdisjoint(packed)  # 72 MiB cannot come back: listed, not lost
    assert all(f"runs/{n}/log.jsonl" in packed for n in names)  # small files always fit


def test_real_pack_plan_fits_the_device_limit(shared_data: Path, tmp_path: Path) -> None:
    """With the real UTKFace manifest: the planned pack plus the working tree fits 64 MiB, and the
    pre-sized mask files give the synthesiser exactly what the originals give."""
    import torch

    from facesr.data.masks import MaskSynthesizer

    prepared = REPO / "workspace" / "prepared" / "utkface"
    if not (prepared / "manifest.jsonl").is_file():
        pytest.skip("workspace/prepared/utkface not built (facesr prepare utkface)")
    stdout = _script(
        "-m",
        "facesr.cli",
        "gpu",
        "pack",
        "--plan",
        f"--prepared={prepared}",
        f"--data={shared_data}",
        f"--source={shared_data / 'utkface'}",
        f"--out={tmp_path / 'gpu'}",
        f"--benchmarks={tmp_path / 'none'}",
    )
    plan = json.loads(stdout.strip().splitlines()[-1])
    # train faces: what the tree leaves of the 64 MiB; 4,201 with a 36 MiB tree, about 3,800 since the x2
    # composite (1.9 MiB) was shipped in session 9: a floor of 3,500 keeps a real training set on the device
    assert plan["with_tree_MiB_est"] <= 64 and plan["test"] == 1000 and plan["train"] >= 3500, plan
    a, b = MaskSynthesizer(shared_data), MaskSynthesizer(tmp_path / "gpu")
    assert a.names == b.names and a.texture_names == b.texture_names
    assert torch.equal(a.templates, b.templates) and torch.equal(a.anchors, b.anchors)
    assert torch.equal(a.textures, b.textures)


@pytest.mark.slow
def test_three_session_commands_end_to_end(here: Path, tmp_path: Path) -> None:
    """pack -> start (unpack, benchmark, calibration, runs) -> continue -> finish (eval, bundle) on CPU."""
    _pack(here, here / "prepared" / "utkface", tmp_path / "gpu", "--check=4")
    base = yaml.safe_load((REPO / "configs" / "tiny_cpu.yaml").read_text())
    configs = tmp_path / "configs"
    configs.mkdir()
    names = {"jdsr_tiny_x4": "jdsr", "two_stage_denoiser_tiny_x4": "two_stage_denoiser"}
    names["two_stage_sr_tiny_x4"] = "two_stage_sr"
    for name, recipe in names.items():
        cfg = yaml.safe_load(yaml.safe_dump(base))
        cfg["run"]["name"] = name
        cfg["recipe"] = {"name": recipe, "adversarial": False}
        (configs / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    env = _env() | {"FACESR_WORKSPACE": str(tmp_path / "dev_ws"), "PYTHON": sys.executable}
    common = [
        f"--configs={configs}",
        f"--runs={','.join(names)}",
        f"--packed={tmp_path / 'gpu'}",
        "--train-minutes=1.1",
        "--calib-seconds=6",
        "--launch-seconds=8",
        "--val-faces=1",
        "--val-points=4",
        "--report-every=20",
    ]

    def phase(name: str, minutes: float, *more: str) -> Path:
        out = tmp_path / f"OUT_{name}"
        p = subprocess.run(
            [
                "bash",
                "scripts/gpu_session.sh",
                name,
                *common,
                f"--out={out}",
                f"--cmd-minutes={minutes}",
                *more,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=400,
        )
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        files = sorted(out.iterdir())
        assert len(files) <= 8 and all(f.stat().st_size <= 16 * MIB for f in files)
        assert sum(f.stat().st_size for f in files) <= 64 * MIB
        return out

    phase("start", 0.7)
    phase("continue", 0.5)
    out = phase("finish", 4.0, "--eval-reserve=60")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmarks"]["utk-mask-x4"]["lr"] == "1/1 identical", summary["benchmarks"]
    assert all(e["rc"] == 0 for e in summary["eval"]) and len(summary["eval"]) == 5
    assert all(r["exit"] == "0" for r in summary["progress"]), summary["progress"]
    val = summary["validation"]
    assert {"jdsr-tiny-x4-gpu", "two-stage-tiny-x4-gpu", "two-stage-sr-tiny-x4-gpu"} <= val.keys()
    assert "ttq_jdsr_tiny_x4" in val
    members = _members(sorted(out.glob("bundle_*.tar")))
    for n in names:
        assert f"runs/{n}/log.jsonl" in members and f"runs/{n}/loss_curve.png" in members
    assert "runs/jdsr_tiny_x4/weights.safetensors" in members
    assert "runs/two_stage_denoiser_tiny_x4/denoiser.safetensors" in members
    assert "results/utk-mask-x4__two-stage-tiny-x4-gpu.json" in members
    assert "results/utk-mask-x4__jdsr-tiny-x4-gpu__clean.json" in members
    # The weights that come back load and restore (fp16 safetensors).
    from facesr.zoo import load_model

    back = tmp_path / "back"
    for f in out.glob("bundle_*.tar"):
        with tarfile.open(f) as tar:
            tar.extractall(back, filter="data")
    net = load_model(back / "runs" / "jdsr_tiny_x4" / "weights.safetensors", device="cpu")
    assert net.scale == 4
    # A mid-run snapshot (continue) is the loop's own export of the checkpoint's EMA, bit for bit.
    from safetensors.torch import load_file

    from facesr.gpu import session as gpu_session

    run = tmp_path / "dev_ws" / "runs" / "jdsr_tiny_x4"
    snap = load_file(str(gpu_session.export_ema(run, tmp_path / "snap")))
    final = load_file(str(run / "weights.safetensors"))
    assert snap.keys() == final.keys() and all(torch.equal(snap[k], final[k]) for k in snap)
