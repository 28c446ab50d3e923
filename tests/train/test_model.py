import pytest
import torch
from torch import nn

from dcgan.train.config import ModelConfig
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


@pytest.mark.parametrize("net", [Generator, Discriminator])
def test_follows_dcgan_guidelines(net):
    model = net(ModelConfig(ngf=8, ndf=8))
    kinds = {type(m) for m in model.modules()} - {net, nn.Sequential}
    allowed = {nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh, nn.LeakyReLU}
    assert kinds <= allowed, f"unexpected layers {kinds - allowed}"  # no pooling, no dense layers
    layers = list(model.main)
    convs = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.stride == (2, 2) for c in convs[1:-1]), "hidden stages resample by stride"
    if net is Generator:
        assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[-2], nn.ConvTranspose2d)  # no BN on output
        assert all(
            isinstance(m, nn.ReLU) for m in layers[:-1] if not isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d))
        )
    else:
        assert isinstance(layers[1], nn.LeakyReLU) and layers[1].negative_slope == 0.2  # no BN on input
        assert isinstance(layers[-1], nn.Conv2d)  # logits straight out of a convolution
        assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == len(convs) - 2


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
    g, d = build_models(ModelConfig())
    big = g.main[3].weight  # 512 -> 256, 2M weights: the sample std is exact to ~0.1%
    assert abs(big.std().item() - 0.02) < 0.0005 and abs(big.mean().item()) < 0.0005
    bn = torch.cat([m.weight for m in list(g.modules()) + list(d.modules()) if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005


def test_width_64_generator_costs_the_documented_flops():
    # 0.476 GFLOP a sprite: the figure of the plain width-64 DCGAN this project measures against
    assert round(generator_flops(ModelConfig()) / 1e9, 3) == 0.476


@pytest.mark.parametrize("bad", [dict(image_size=100), dict(image_size=6), dict(nz=0), dict(ngf=-1)])
def test_config_rejects_impossible_models(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_config_round_trips_and_names_unknown_keys():
    cfg = ModelConfig(nz=32, ngf=16)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 3})
