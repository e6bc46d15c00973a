"""Helpers for the training tests: a tiny synthetic prepared set and a tiny-model config.

The prepared set follows the data contract (``faces128.npy``, ``faces64.npy``, ``landmarks128.npy``,
``split.npy``, ``manifest.jsonl``, ``report.json``) with drawn faces (skin ellipse, eyes, brows, nose,
mouth on a background) and a hand-built 68-point layout in the 128 frame, so the tests depend on
neither ``../shared/data`` nor ``workspace/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_cpu.yaml"


def mean_shape68() -> np.ndarray:
    """A plausible frontal 68-point layout (iBUG order) in the 128x128 template frame."""
    pts: list[tuple[float, float]] = []
    for t in np.linspace(np.pi, 0, 17):  # jaw 0-16: ear to ear under the chin
        pts.append((64 + 44 * np.cos(t), 56 + 62 * np.sin(t)))
    for x in np.linspace(30, 56, 5):  # left brow 17-21
        pts.append((x, 42 - 3 * np.sin((x - 30) / 26 * np.pi)))
    for x in np.linspace(72, 98, 5):  # right brow 22-26
        pts.append((x, 42 - 3 * np.sin((x - 72) / 26 * np.pi)))
    for y in np.linspace(52, 76, 4):  # nose bridge 27-30
        pts.append((64, y))
    for x in np.linspace(55, 73, 5):  # nostrils 31-35
        pts.append((x, 81 + 2 * (1 - abs(x - 64) / 9)))
    for cx in (44, 84):  # eyes 36-41, 42-47
        for a in np.linspace(np.pi, -np.pi, 7)[:-1]:
            pts.append((cx + 8 * np.cos(a), 55 - 3 * np.sin(a)))
    for a in np.linspace(np.pi, -np.pi, 13)[:-1]:  # outer lips 48-59
        pts.append((64 + 18 * np.cos(a), 98 - 7 * np.sin(a)))
    for a in np.linspace(np.pi, -np.pi, 9)[:-1]:  # inner lips 60-67
        pts.append((64 + 12 * np.cos(a), 98 - 3 * np.sin(a)))
    out = np.array(pts, dtype=np.float32)
    assert out.shape == (68, 2)
    return out


def make_prepared(root: Path, n: int = 24, n_test: int = 4, seed: int = 0) -> Path:
    """Write a synthetic prepared set of ``n`` faces (the last ``n_test`` in the test split)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    base = mean_shape68()
    faces, lms = [], []
    for _ in range(n):
        dx, dy = rng.uniform(-3, 3, 2)
        lm = base + np.array([dx, dy], np.float32)
        img = np.empty((128, 128, 3), np.float32)
        img[:] = rng.uniform(20, 120, 3)
        skin = rng.uniform(120, 230, 3)
        inside = ((xx - 64 - dx) / 46) ** 2 + ((yy - 70 - dy) / 58) ** 2 < 1
        img[inside] = skin
        for cx, cy in (lm[36:42].mean(0), lm[42:48].mean(0)):
            img[((xx - cx) / 7) ** 2 + ((yy - cy) / 3.5) ** 2 < 1] = rng.uniform(10, 60)
        for a, b in ((17, 22), (22, 27)):
            for x, y in lm[a:b]:
                img[(np.abs(xx - x) < 3) & (np.abs(yy - y) < 1.5)] = skin * 0.4
        mx, my = lm[48:60].mean(0)
        img[((xx - mx) / 17) ** 2 + ((yy - my) / 5) ** 2 < 1] = skin * np.array([0.9, 0.5, 0.5])
        img[(np.abs(xx - 64 - dx) < 2) & (yy > lm[27, 1]) & (yy < lm[33, 1])] = skin * 0.8
        img += rng.normal(0, 3, img.shape)
        faces.append(np.clip(img, 0, 255).astype(np.uint8))
        lms.append(lm)
    f128 = np.stack(faces)
    f64 = f128.reshape(n, 64, 2, 64, 2, 3).mean((2, 4)).round().astype(np.uint8)
    split = np.zeros(n, np.uint8)
    split[n - n_test :] = 1
    np.save(root / "faces128.npy", f128)
    np.save(root / "faces64.npy", f64)
    np.save(root / "landmarks128.npy", np.stack(lms).astype(np.float32))
    np.save(root / "split.npy", split)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            rec = {
                "path": f"synthetic/{i:03d}.png",
                "sha256": f"{i:064x}",
                "status": "ok",
                "reason": None,
                "split": "test" if split[i] else "train",
                "row": i,
            }
            fh.write(json.dumps(rec) + "\n")
    (root / "report.json").write_text(json.dumps({"synthetic": True, "n": n}))
    make_mask_templates(root.parent)
    return root


def make_mask_templates(data_root: Path) -> Path:
    """A one-template MaskTheFace folder (``masktheface/masks/masks.cfg``, template, texture)."""
    from PIL import Image

    masks = data_root / "masktheface" / "masks"
    (masks / "templates").mkdir(parents=True, exist_ok=True)
    (masks / "textures" / "plain").mkdir(parents=True, exist_ok=True)
    rgba = np.zeros((48, 96, 4), np.uint8)
    yy, xx = np.mgrid[0:48, 0:96]
    inside = ((xx - 48) / 47.0) ** 2 + ((yy - 24) / 23.0) ** 2 < 1
    rgba[inside] = (90, 160, 220, 255)
    Image.fromarray(rgba, "RGBA").save(masks / "templates" / "plain.png")
    tex = (np.random.default_rng(1).uniform(0, 255, (16, 16, 3))).astype(np.uint8)
    Image.fromarray(tex).save(masks / "textures" / "plain" / "noise.png")
    (masks / "masks.cfg").write_text(
        "[plain]\ntemplate: masks/templates/plain.png\nmask_a: 2, 10\nmask_b: 48, 1\nmask_c: 93, 10\n"
        "mask_d: 8, 38\nmask_e: 48, 46\nmask_f: 88, 38\n"
    )
    return data_root


def tiny_overrides(prepared: Path, out_dir: Path, **extra: object) -> list[str]:
    """Overrides that point the tiny config at a prepared set (with its masks beside it) and a run folder."""
    items = [f"data.prepared={prepared}", f"data.root={prepared.parent}", f"run.out_dir={out_dir}"]
    items += [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]
    return items


def facesr_cmd(*args: str) -> list[str]:
    """The facesr CLI as a subprocess command line (the installed entry point's module)."""
    return [sys.executable, "-m", "facesr.cli", *args]


def env_1thread() -> dict[str, str]:
    """Environment for child processes: one thread each (the machine has 2 shared cores)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``facesr ARGS`` in a child process and return the completed process."""
    return subprocess.run(
        facesr_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env_1thread(), cwd=REPO
    )


def assert_chain_holds_parts(den_run: Path, sr_run: Path, chained: Path) -> None:
    """A ``combine-two-stage`` file holds exactly the two trained parts: the denoiser under ``denoiser.``
    and the SR-module file's tensors as they are (shared by the paper and LR-space two-stage tests)."""
    import torch
    from safetensors.torch import load_file

    d, s, c = (
        load_file(str(p)) for p in (den_run / "denoiser.safetensors", sr_run / "weights.safetensors", chained)
    )
    assert set(c) == {f"denoiser.{k}" for k in d} | set(s)
    assert all(torch.equal(c[f"denoiser.{k}"], v) for k, v in d.items())
    assert all(torch.equal(c[k], v) for k, v in s.items())
