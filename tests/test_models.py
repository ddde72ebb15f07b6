"""models: every architecture trains, Table 2 costs, torchvision parity, inflation, weights I/O, CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import typer
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.cli import models as models_cli
from weaksup.errors import InputError
from weaksup.models import (
    ARCHS,
    build_model,
    convert_weights,
    count_arch,
    count_macs,
    count_parameters,
    export_safetensors,
    inflate_r2d_to_r3d,
    load_weights,
    r2d_18,
    r2plus1d_18,
    r2plus1d_34,
    r3d_18,
    read_state_dict,
)
from weaksup.models.counting import TABLE2
from weaksup.models.inflate import inflate_kernel
from weaksup.models.via2d import Conv3dVia2d, native_3d_convs

torchvision = pytest.importorskip("torchvision")
from torchvision.models import video as tv_video  # noqa: E402
from torchvision.models.video.resnet import BasicBlock as TvBasicBlock  # noqa: E402
from torchvision.models.video.resnet import Conv2Plus1D as TvConv2Plus1D  # noqa: E402
from torchvision.models.video.resnet import R2Plus1dStem as TvR2Plus1dStem  # noqa: E402
from torchvision.models.video.resnet import VideoResNet as TvVideoResNet  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on 2 shared cores, OpenMP spinning against other jobs costs far more than it gains."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = (2, 3, 4, 32, 32)  # B, C, T, H, W: T=4 survives three temporal stride-2 stages


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN affine and running statistics, so eval-mode comparisons test them too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


# ---------------------------------------------------------------- architectures


@pytest.mark.parametrize("arch", list(ARCHS))
def test_forward_backward_every_arch(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=5)
    x = torch.randn(*TINY)
    feats = model.forward_features(x)
    expected_dim = 2048 if arch in ("r2plus1d_50", "r2plus1d_101", "r2plus1d_152") else 512
    assert model.feature_dim == expected_dim and feats.shape == (2, expected_dim)
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_factories_are_keyword_only_and_build_model_rejects_unknown_names() -> None:
    with pytest.raises(TypeError):
        r2plus1d_18(5)  # type: ignore[misc]
    with pytest.raises(InputError, match="unknown architecture 'resnet50'.*r2plus1d_34") as err:
        build_model("resnet50", num_classes=5)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="num_classes"):
        build_model("r3d_18", num_classes=0)


def test_r2d_treats_frames_independently_and_averages_over_time() -> None:
    model = randomize_bn(r2d_18(num_classes=3)).eval()
    clip = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        per_frame = torch.stack([model.forward_features(clip[:, :, i : i + 1]) for i in range(3)]).mean(0)
        torch.testing.assert_close(model.forward_features(clip), per_frame, rtol=1e-5, atol=1e-5)


def test_dropout_zero_init_and_bn_eps_options() -> None:
    model = r2plus1d_18(num_classes=4, dropout=0.5, zero_init_residual=True, bn_eps=1e-3)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm3d))
    assert torch.count_nonzero(model.layer1[0].conv2[1].weight) == 0
    model.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))  # dropout is off in eval mode


def test_channels_last_3d_bf16_autocast_forward() -> None:
    model = r2plus1d_18(num_classes=5).to(memory_format=torch.channels_last_3d).eval()
    x = torch.randn(*TINY).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == (2, 5) and out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 1e-2


def smooth_activations(model: nn.Module) -> nn.Module:
    """ReLU -> GELU: a ReLU input within rounding of 0 would gate a gradient one way or the
    other, so exact-ish gradient comparisons between two summation orders need a smooth net."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.GELU())
    return model


@pytest.mark.parametrize("arch", ["r2plus1d_18", "r2plus1d_50", "r2d_18"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_2d_route_gives_the_3d_results(arch: str, channels_last: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spatial/temporal kernels computed as 2D convs: same logits and gradients as native Conv3d.

    T = 4 becomes 1 in layer4: a size-1 dimension whose view strides once broke CPU
    BatchNorm backward (see via2d.canonical_strides).
    """
    torch.manual_seed(0)
    model = build_model(arch, num_classes=4, cpu_channels_last=channels_last)
    model = smooth_activations(randomize_bn(model)).eval()  # batch-statistics BN would amplify rounding
    x = torch.randn(2, 3, 4, 32, 32)
    results = {}
    for route in ("3d", "2d"):
        monkeypatch.setattr(Conv3dVia2d, "route", route)
        model.zero_grad()
        out = model(x)
        out.square().sum().backward()
        results[route] = (out.detach(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(results["2d"][0], results["3d"][0], rtol=1e-4, atol=1e-5)
    g2, g3 = results["2d"][1], results["3d"][1]
    assert (g2 - g3).norm() < 1e-5 * g3.norm()


def test_2d_route_hands_on_canonical_strides() -> None:
    conv = Conv3dVia2d(8, 16, kernel_size=(1, 3, 3), padding=(0, 1, 1))
    bn = randomize_bn(nn.BatchNorm3d(16)).eval()
    for shape in [(2, 8, 1, 2, 2), (1, 8, 3, 4, 4), (1, 8, 1, 1, 1)]:
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
        y = conv(x)
        fresh = {
            torch.empty(y.shape, memory_format=f).stride() for f in (torch.channels_last_3d, torch.contiguous_format)
        }
        assert y.stride() in fresh  # (1, 8, 1, 1, 1) is both layouts at once
        xs = (x.detach().clone().requires_grad_(True), x.detach().contiguous().requires_grad_(True))
        grad = torch.randn(y.shape)
        for xi in xs:
            bn(conv(xi)).backward(grad)
        torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_weight_gradient_of_a_spatial_conv_is_right(channels_last: bool) -> None:
    """R(2+1)D-18's layer2 spatial conv on 8-frame clips: oneDNN's AMX bf16 Conv3d weight gradient
    is NaN or far off for this shape with torch 2.14.1; the 2D route must be within bf16 rounding."""
    torch.manual_seed(0)
    conv = Conv3dVia2d(128, 288, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False)
    x = torch.randn(2, 128, 4, 28, 28).relu()
    grad_out = torch.randn(2, 288, 4, 28, 28)
    conv(x).backward(grad_out)
    ref, conv.weight.grad = conv.weight.grad, None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    out.float().backward(grad_out)
    assert (conv.weight.grad - ref).abs().max() < 0.02 * ref.abs().max()


def test_native_3d_convs_are_the_full_kernels_only() -> None:
    """R3D's t x 3 x 3 convs have no 2D form (the trainer refuses them in bf16 on CPU); (2+1)D and 2D have none."""
    r3d = native_3d_convs(build_model("r3d_18", num_classes=2))
    assert len(r3d) == 17 and "layer3.1.conv2.0" in r3d  # stem (3x7x7) + 16 block convs; downsamples are 1x1x1
    assert native_3d_convs(build_model("r2plus1d_10", num_classes=2)) == []
    assert native_3d_convs(build_model("r2d_18", num_classes=2)) == []


# ---------------------------------------------------------------- Table 2 costs


@pytest.mark.parametrize("depth", sorted(TABLE2))
def test_table2_params_and_macs(depth: int) -> None:
    """Factory defaults within 6% of the paper; the per-conv mid rule (default from 34 up) within 1.5%."""
    paper_params, paper_macs = TABLE2[depth]
    params, macs = count_arch(f"r2plus1d_{depth}", num_classes=359, input_shape=(1, 3, 32, 112, 112))
    assert abs(params / paper_params - 1) < 0.06, params
    assert abs(macs / paper_macs - 1) < 0.06, macs
    if depth == 18:  # torchvision's per-block rule by default; the paper's model is per-conv
        params, macs = count_arch("r2plus1d_18", mid_rule="per_conv")
    assert abs(params / paper_params - 1) < 0.015, params
    assert abs(macs / paper_macs - 1) < 0.015, macs


def test_per_block_rule_misses_table2_for_bottlenecks() -> None:
    """Why deep nets default to per_conv: torchvision's rule sizes bottleneck middles from the 4x input."""
    params, macs = count_arch("r2plus1d_101", mid_rule="per_block")
    assert params / TABLE2[101][0] > 1.15 and macs / TABLE2[101][1] > 1.14


def test_count_macs_on_a_real_model_costs_nothing_and_changes_nothing() -> None:
    model = r3d_18(num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = count_macs(model, (1, 3, 8, 112, 112))
    params, meta_macs = count_arch("r3d_18", num_classes=10, input_shape=(1, 3, 8, 112, 112))
    # torchvision's r3d_18 has 33,371,472 parameters with 400 classes: 390 fewer fc rows of 513
    assert macs == meta_macs and params == count_parameters(model) == 33_371_472 - 390 * 513
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- torchvision / IG-65M parity


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("name", ["r2plus1d_18", "r3d_18"])
def test_torchvision_parity(name: str, channels_last: bool) -> None:
    torch.manual_seed(0)
    theirs = randomize_bn(getattr(tv_video, name)(num_classes=7)).eval()
    ours = build_model(name, num_classes=7, cpu_channels_last=channels_last).eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_r2plus1d_34_has_the_ig65m_checkpoint_layout() -> None:
    """The IG-65M PyTorch port: torchvision's VideoResNet, [3,4,6,3], Caffe2 mid widths in layerN[0].conv2."""
    port = TvVideoResNet(block=TvBasicBlock, conv_makers=[TvConv2Plus1D] * 4, layers=[3, 4, 6, 3], stem=TvR2Plus1dStem)
    port.fc = nn.Linear(512, 359)
    port.layer2[0].conv2[0] = TvConv2Plus1D(128, 128, 288)
    port.layer3[0].conv2[0] = TvConv2Plus1D(256, 256, 576)
    port.layer4[0].conv2[0] = TvConv2Plus1D(512, 512, 1152)
    ours = r2plus1d_34(num_classes=359)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in port.state_dict().items()}


# ---------------------------------------------------------------- inflation


@pytest.fixture(scope="module")
def r2d() -> nn.Module:
    """An R2D-18 in eval mode with non-trivial BN and large logits: a real test of equality."""
    torch.manual_seed(1)
    model = randomize_bn(r2d_18(num_classes=6))
    nn.init.normal_(model.fc.weight)
    return model.eval()


def test_inflate_center_equals_r2d_on_a_static_clip(r2d: nn.Module) -> None:
    r3d = inflate_r2d_to_r3d(r2d, method="center").eval()
    assert r3d.stem[0].weight.shape == (64, 3, 3, 7, 7)
    frame = torch.randn(2, 3, 1, 32, 32)
    static = frame.expand(-1, -1, 8, -1, -1).contiguous()
    with torch.no_grad():
        ref = r2d(static)
        torch.testing.assert_close(r3d(static), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
        torch.testing.assert_close(r2d(frame), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
        # on any clip: per-frame features of the frames that survive R3D's temporal strides (0, 8)
        clip = torch.randn(1, 3, 16, 32, 32)
        torch.testing.assert_close(
            r3d.forward_features(clip), r2d.forward_features(clip[:, :, [0, 8]]), rtol=1e-5, atol=1e-5
        )


def test_inflate_average_is_exact_away_from_temporal_borders(r2d: nn.Module) -> None:
    r3d = inflate_r2d_to_r3d(r2d, method="average").eval()
    w2, w3 = r2d.stem[0].weight, r3d.stem[0].weight
    torch.testing.assert_close(w3.sum(2, keepdim=True), w2)
    static = torch.randn(1, 3, 1, 16, 16).expand(-1, -1, 5, -1, -1)
    with torch.no_grad():
        out2, out3 = r2d.stem[0](static), r3d.stem[0](static)
    torch.testing.assert_close(out3[:, :, 1:-1], out2[:, :, 1:-1], rtol=1e-5, atol=1e-5)  # interior: exact
    torch.testing.assert_close(out3[:, :, [0, -1]], out2[:, :, [0, -1]] * 2 / 3, rtol=1e-5, atol=1e-5)  # zero pad


def test_inflate_other_time_kernel_and_errors(r2d: nn.Module) -> None:
    r3d = inflate_r2d_to_r3d(r2d, time_kernel=5)
    assert r3d.layer1[0].conv1[0].weight.shape == (64, 64, 5, 3, 3)
    torch.testing.assert_close(r3d.layer1[0].conv1[0].weight[:, :, 2:3], r2d.layer1[0].conv1[0].weight)
    assert inflate_kernel(torch.ones(2, 2, 1, 3, 3), 4, method="average").shape == (2, 2, 4, 3, 3)
    with pytest.raises(InputError, match="unknown inflation method"):
        inflate_r2d_to_r3d(r2d, method="bogus")  # type: ignore[arg-type]
    with pytest.raises(
        InputError, match=r"cannot inflate 'stem.0.weight': 2D shape \(64, 3, 1, 7, 7\), 3D shape \(64, 3, 3, 7, 7\)"
    ):
        inflate_r2d_to_r3d(r2d, r3d_18(num_classes=6), time_kernel=5)
    with pytest.raises(InputError, match="2D model has no 'layer1.0.conv1.0.weight'"):
        inflate_r2d_to_r3d(r2plus1d_18(num_classes=6))


# ---------------------------------------------------------------- weights I/O and CLI


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    models_cli.register(app)
    return app


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    """An r3d_18 with non-trivial BN, saved DDP-style: {"state_dict": {"module.<key>": tensor}}."""
    torch.manual_seed(2)
    model = randomize_bn(r3d_18(num_classes=5)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "ddp.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return model, path


def test_pth_to_safetensors_round_trip(trained: tuple[nn.Module, Path], tmp_path: Path) -> None:
    model, pth = trained
    summary = convert_weights(pth, tmp_path / "w.safetensors", "r3d_18")
    assert summary["num_classes"] == 5 and summary["parameters"] == count_parameters(model)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        for path in (pth, tmp_path / "w.safetensors"):
            fresh = load_weights(r3d_18(num_classes=5), path).eval()
            torch.testing.assert_close(fresh(x), ref, rtol=0, atol=0)
    export_safetensors(model, tmp_path / "direct.safetensors")
    assert read_state_dict(tmp_path / "direct.safetensors").keys() == model.state_dict().keys()


def test_cli_convert_weights(trained: tuple[nn.Module, Path], tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    _, pth = trained
    out = tmp_path / "cli.safetensors"
    res = runner.invoke(app, ["convert-weights", "--src", str(pth), "--dst", str(out), "--arch", "r3d_18"])
    assert res.exit_code == 0, res.output
    assert "num classes" in res.output and out.is_file()
    load_weights(r3d_18(num_classes=5), out)

    res = runner.invoke(app, ["convert-weights", "--src", str(pth), "--dst", str(out), "--arch", "r2plus1d_18"])
    assert_input_error(res, "ddp.pth", "another architecture", "stem.0.weight", "(64, 3, 3, 7, 7)", "(45, 3, 1, 7, 7)")
    res = runner.invoke(
        app, ["convert-weights", "--src", str(tmp_path / "nope.pth"), "--dst", str(out), "--arch", "r3d_18"]
    )
    assert_input_error(res, "nope.pth", "no such checkpoint")
    res = runner.invoke(app, ["convert-weights", "--src", str(pth), "--dst", str(out), "--arch", "vgg"])
    assert_input_error(res, "unknown architecture 'vgg'")


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_bad_checkpoints_are_one_line_input_errors(trained: tuple[nn.Module, Path], tmp_path: Path) -> None:
    model, pth = trained
    good_st = export_safetensors(model, tmp_path / "good.safetensors")
    junk = bytes(range(256)) * 64
    (tmp_path / "random.pth").write_bytes(junk)
    (tmp_path / "random.safetensors").write_bytes(junk)
    torch.save({"lr": 0.1, "note": "no tensors"}, tmp_path / "notweights.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    cases = {
        _truncated(pth, tmp_path / "trunc.pth"): "not a readable torch checkpoint",
        _truncated(good_st, tmp_path / "trunc.safetensors"): "not a readable safetensors file",
        tmp_path / "random.pth": "not a readable torch checkpoint",
        tmp_path / "random.safetensors": "not a readable safetensors file",
        tmp_path / "notweights.pth": "entry 'lr' is a float",
        tmp_path / "tensor.pt": "holds Tensor",
        tmp_path / "missing.pth": "no such checkpoint file",
    }
    with torch.device("meta"):  # every case fails before loading: shapes are all it needs
        target, other = r3d_18(num_classes=5), r3d_18(num_classes=7)
    for path, needle in cases.items():
        with pytest.raises(InputError, match=needle) as err:
            load_weights(target, path)
        assert "\n" not in str(err.value) and path.name in str(err.value)
    with pytest.raises(InputError, match=r"'fc.weight' has shape \(5, 512\), the model needs \(7, 512\)"):
        load_weights(other, pth)
    state = model.state_dict()
    export_safetensors({k: v for k, v in state.items() if k != "fc.bias"}, tmp_path / "nobias.safetensors")
    with pytest.raises(InputError, match=r"no 'fc.bias' \(model \(5,\)\)"):
        load_weights(target, tmp_path / "nobias.safetensors")
    export_safetensors({**state, "head.weight": torch.zeros(2)}, tmp_path / "extra.safetensors")
    with pytest.raises(InputError, match="unexpected 'head.weight'"):
        load_weights(target, tmp_path / "extra.safetensors")

    res = CliRunner().invoke(
        _app(),
        [
            "convert-weights",
            "--src",
            str(tmp_path / "trunc.pth"),
            "--dst",
            str(tmp_path / "x.safetensors"),
            "--arch",
            "r3d_18",
        ],
    )
    assert_input_error(res, "trunc.pth", "truncated")
