import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.parametrize import ParametrizationList

from dcgan.train.config import D_NORMS, ModelConfig
from dcgan.train.model import Discriminator, Generator, build_models, generator_flops


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
    model = net(ModelConfig(ngf=8, ndf=8, d_norm=d_norm))
    # a parametrised convolution is a dynamic subclass of nn.Conv2d
    kinds = {nn.Conv2d if isinstance(m, nn.Conv2d) else type(m) for m in model.modules()} - {net, nn.Sequential}
    spectral = {ParametrizationList, nn.ModuleDict, _SpectralNorm}
    allowed = {nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh, nn.LeakyReLU} | spectral
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
    assert norms == (len(convs) - 2 if d_norm == "batch" else 0)  # none on the input or the score layer
    assert all(parametrize.is_parametrized(c, "weight") for c in convs) == (d_norm == "spectral")
    assert not any(parametrize.is_parametrized(c) for c in convs) or d_norm == "spectral"


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
    g, d = build_models(ModelConfig(ngf=64, d_norm="spectral"))
    big = g.main[3].weight  # 512 -> 256, 2M weights: the sample std is exact to ~0.1%
    assert abs(big.std().item() - 0.02) < 0.0005 and abs(big.mean().item()) < 0.0005
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005
    wide = [m for m in d.main if isinstance(m, nn.Conv2d)][-2].parametrizations.weight.original  # 256 -> 512
    assert abs(wide.std().item() - 0.02) < 0.0005


def test_width_64_generator_costs_the_documented_flops():
    # 0.476 GFLOP a sprite: the figure of the plain width-64 DCGAN this project measures against
    assert round(generator_flops(ModelConfig(ngf=64)) / 1e9, 3) == 0.476


@pytest.mark.parametrize(
    "bad",
    [
        dict(image_size=100),
        dict(image_size=6),
        dict(nz=0),
        dict(ngf=-1),
        dict(d_norm="layer"),
        dict(d_norm="spectral-batch"),
    ],
)
def test_config_rejects_impossible_models(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_checkpoints_from_before_d_norm_existed_keep_the_paper_s_discriminator():
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "d_norm"}
    assert ModelConfig.from_dict(old).d_norm == "batch"  # the only discriminator there was
