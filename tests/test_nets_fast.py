"""jdsr-fast and RLFN: the general-SR weights load with every key, the start points are what the docs say,
shapes for x2/x4/x8, ONNX parity, and warm starts that accumulate training totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from facesr.errors import ModelError
from facesr.nets.fast import SCALES, JDSRFast, SROnlyFast, build_jdsr_fast, init_from_general_sr
from facesr.nets.rlfn import (
    RLFN,
    body_state,
    load_strict,
    pretrained_path,
    read_pretrained_rlfn,
    shrink_upsampler,
)

PRETRAINED = pretrained_path()
needs_pretrained = pytest.mark.skipif(
    not PRETRAINED.is_file(), reason=f"general-SR weights not found at {PRETRAINED} (../shared/pretrained)"
)


@needs_pretrained
def test_pretrained_rlfn_loads_with_every_key_used() -> None:
    original = read_pretrained_rlfn()
    net = RLFN(4)
    body, up = body_state(original)
    load_strict(net.body, body, "body")  # strict: a missing or unexpected key is an error
    load_strict(net.upsampler, up, "upsampler")
    ours = {f"body.{k}": v for k, v in body.items()} | {f"upsampler.{k}": v for k, v in up.items()}
    assert set(ours) == set(net.state_dict())
    assert sum(v.numel() for v in original.values()) == 317_218  # as ../shared/pretrained/README.md says
    # a general-SR network beats bicubic on a smooth synthetic image (sanity: the weights are not noise)
    yy, xx = torch.meshgrid(torch.linspace(0, 6, 128), torch.linspace(0, 6, 128), indexing="ij")
    hr = torch.stack([torch.sin(xx) * 0.4 + 0.5, torch.cos(yy) * 0.4 + 0.5, torch.sin(xx + yy) * 0.4 + 0.5])[
        None
    ]
    lr = F.interpolate(hr, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
    with torch.no_grad():
        sr = net(lr).clamp(0, 1)
    bic = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    assert F.mse_loss(sr, hr) < F.mse_loss(bic, hr)


def test_wrong_weights_are_one_line_model_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"conv_1.weight": torch.zeros(8, 3, 3, 3)}, str(bad))
    with pytest.raises(ModelError, match="do not fit"):
        init_from_general_sr(JDSRFast(4), str(bad))
    with pytest.raises(ModelError, match="not found"):
        read_pretrained_rlfn(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("scale", SCALES)
def test_shapes_and_identity_denoiser_at_start(scale: int) -> None:
    net = JDSRFast(scale).eval()
    x = torch.rand(2, 3, 128 // scale, 128 // scale)
    with torch.no_grad():
        out = net(x)
    assert out["sr"].shape == (2, 3, 128, 128)
    assert out["noise_map"].shape == x.shape and bool((out["noise_map"] >= 0).all())
    torch.testing.assert_close(out["denoised"], x)  # zero-initialised output conv: the identity


def test_x2_upsampler_starts_as_the_box_downsampled_x4_output() -> None:
    torch.manual_seed(0)
    conv4 = torch.nn.Conv2d(46, 48, 3, padding=1)
    w, b = shrink_upsampler(conv4.weight.data, conv4.bias.data, 4, 2)
    conv2 = torch.nn.Conv2d(46, 12, 3, padding=1)
    conv2.weight.data, conv2.bias.data = w, b
    feat = torch.randn(1, 46, 8, 8)
    x4 = F.pixel_shuffle(conv4(feat), 4)
    x2 = F.pixel_shuffle(conv2(feat), 2)
    torch.testing.assert_close(x2, F.avg_pool2d(x4, 2), atol=1e-5, rtol=1e-5)


@needs_pretrained
def test_x8_starts_as_pretrained_x4_then_bicubic_x2() -> None:
    x8 = JDSRFast(8).eval()
    init_from_general_sr(x8)
    ref = RLFN(4).eval()
    body, up = body_state(read_pretrained_rlfn())
    load_strict(ref.body, body, "body")
    load_strict(ref.upsampler, up, "upsampler")
    lr = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        want = F.interpolate(ref(lr), scale_factor=2, mode="bicubic", align_corners=False)
        got = x8(lr)["sr"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_sr_only_ablation_has_no_denoiser() -> None:
    net = SROnlyFast(4)
    assert not any(k.startswith("denoiser") for k in net.state_dict())
    assert net(torch.rand(1, 3, 32, 32))["sr"].shape == (1, 3, 128, 128)


@pytest.mark.parametrize(("scale", "unet_up"), [(2, "transpose"), (8, "transpose"), (4, "bilinear")])
def test_onnx_matches_pytorch(tmp_path: Path, scale: int, unet_up: str) -> None:
    pytest.importorskip("onnxruntime")
    from facesr.restoration.onnx import export_onnx, verify_onnx
    from facesr.zoo import Restorer

    net = build_jdsr_fast(scale=scale, unet_up=unet_up).eval()
    torch.nn.init.normal_(net.denoiser.unet.out.weight, std=0.1)  # else the denoiser is the identity
    restorer = Restorer(net, name="t", scale=scale, output_key="sr")
    path = tmp_path / "fast.onnx"
    export_onnx(restorer, path)
    assert verify_onnx(restorer, path, batch=2) < 1e-4


def test_zoo_roundtrip_keeps_every_key(tmp_path: Path) -> None:
    from facesr.zoo import load_model, save_weights

    net = JDSRFast(4)
    path = tmp_path / "w.safetensors"
    save_weights(net, path, arch="jdsr_fast", args={"size": "fast", "scale": 4}, scale=4, output_key="sr")
    model = load_model(path)
    assert model.scale == 4 and model.lr_size == 32
    assert set(model.net.state_dict()) == set(net.state_dict())


# -- warm start through the training loop ------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train_helpers import make_prepared

    return make_prepared(tmp_path_factory.mktemp("prep") / "tiny")


def _fast_cfg(prepared: Path, out: Path, *more: str):
    from facesr.train.config import load_train_config
    from train_helpers import TINY, tiny_overrides

    fast = [
        "model.arch=jdsr_fast",
        "model.size=fast",
        "model.overrides={}",
        "loss.sr_prior=0",
        "run.steps=3",
        "run.log_every=1",
        "run.threads=1",
        "recipe.adversarial=true",
        "recipe.adv_start_step=0",
        "data.degradation.enabled=true",
    ]
    return load_train_config(TINY, [*tiny_overrides(prepared, out), *fast, *more])


def _totals(path: Path) -> dict[str, float]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads((fh.metadata() or {})["facesr.totals"])


@pytest.mark.slow
def test_warm_start_continues_generator_and_critic_and_adds_up_totals(prepared: Path, tmp_path: Path) -> None:
    from facesr.train.loop import load_checkpoint, train

    first = train(_fast_cfg(prepared, tmp_path / "a"))
    t1 = _totals(first / "weights.safetensors")
    assert t1["steps"] == 3 and t1["runs"] == 1 and t1["faces_seen"] == 12
    assert (first / "critic.safetensors").is_file()
    second_cfg = _fast_cfg(
        prepared,
        tmp_path / "b",
        f"model.init_from={first / 'weights.safetensors'}",
        f"model.critic_init_from={first / 'critic.safetensors'}",
        "run.stop_step=1",
        "optim.lr=1e-12",
        "optim.d_lr=1e-12",
    )
    second = train(second_cfg)
    t2 = _totals(second / "weights.safetensors")
    assert t2["steps"] == 4 and t2["runs"] == 2 and t2["faces_seen"] == 16
    assert t2["cpu_hours"] >= t1["cpu_hours"]
    # with a vanishing learning rate, the second run's generator and critic are the first run's weights
    from facesr.zoo import load_model

    g1 = load_model(first / "weights.safetensors").net.state_dict()
    state = load_checkpoint(second / "ckpt" / "last.pt")
    for k, v in state["nets"]["G"].items():
        torch.testing.assert_close(v.float(), g1[k].float(), atol=2e-3, rtol=1e-2)
    d1 = load_model_critic(first / "critic.safetensors")
    for k, v in state["nets"]["D"].items():
        torch.testing.assert_close(v.float(), d1[k].float(), atol=2e-3, rtol=1e-2)


def load_model_critic(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_warm_start_refuses_another_architecture(prepared: Path, tmp_path: Path) -> None:
    from facesr.errors import ConfigError
    from facesr.train.loop import train
    from facesr.zoo import save_weights

    other = tmp_path / "other.safetensors"
    save_weights(SROnlyFast(4), other, arch="jdsr_fast_sr_only", args={"scale": 4}, scale=4)
    with pytest.raises(ConfigError, match="not 'jdsr_fast'"):
        train(_fast_cfg(prepared, tmp_path / "c", f"model.init_from={other}"))


def test_fast_two_stage_parts_chain_into_a_jdsr_fast_file(prepared: Path, tmp_path: Path) -> None:
    """The paper's two-stage baseline for the LR-space family: both parts chain into plain ``jdsr_fast``."""
    from facesr.train.loop import train
    from facesr.train.recipes.jdsr import combine_two_stage
    from facesr.zoo import load_model
    from train_helpers import assert_chain_holds_parts

    common = ["recipe.adversarial=false", "run.steps=2", "run.tensorboard=false"]
    den = train(
        _fast_cfg(
            prepared, tmp_path / "den", *common, "recipe.name=two_stage_denoiser", "model.init_from=null"
        )
    )
    sr = train(_fast_cfg(prepared, tmp_path / "sr", *common, "recipe.name=two_stage_sr"))
    out = combine_two_stage(
        den / "denoiser.safetensors", sr / "weights.safetensors", tmp_path / "two.safetensors"
    )
    model = load_model(out)
    assert model.meta["facesr.arch"] == "jdsr_fast"
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 128, 128)
    assert_chain_holds_parts(den, sr, out)


def test_bilinear_cnn_d_has_no_sub_pixel_grid_and_takes_transpose_weights() -> None:
    """``unet_up=bilinear``: a constant input stays constant through CNN_D's up-path (no 2x2 pattern), and a
    transpose-layout state maps onto it with each 1x1 weight the mean of its old 2x2 kernel."""
    from facesr.nets.jdsr import transpose_to_bilinear

    old = build_jdsr_fast(scale=4)
    new = build_jdsr_fast(scale=4, unet_up="bilinear")
    up = new.denoiser.unet.up1
    flat = up(torch.ones(1, up.proj.in_channels, 8, 8))
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat), atol=1e-6)
    state = transpose_to_bilinear(old.state_dict())
    new.load_state_dict(state, strict=True)
    w = old.denoiser.unet.up2.weight  # [cin, cout, 2, 2]
    assert torch.allclose(new.denoiser.unet.up2.proj.weight[:, :, 0, 0], w.mean(dim=(2, 3)).t())
    with pytest.raises(ValueError, match="unet_up"):
        build_jdsr_fast(scale=4, unet_up="nearest")


def test_lr_scale_groups_by_longest_prefix_and_refuses_unknown_names() -> None:
    from facesr.errors import ConfigError
    from facesr.train.loop import lr_groups

    net = build_jdsr_fast(scale=4)
    params = list(net.parameters())
    groups = lr_groups(net, params, 1e-3, {"sr_module": 0.1, "sr_module.upsampler": 0.5})
    lrs = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(params)
    named = dict(net.named_parameters())
    assert lrs[id(named["denoiser.unet.out.weight"])] == pytest.approx(1e-3)
    body = next(n for n in named if n.startswith("sr_module.body."))
    head = next(n for n in named if n.startswith("sr_module.upsampler."))
    assert lrs[id(named[body])] == pytest.approx(1e-4)
    assert lrs[id(named[head])] == pytest.approx(5e-4)
    assert lr_groups(net, params, 1e-3, {}) is params
    with pytest.raises(ConfigError, match="lr_scale"):
        lr_groups(net, params, 1e-3, {"no_such_part": 0.1})


def test_face_prior_warm_start_changes_nothing_until_trained_and_exports_to_onnx(tmp_path: Path) -> None:
    """``prior_channels``: a file without the positional face prior warm-starts into a model with it (new
    input channels of CNN_D at zero, so the outputs are identical), the prior is a trainable parameter that
    gets a gradient once CNN_D uses it, and the graph exports to ONNX with the same outputs."""
    from facesr.train.warmstart import add_face_prior

    torch.manual_seed(0)
    old = build_jdsr_fast(scale=4, unet_up="bilinear").eval()
    torch.nn.init.normal_(old.denoiser.unet.out.weight, std=0.1)  # a denoiser that is not the identity
    new = build_jdsr_fast(scale=4, unet_up="bilinear", prior_channels=8).eval()
    assert new.denoiser.face_prior is not None and new.denoiser.face_prior.shape == (1, 8, 32, 32)
    assert new.denoiser.unet.enc1[0].conv.weight.shape[1] == 6 + 8
    state = add_face_prior(new.state_dict(), old.state_dict())
    new.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(old(x)["sr"], new(x)["sr"])
    # CNN_D's prior weights get a gradient at once (the prior is non-zero), the prior itself once they move
    new.train()
    new(x)["sr"].mean().backward()
    assert new.denoiser.unet.enc1[0].conv.weight.grad[:, 6:].abs().sum() > 0
    with torch.no_grad():
        new.denoiser.unet.enc1[0].conv.weight[:, 6:].normal_(std=0.1)
    new.zero_grad()
    new(x)["sr"].mean().backward()
    assert new.denoiser.face_prior.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="prior_channels"):
        from facesr.nets.jdsr import Denoiser, resolve_size

        Denoiser(resolve_size("lite", {"prior_channels": 4}))
    pytest.importorskip("onnxruntime")
    from facesr.restoration.onnx import export_onnx, verify_onnx
    from facesr.zoo import Restorer

    restorer = Restorer(new.eval(), name="t", scale=4, output_key="sr")
    export_onnx(restorer, tmp_path / "prior.onnx")
    assert verify_onnx(restorer, tmp_path / "prior.onnx", batch=2) < 1e-4


def test_face_prior_warm_start_through_init_from(tmp_path: Path) -> None:
    """``model.init_from`` of a shipped-layout file into a model with the prior goes through
    :func:`facesr.train.warmstart.warm_start` (the path a continuation run takes)."""
    from facesr.train.warmstart import warm_start
    from facesr.zoo import save_weights

    torch.manual_seed(1)
    old = build_jdsr_fast(scale=8).eval()  # transpose CNN_D, no prior: the session-3 x8 layout
    torch.nn.init.normal_(old.denoiser.unet.out.weight, std=0.1)
    path = tmp_path / "old.safetensors"
    save_weights(old, path, arch="jdsr_fast", args={"size": "fast", "scale": 8}, scale=8, output_key="sr")
    new = build_jdsr_fast(scale=8, unet_up="bilinear", prior_channels=4).eval()
    warm_start(new, str(path), "jdsr_fast")
    assert torch.equal(
        new.denoiser.unet.enc1[0].conv.weight[:, 6:],
        torch.zeros_like(new.denoiser.unet.enc1[0].conv.weight[:, 6:]),
    )
    assert torch.allclose(
        new.denoiser.unet.enc1[0].conv.weight[:, :6], old.denoiser.unet.enc1[0].conv.weight.half().float()
    )


def test_init_only_loads_the_named_part_and_keeps_the_rest_fresh(tmp_path: Path) -> None:
    """``model.init_only=[sr_module]``: the SR module comes from the file (every tensor), the denoiser keeps
    its fresh start (identity: zero output conv), so the new model is the old SR module on the raw input."""
    from facesr.errors import ConfigError
    from facesr.train.warmstart import warm_start
    from facesr.zoo import save_weights

    torch.manual_seed(2)
    old = build_jdsr_fast(scale=4).eval()
    torch.nn.init.normal_(old.denoiser.unet.out.weight, std=0.1)
    path = tmp_path / "old.safetensors"
    save_weights(old, path, arch="jdsr_fast", args={"size": "fast", "scale": 4}, scale=4, output_key="sr")
    new = build_jdsr_fast(scale=4, unet_up="bilinear", prior_channels=4, cab_residual=True).eval()
    fresh_den = {k: v.clone() for k, v in new.denoiser.state_dict().items()}
    warm_start(new, str(path), "jdsr_fast", ["sr_module"])
    for k, v in new.denoiser.state_dict().items():
        assert torch.equal(v, fresh_den[k]), k
    for k, v in new.sr_module.state_dict().items():
        assert torch.allclose(v, old.sr_module.state_dict()[k].half().float()), k
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(new(x)["sr"], new.sr_module(x))
    with pytest.raises(ConfigError, match="init_only"):
        warm_start(new, str(path), "jdsr_fast", ["nothing_here"])


def test_residual_cab_adds_its_input_only_where_shapes_match() -> None:
    from facesr.nets.blocks import CAB

    same, wider = CAB(8, 8, 4, residual=True), CAB(6, 8, 4, residual=True)
    assert same.residual and not wider.residual
    x = torch.rand(1, 8, 5, 5)
    with torch.no_grad():
        same.conv.weight.zero_()
        same.conv.bias.fill_(-1.0)  # ReLU(-1) = 0: the block adds nothing, the skip keeps the input
    assert torch.equal(same(x), x)
    assert wider(torch.rand(1, 6, 5, 5)).shape == (1, 8, 5, 5)


@pytest.mark.slow
def test_export_checkpoint_writes_the_ema_weights_with_the_loop_totals(
    prepared: Path, tmp_path: Path
) -> None:
    """``scripts/export_checkpoint.py``: the checkpoint's EMA generator as a zoo file whose totals are the
    loop's own at the same step, and which a new run can warm-start from (the session-5 layout)."""
    import subprocess
    import sys

    from facesr.train.loop import load_checkpoint, train
    from facesr.zoo import load_model

    layout = "model.overrides={unet_up: bilinear, prior_channels: 4, cab_residual: true}"
    run = train(_fast_cfg(prepared, tmp_path / "a", layout, "recipe.adversarial=false"))
    out = tmp_path / "exported.safetensors"
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_checkpoint.py"
    done = subprocess.run(
        [sys.executable, str(script), str(run), "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    mine, loops = _totals(out), _totals(run / "weights.safetensors")
    for key in ("steps", "faces_seen", "runs", "gpu_hours"):
        assert mine[key] == loops[key], key
    # the loop's export also counts the wall time after its last checkpoint (validation, preview)
    assert 0 < mine["cpu_hours"] <= loops["cpu_hours"]
    ema = load_checkpoint(run / "ckpt" / "last.pt")["ema"]
    net = load_model(out).net
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v.float(), ema[k].half().float())
    again = subprocess.run(
        [sys.executable, str(script), str(run), "-o", str(out)], capture_output=True, text=True
    )
    assert again.returncode != 0 and "exists" in again.stderr
    second = train(
        _fast_cfg(
            prepared,
            tmp_path / "b",
            layout,
            "recipe.adversarial=false",
            f"model.init_from={out}",
            "run.steps=1",
        )
    )
    assert _totals(second / "weights.safetensors")["runs"] == 2


@pytest.mark.slow
def test_resume_after_the_init_file_was_replaced_counts_each_run_once(prepared: Path, tmp_path: Path) -> None:
    """The ship step replaces the file a continuation started from (model.init_from is the shipped file);
    resuming that continuation afterwards must not read the replaced file's totals, which include it."""
    import shutil

    from facesr.train.loop import train

    first = train(_fast_cfg(prepared, tmp_path / "a", "recipe.adversarial=false"))
    shipped = tmp_path / "shipped.safetensors"
    shutil.copy(first / "weights.safetensors", shipped)
    more = ["recipe.adversarial=false", f"model.init_from={shipped}", "run.steps=2"]
    second = train(_fast_cfg(prepared, tmp_path / "b", *more, "run.stop_step=1"))
    assert _totals(second / "weights.safetensors")["steps"] == 4  # 3 + 1
    shutil.copy(second / "weights.safetensors", shipped)  # shipped at step 1, then trained on
    again = train(_fast_cfg(prepared, tmp_path / "b", *more), resume=True)
    t = _totals(again / "weights.safetensors")
    assert t["steps"] == 5 and t["runs"] == 2 and t["faces_seen"] == 20  # 3 + 2 steps of 4 faces


def test_sr_clean_term_trains_the_sr_module_on_clean_lr_only() -> None:
    """``loss.sr_clean_pixel``: the forward also passes the clean LR through the SR module alone, and the
    term's gradient reaches the SR module and nothing of the denoiser."""
    from facesr.losses.jdsr import JDSRLoss, JDSRLossWeights

    torch.manual_seed(3)
    net = build_jdsr_fast(scale=4, unet_up="bilinear", prior_channels=4, cab_residual=True)
    torch.nn.init.normal_(net.denoiser.unet.out.weight, std=0.1)  # a denoiser that changes its input
    x, clean, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 128, 128)
    out = net(x, clean)
    assert "sr_clean" not in net(x)  # inference (and ONNX) sees the one-input forward
    torch.testing.assert_close(out["sr_clean"], net.sr_module(clean))
    zero = {k: 0.0 for k in JDSRLossWeights.model_fields if k.startswith(("dn_", "sr_"))}
    weights = JDSRLossWeights(**{**zero, "sr_clean_pixel": 1.0, "adversarial": 0.0})
    total, terms = JDSRLoss(weights, face_id=torch.nn.Identity())(
        out, {"lr_masked": x, "lr_clean": clean, "hr": hr}
    )
    assert set(terms) == {"sr_clean_pixel"} and total.item() > 0
    total.backward()
    assert all(p.grad is None for p in net.denoiser.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.sr_module.parameters())


def test_sr_clean_term_runs_in_the_joint_recipe_and_is_refused_elsewhere(
    prepared: Path, tmp_path: Path
) -> None:
    from facesr.errors import ConfigError
    from facesr.train.loop import train
    from facesr.train.runlog import iter_log

    common = ["recipe.adversarial=false", "run.steps=2", "run.tensorboard=false", "loss.sr_clean_pixel=0.5"]
    run = train(_fast_cfg(prepared, tmp_path / "joint", *common))
    logged = [r for r in iter_log(run / "log.jsonl") if "G/sr_clean_pixel" in r]
    assert logged and all(r["G/sr_clean_pixel"] > 0 for r in logged)
    with pytest.raises(ConfigError, match="sr_clean_pixel"):
        train(_fast_cfg(prepared, tmp_path / "sronly", *common, "recipe.name=sr_only", "optim.lr_scale={}"))
