"""facesr.eval.runner / report / CLI on a small synthetic benchmark stand-in (no data folder needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.cli import main
from facesr.errors import DataError, FacesrError
from facesr.eval.report import generate
from facesr.eval.results import load_results, write_result
from facesr.eval.runner import EvalSet, evaluate
from facesr.eval.tables import PAPER_REFERENCE
from facesr.io import write_image
from facesr.pixels import quantise
from facesr.zoo import load_model


class FakeFaceID:
    """Deterministic stand-in for the identity network: pooled pixels through a fixed projection."""

    def __init__(self) -> None:
        self.proj = torch.randn(3 * 8 * 8, 128, generator=torch.Generator().manual_seed(0))

    def embed(self, img01: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional.adaptive_avg_pool2d(img01.float(), 8).flatten(1) - 0.5
        return torch.nn.functional.normalize(f @ self.proj, dim=1)


def make_set(name: str = "utk-mask-x4", scale: int = 4, n: int = 12, labelled: bool = True) -> EvalSet:
    """Smooth random 'faces': one low-frequency pattern per identity (3) plus a little per-image noise;
    LR by area down-sampling, plus a fake mask over the lower half."""
    g = torch.Generator().manual_seed(7)
    ident = torch.rand(3, 3, 16, 16, generator=g)
    base = ident[torch.arange(n) % 3] + 0.05 * torch.randn(n, 3, 16, 16, generator=g)
    hr_t = torch.nn.functional.interpolate(base, size=128, mode="bicubic", align_corners=False).clamp(0, 1)
    lr_clean_t = torch.nn.functional.avg_pool2d(hr_t, scale)
    lr_t = lr_clean_t.clone()
    lr_t[:, :, lr_t.shape[2] // 2 :, :] = 0.3  # the 'mask'
    return EvalSet(
        name=name,
        scale=scale,
        ids=[f"{i:05d}" for i in range(n)],
        lr=quantise(lr_t),
        lr_clean=quantise(lr_clean_t),
        hr=quantise(hr_t),
        labels=[str(i % 3) for i in range(n)] if labelled else None,
        meta={"seed": 1},
    )


def test_evaluate_bicubic_and_images_folder_agree(tmp_path: Path) -> None:
    es = make_set()
    model = load_model("bicubic", scale=4)
    res = evaluate(
        es,
        restorer=model,
        model={"name": "bicubic-x4", "kind": "baseline"},
        batch_size=5,
        face_id=FakeFaceID(),
        progress=False,
    )
    assert res["format"] == "facesr-eval/2" and len(res["per_image"]) == 12
    assert res["protocol"]["complete"] and res["protocol"]["crop"].startswith("none")
    assert set(res["metrics"]) == {"psnr", "ssim", "psnr_y", "ssim_y", "identity", "frd"}
    assert res["metrics"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in res["per_image"]]), abs=1e-5)
    assert 10 < res["metrics"]["psnr"] < 40  # masked input: far from perfect, far from garbage
    v = res["verification"]
    assert v["protocol"]["n_genuine"] == 3 * 6  # 3 identities x C(4, 2)
    assert v["hr_vs_hr"]["eer"] == 0.0  # same-identity faces differ only by slight noise
    # the same outputs saved as PNGs score identically (outputs are rounded to 8 bits in both paths)
    out = tmp_path / "pngs"
    with torch.inference_mode():
        sr = quantise(model(torch.from_numpy(es.lr).permute(0, 3, 1, 2).float() / 255))
    for i, img in zip(es.ids, sr, strict=True):
        write_image(out / f"{i}.png", img)
    res2 = evaluate(es, images=out, model={"name": "x", "kind": "peer"}, face_id=FakeFaceID(), progress=False)
    for k, val in res["metrics"].items():  # pixels exact; embeddings to float32 batch-size noise
        assert res2["metrics"][k] == pytest.approx(val, abs=1e-12 if k in ("psnr", "ssim") else 1e-6), k
    (out / "00003.png").unlink()
    with pytest.raises(DataError, match=r"00003\.png is missing"):
        evaluate(es, images=out, model={"name": "x"}, face_id=FakeFaceID(), progress=False)


def test_clean_input_and_limit(tmp_path: Path) -> None:
    es = make_set(labelled=False)
    kw = {"restorer": load_model("bicubic", scale=4), "face_id": FakeFaceID(), "progress": False}
    masked = evaluate(es, model={"name": "bicubic-x4"}, **kw)
    clean = evaluate(es, model={"name": "bicubic-x4"}, input_kind="clean", **kw)
    assert clean["metrics"]["psnr"] > masked["metrics"]["psnr"] + 1.0
    assert masked["verification"] is None
    part = evaluate(es, model={"name": "bicubic-x4"}, limit=5, **kw)
    assert part["protocol"]["n_faces"] == 5 and not part["protocol"]["complete"]
    # a partial run gets its own file and is shown only until a complete run of the same model exists
    assert write_result(part, tmp_path).name == "utk-mask-x4__bicubic-x4__partial5.json"
    generate(tmp_path, tmp_path / "R.md", None)
    assert "**Partial runs**" in (tmp_path / "R.md").read_text()
    write_result(masked, tmp_path)
    generate(tmp_path, tmp_path / "R.md", None)
    text = (tmp_path / "R.md").read_text()
    assert "Partial" not in text and text.count("| bicubic-x4 | masked LR |") == 1
    with pytest.raises(FacesrError, match="--limit"):
        evaluate(es, model={"name": "b"}, limit=0, **kw)
    with pytest.raises(DataError, match="uint8"):
        EvalSet(name="x", scale=4, ids=["a"], lr=es.lr[:1], lr_clean=None, hr=es.hr[:1].astype(np.float32))


def _write_results(folder: Path) -> None:
    for bench, scale in (("utk-mask-x4", 4), ("celeba10k-x8", 8)):
        es = make_set(bench, scale)
        for name, kind, inp in (("bicubic", "baseline", "masked"), ("esrgan-thick", "peer", "clean")):
            res = evaluate(
                es,
                restorer=load_model("bicubic", scale=scale),
                input_kind=inp,
                model={"name": f"{name}-x{scale}", "kind": kind},
                face_id=FakeFaceID(),
                progress=False,
                command=f"facesr eval --model bicubic --benchmark {bench}",
            )
            write_result(res, folder)


def test_report_is_deterministic(tmp_path: Path) -> None:
    res_dir = tmp_path / "results"
    _write_results(res_dir)
    docs = load_results(res_dir)
    assert len(docs) == 4 and all(d["_file"].endswith(".json") for d in docs)
    md1, grids = generate(res_dir, tmp_path / "R1.md", tmp_path / "img")
    first = md1.read_bytes()
    grid_bytes = {g.name: g.read_bytes() for g in grids}
    md2, _ = generate(res_dir, tmp_path / "R1.md", tmp_path / "img")
    assert md2.read_bytes() == first
    assert {g.name: g.read_bytes() for g in grids} == grid_bytes
    # a copy of the JSON files (new mtimes, new folder) gives the same report
    copy = tmp_path / "copy"
    shutil.copytree(res_dir, copy)
    generate(copy, tmp_path / "R2.md", tmp_path / "img2")
    assert (tmp_path / "R2.md").read_text().replace("img2/", "img/") == first.decode()
    text = first.decode()
    assert "## UTK-Mask x4" in text and "## CelebA-10k x8" in text
    assert f"{PAPER_REFERENCE[4]['psnr']:.2f}" in text and "different data set" in text
    assert "unmasked LR (best case)" in text and "(peer)" in text and "clean HR (ceiling)" in text
    assert "FID" not in text and "different versions" not in text
    # a result computed on another version of the benchmark is flagged, not silently mixed in
    doc = json.loads((copy / "utk-mask-x4__bicubic-x4.json").read_text())
    doc["protocol"]["benchmark_checksum"] = "0" * 64
    (copy / "utk-mask-x4__bicubic-x4.json").write_text(json.dumps(doc))
    generate(copy, tmp_path / "R3.md", None)
    assert "different versions of this benchmark" in (tmp_path / "R3.md").read_text()
    assert sorted(g.name for g in grids) == ["grid_celeba10k-x8.png", "grid_utk-mask-x4.png"]
    assert all(g.stat().st_size < 1_000_000 for g in grids)


def test_cli_eval_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import facesr.eval.runner as runner

    monkeypatch.setattr(runner, "load_eval_set", lambda name, root=None: make_set(name, int(name[-1])))
    out = tmp_path / "res"
    rc = main(
        [
            "eval",
            "--model",
            "bicubic",
            "--benchmark",
            "utk-mask-x8",
            "--out",
            str(out),
            "--no-identity",
            "--device",
            "cpu",
            "--batch-size",
            "4",
        ]
    )
    assert rc == 0
    doc = json.loads((out / "utk-mask-x8__bicubic-x8.json").read_text())
    assert doc["model"]["kind"] == "baseline" and doc["protocol"]["scale"] == 8
    assert "identity" not in doc["metrics"] and doc["run"]["command"].startswith("facesr ")
    assert "| bicubic-x8 | masked LR |" in capsys.readouterr().out
    rc = main(["report", "--results", str(out), "--out", str(tmp_path / "R.md"), "--grid-dir", str(tmp_path)])
    assert rc == 0 and "bicubic-x8" in (tmp_path / "R.md").read_text()
    # a peer's saved outputs through the CLI: same pixels -> same numbers, row kind "peer"
    es = make_set("utk-mask-x8", 8)
    pngs = tmp_path / "pngs"
    with torch.inference_mode():
        sr = quantise(
            load_model("bicubic", scale=8)(torch.from_numpy(es.lr).permute(0, 3, 1, 2).float() / 255)
        )
    for i, img in zip(es.ids, sr, strict=True):
        write_image(pngs / f"{i}.png", img)
    args = ["eval", "--images", str(pngs), "--name", "p", "--benchmark", "utk-mask-x8", "--out", str(out)]
    assert main([*args, "--no-identity"]) == 0
    peer = json.loads((out / "utk-mask-x8__p.json").read_text())
    assert peer["model"]["kind"] == "peer" and peer["metrics"] == doc["metrics"]
    assert main(["eval", "--images", str(pngs), "--benchmark", "utk-mask-x8"]) == 2  # no --name
    assert main(["eval", "--benchmark", "utk-mask-x4"]) == 2
    assert main(["eval", "--model", "nonexistent-model", "--benchmark", "utk-mask-x4", "--no-identity"]) == 2
    err = capsys.readouterr().err
    assert "exactly one of --model or --images" in err and "unknown model" in err and "needs --name" in err
    (out / "bad.json").write_text("{}")
    assert main(["report", "--results", str(out), "--out", str(tmp_path / "R.md")]) == 2
    assert main(["report", "--results", str(tmp_path / "nope")]) == 2


def test_hr_embedding_cache_roundtrip(tmp_path: Path) -> None:
    from facesr.eval.runner import _hr_cache_path, _load_hr_cache, _save_hr_cache

    es = make_set()
    path = _hr_cache_path(es, tmp_path, None)
    assert path is not None and path.name.startswith("hr_emb_utk-mask-x4_")
    assert _hr_cache_path(es, tmp_path, FakeFaceID()) is None  # stand-in networks are never cached
    emb = torch.nn.functional.normalize(torch.randn(12, 128), dim=1)
    rows = np.arange(12)[::-1].copy()
    _save_hr_cache(path, emb, rows)
    back = _load_hr_cache(path, 12)
    assert back is not None and torch.equal(back[rows], emb)
    assert _load_hr_cache(path, 13) is None  # wrong size: ignored, recomputed


def test_result_file_rounds_only_the_per_image_values() -> None:
    """Per-image floats are written column-wise to PER_IMAGE_DIGITS significant digits; the means are not
    touched, reading gives the records back, and re-serialising a written file changes nothing
    (scripts/reserialise_results.py relies on it)."""
    from facesr.eval.results import FORMAT, PER_IMAGE_DIGITS, dumps_result, loads_result

    doc = {
        "format": FORMAT,
        "metrics": {"psnr": 21.226096967269914},
        "per_image": [
            {"id": "00000", "psnr": 21.226096967269914, "ssim": 0.0123456789, "n": 3, "x": None},
            {"id": "00001", "psnr": 30.0, "ssim": 0.5, "n": 4, "x": None},
        ],
    }
    text = dumps_result(doc)
    back = loads_result(text)
    assert PER_IMAGE_DIGITS == 6 and back["metrics"] == doc["metrics"]
    assert back["per_image"] == [
        {"id": "00000", "psnr": 21.2261, "ssim": 0.0123457, "n": 3, "x": None},
        {"id": "00001", "psnr": 30.0, "ssim": 0.5, "n": 4, "x": None},
    ]
    assert '\n  "psnr": [21.2261,30.0],\n' in text
    assert json.loads(text)["per_image"]["id"] == ["00000", "00001"]
    assert dumps_result(back) == text
