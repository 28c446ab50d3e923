import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.parametrize import ParametrizationList

from conftest import flat_ripple
from dcgan.train.config import D_NORMS, ModelConfig, TrainConfig
from dcgan.train.model import (
    Discriminator,
    Generator,
    MinibatchStd,
    build_models,
    even_upsampling_phases,
    generator_flops,
)


def test_generator_makes_native_96px_rgba_in_tanh_range():
    g, _ = build_models(ModelConfig())
    z = torch.randn(3, 100)
    out = g(z)
    assert out.shape == (3, 4, 96, 96)
    assert out.min() >= -1 and out.max() <= 1
    # (B, nz) and (B, nz, 1, 1) are the same input
    torch.testing.assert_close(g.eval()(z), g.eval()(z[:, :, None, None]))


def test_discriminator_returns_one_logit_per_image():
    _, d = build_models(ModelConfig(ndf=16))
    logits = d(torch.randn(5, 4, 96, 96))
    assert logits.shape == (5,)
    assert (logits < 0).any() or (logits > 1).any() or logits.std() > 0  # raw logits, no sigmoid squashing


@pytest.mark.parametrize("net, d_norm", [(Generator, "spectral"), *((Discriminator, n) for n in D_NORMS)])
def test_follows_dcgan_guidelines(net, d_norm):
    model = net(ModelConfig(ngf=8, ndf=8, d_norm=d_norm, mbstd_group=4))
    # a parametrised convolution is a dynamic subclass of nn.Conv2d
    kinds = {nn.Conv2d if isinstance(m, nn.Conv2d) else type(m) for m in model.modules()} - {net, nn.Sequential}
    spectral = {ParametrizationList, nn.ModuleDict, _SpectralNorm}
    allowed = {nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh, nn.LeakyReLU, MinibatchStd} | spectral
    assert kinds <= allowed, f"unexpected layers {kinds - allowed}"  # no pooling, no dense layers
    layers = list(model.main)
    convs = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.stride == (2, 2) for c in convs[1:-1]), "hidden stages resample by stride"
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in layers)
    if net is Generator:
        assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[-2], nn.ConvTranspose2d)  # no BN on output
        assert all(
            isinstance(m, nn.ReLU) for m in layers[:-1] if not isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d))
        )
        assert norms == len(convs) - 1 and not kinds & spectral
        return
    assert isinstance(layers[1], nn.LeakyReLU) and layers[1].negative_slope == 0.2  # no BN on input
    assert isinstance(layers[-1], nn.Conv2d)  # logits straight out of a convolution
    assert isinstance(layers[-2], MinibatchStd) and layers[-1].in_channels == 8 * 8 + 1  # parameter-free
    assert norms == (len(convs) - 2 if d_norm.endswith("batch") else 0)  # none on the input or the score layer
    assert all(parametrize.is_parametrized(c, "weight") for c in convs) == d_norm.startswith("spectral")
    assert not any(parametrize.is_parametrized(c) for c in convs) or d_norm.startswith("spectral")


def test_minibatch_std_shows_a_group_of_look_alikes():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 6, 6)
    x[0::2] = x[0]  # samples 0, 2, 4, 6 form one group (i mod 2) and are identical
    std = MinibatchStd(4)(x)[:, 3]
    assert std.shape == (8, 6, 6) and (std == std[:, :1, :1]).all()  # one constant map per sample
    assert std[0::2].max() < 1e-3 and std[1::2].min() > 0.5  # look-alikes ~0, varied samples clearly not
    assert MinibatchStd(4)(torch.randn(6, 3, 6, 6)).shape == (6, 4, 6, 6)  # 6 % 4: groups of gcd(4, 6) = 2
    assert sum(p.numel() for p in MinibatchStd(4).parameters()) == 0


def test_spectral_norm_holds_every_discriminator_layer_to_gain_one():
    torch.manual_seed(0)
    _, d = build_models(ModelConfig(ndf=16, d_norm="spectral"))
    for _ in range(30):  # each training-mode forward runs one power iteration
        d(torch.randn(2, 4, 96, 96))
    convs = [m for m in d.main if isinstance(m, nn.Conv2d)]
    raw = [torch.linalg.matrix_norm(c.parametrizations.weight.original.detach().flatten(1), ord=2) for c in convs]
    used = [torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2) for c in convs]
    assert max(abs(r - 1) for r in raw) > 0.3  # N(0, 0.02) weights have gains far from 1...
    assert used == [pytest.approx(1.0, abs=0.05)] * len(convs)  # ...the layers the network uses are at 1


def test_feature_maps_double_from_6_to_96():
    g = Generator(ModelConfig(ngf=8))
    sides = []
    x = torch.randn(2, 100, 1, 1)
    for layer in g.main:
        x = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            sides.append(x.shape[-1])
    assert sides == [6, 12, 24, 48, 96]


def test_init_is_dcgan_normal():
    torch.manual_seed(0)
    g, d = build_models(ModelConfig(d_norm="spectral"))
    big = g.main[3].weight  # 512 -> 256, 2M weights: the sample std is exact to ~0.1%
    assert abs(big.std().item() - 0.02) < 0.0005 and abs(big.mean().item()) < 0.0005
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005
    wide = [m for m in d.main if isinstance(m, nn.Conv2d)][-2].parametrizations.weight.original  # 256 -> 512
    assert abs(wide.std().item() - 0.02) < 0.0005


def test_width_64_generator_costs_the_documented_flops():
    # 0.476 GFLOP a sprite: the figure of the plain width-64 DCGAN this project measures against
    assert round(generator_flops(ModelConfig()) / 1e9, 3) == 0.476


@pytest.mark.parametrize(
    "bad",
    [dict(image_size=100), dict(image_size=6), dict(nz=0), dict(ngf=-1), dict(d_norm="layer"), dict(mbstd_group=-1)],
)
def test_config_rejects_impossible_models(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_config_round_trips_and_names_unknown_keys():
    cfg = ModelConfig(nz=32, ngf=16)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 3})


def test_checkpoints_from_before_a_setting_existed_keep_what_they_were_trained_with():
    old = {k: v for k, v in ModelConfig().to_dict().items() if k not in ("d_norm", "mbstd_group")}
    assert ModelConfig.from_dict(old).d_norm == "batch"  # the only discriminator there was
    assert ModelConfig.from_dict(old).mbstd_group == 0


def stride_2_layers(g: nn.Module) -> list[nn.ConvTranspose2d]:
    layers = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2)]
    assert len(layers) == 4
    return layers


@pytest.mark.parametrize("g_init, even", [("icnr", True), ("normal", False)])
def test_icnr_init_starts_the_upsampling_without_a_checkerboard(g_init, even):
    """A flat feature map through a freshly initialised stride-2 layer: flat out (inside the border) with
    "icnr"; with the paper's init the four output phases differ, the checkerboard of Odena et al. 2016."""
    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(ngf=8), g_init)
    for layer in stride_2_layers(g):
        assert (flat_ripple(layer) < 1e-4) == even
        assert 0.005 < layer.weight.std() < 0.025  # still on the paper's N(0, 0.02) scale


def test_even_phases_is_the_least_squares_projection_onto_checkerboard_free_kernels():
    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(ngf=8))
    even, _ = build_models(ModelConfig(ngf=8), "icnr")  # ICNR kernels: members of the checkerboard-free set
    before = copy.deepcopy(g)
    even_upsampling_phases(g)
    for layer, old, member in zip(stride_2_layers(g), stride_2_layers(before), stride_2_layers(even), strict=True):
        assert flat_ripple(layer) < 1e-4 < flat_ripple(old)
        removed = old.weight - layer.weight
        # least squares: what was taken away is orthogonal to every checkerboard-free kernel
        for kernel in (layer.weight, member.weight):
            assert abs((removed * kernel).sum()) < 1e-4 * removed.norm() * kernel.norm()
        assert removed.norm() < 0.6 * old.weight.norm()  # 3 of each 16 directions removed, not the kernel
    first, first_before = g.main[0].weight, before.main[0].weight  # the 1 -> 6 projection is not upsampling
    assert torch.equal(first, first_before)
    again = copy.deepcopy(g)
    even_upsampling_phases(again)  # idempotent, and ICNR kernels stay as they are
    even_icnr = copy.deepcopy(even)
    even_upsampling_phases(even_icnr)
    for a, b in ((again, g), (even_icnr, even)):
        for x, y in zip(stride_2_layers(a), stride_2_layers(b), strict=True):
            torch.testing.assert_close(x.weight, y.weight, rtol=0, atol=1e-7)


def test_unknown_g_init_is_refused():
    with pytest.raises(ValueError, match="g_init"):
        TrainConfig(g_init="xavier")
