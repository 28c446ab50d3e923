import pytest
import torch
from torch import nn

from dcgan.train.config import D_NORMS, GENERATORS, ModelConfig
from dcgan.train.model import Discriminator, Generator, build_models, generator_flops


@pytest.mark.parametrize("generator", GENERATORS)
def test_generator_makes_native_96px_rgba_in_tanh_range(generator):
    g, _ = build_models(ModelConfig(ngf=16, generator=generator))
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


@pytest.mark.parametrize(
    "net, d_norm, generator",
    [(Generator, "batch", "paper"), (Generator, "batch", "resize"), *((Discriminator, n, "paper") for n in D_NORMS)],
)
def test_follows_dcgan_guidelines(net, d_norm, generator):
    model = net(ModelConfig(ngf=8, ndf=8, d_norm=d_norm, generator=generator))
    kinds = {type(m) for m in model.modules()} - {net, nn.Sequential}
    allowed = {nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh, nn.LeakyReLU}
    if generator == "resize":
        allowed.add(nn.Upsample)  # nearest-neighbour resizing, no parameters: still no pooling or dense layer
    assert kinds <= allowed, f"unexpected layers {kinds - allowed}"  # no pooling, no dense layers
    layers = list(model.main)
    convs = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if generator == "resize":  # each hidden stage: nearest x2, then a stride-1 3x3 convolution; so is the output
        ups = [i for i, m in enumerate(layers) if isinstance(m, nn.Upsample)]
        assert len(ups) == 4 and all(layers[i].mode == "nearest" and layers[i].scale_factor == 2 for i in ups)
        assert all(isinstance(layers[i + 1], nn.Conv2d) and layers[i + 1].kernel_size == (3, 3) for i in ups)
        assert all(c.stride == (1, 1) for c in convs[1:])
    else:
        assert all(c.stride == (2, 2) for c in convs[1:-1]), "hidden stages resample by stride"
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in layers)
    if net is Generator:
        assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[-2], (nn.ConvTranspose2d, nn.Conv2d))
        assert not isinstance(layers[-3], nn.BatchNorm2d)  # no batch norm on the output layer
        activations = [m for m in layers[:-1] if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))]
        assert all(isinstance(m, (nn.ReLU, nn.Upsample)) for m in activations)
        assert norms == len(convs) - 1
        return
    assert isinstance(layers[1], nn.LeakyReLU) and layers[1].negative_slope == 0.2  # no BN on input
    assert isinstance(layers[-1], nn.Conv2d)  # logits straight out of a convolution
    assert norms == (len(convs) - 2 if d_norm == "batch" else 0)  # none on the input or the score layer


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
    g, d = build_models(ModelConfig(ngf=64))
    big = g.main[3].weight  # 512 -> 256, 2M weights: the sample std is exact to ~0.1%
    assert abs(big.std().item() - 0.02) < 0.0005 and abs(big.mean().item()) < 0.0005
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.005 and abs(bn.std().item() - 0.02) < 0.005
    wide = [m for m in d.main if isinstance(m, nn.Conv2d)][-2].weight  # 256 -> 512
    assert abs(wide.std().item() - 0.02) < 0.0005


def test_width_64_generator_costs_the_documented_flops():
    # 0.476 GFLOP a sprite: the figure of the plain width-64 DCGAN this project measures against
    assert round(generator_flops(ModelConfig(ngf=64)) / 1e9, 3) == 0.476


@pytest.mark.parametrize(
    "settings, flops",
    [  # what the architecture-by-architecture formula gave before the count moved onto the layers
        (dict(generator="paper", ngf=54), 341_521_920),
        (dict(generator="paper", ngf=4, image_size=48), 705_024),
        (dict(generator="paper", ngf=8, nz=32, channels=3), 8_994_816),
        (dict(generator="resize", ngf=16), 352_198_656),
        (dict(generator="resize", ngf=54, image_size=48), 737_662_464),
        (dict(generator="resize", ngf=8, nz=32, image_size=24), 3_059_712),
        (dict(generator="palette", ngf=16), 386_727_936),
        (dict(generator="palette", ngf=64), 5_623_775_232),
        (dict(generator="palette", ngf=4, image_size=48), 7_034_880),
    ],
)
def test_flops_counted_on_the_layers_are_what_each_architecture_adds_up_to(settings, flops):
    assert generator_flops(ModelConfig(**settings)) == flops


def test_resize_generator_costs_what_its_layers_add_up_to():
    # 6x6 projection of z to 256 maps, then at 12, 24, 48 and 96 px a 3x3 convolution halving the width
    # (256 -> 128 -> 64 -> 32 -> 16), then 16 -> 4 at 96 px: 2 multiply-adds x pixels x in x out x 9 each
    stages = sum(2 * (12 * 2**i) ** 2 * (256 >> i) * (128 >> i) * 9 for i in range(4))
    expected = 2 * 100 * 256 * 36 + stages + 2 * 96 * 96 * 16 * 4 * 9
    assert generator_flops(ModelConfig(ngf=16, generator="resize")) == expected
    g, _ = build_models(ModelConfig(ngf=16, generator="resize"))
    kernels = 100 * 256 * 36 + sum((256 >> i) * (128 >> i) * 9 for i in range(4)) + 16 * 4 * 9
    assert sum(p.numel() for p in g.parameters() if p.dim() > 1) == kernels


@pytest.mark.parametrize(
    "bad",
    [
        dict(image_size=100),
        dict(image_size=6),
        dict(nz=0),
        dict(ngf=-1),
        dict(d_norm="layer"),
        dict(d_norm="spectral"),  # retired: a checkpoint that has it loads through config.retire
        dict(d_norm="spectral-batch"),
        dict(generator="stylegan"),
        dict(generator="sle"),  # retired: skip-layer excitation alone measured no better than resize
    ],
)
def test_config_rejects_impossible_models(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_checkpoints_from_before_a_setting_existed_keep_the_paper_s_networks():
    old = {k: v for k, v in ModelConfig().to_dict().items() if k not in ("d_norm", "generator")}
    assert ModelConfig.from_dict(old).d_norm == "batch"  # the only discriminator there was
    assert ModelConfig.from_dict(old).generator == "paper"  # and the only generator


def test_a_palette_sprite_takes_exactly_its_own_colours_or_transparency_when_sampled():
    from dcgan.train.model import PALETTE_SIZE

    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(ngf=4, generator="palette"))
    z = torch.randn(3, 100)
    with torch.no_grad():
        g.main.head.choose.weight.mul_(50)  # at init the scores hardly differ from pixel to pixel
        sprites = g.eval()(z)
    alpha = sprites[:, 3]
    assert set(alpha.unique().tolist()) == {-1.0, 1.0}  # hard alpha, both present
    transparent = (alpha == -1).unsqueeze(1).expand(-1, 3, -1, -1)
    assert (sprites[:, :3][transparent] == -1).all()  # transparent pixels are black, as sprites load
    for sprite, a in zip(sprites, alpha, strict=True):
        colours = sprite[:3].permute(1, 2, 0)[a == 1].unique(dim=0)
        assert 2 <= len(colours) <= PALETTE_SIZE  # the sprite's own few colours, nothing in between
    assert not torch.equal(sprites[0, :3].unique(), sprites[1, :3].unique())  # each sprite has a palette of its own


def test_the_palette_softmax_hardens_into_the_sampled_choice_as_the_temperature_falls():
    from dcgan.train.model import TEMPERATURE_END, palette_temperature

    assert palette_temperature(0, 1000) == 1.0
    assert palette_temperature(500, 1000) == pytest.approx(TEMPERATURE_END**0.5)  # log-linear
    assert palette_temperature(1000, 1000) == palette_temperature(10**6, 1000) == pytest.approx(TEMPERATURE_END)
    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(ngf=4, generator="palette"))
    z = torch.randn(2, 100)
    head = g.main.head
    with torch.no_grad():
        head.choose.weight.mul_(50)
        coarse = g.main.project(z[:, :, None, None])
        features = g.main.stages(coarse)
        hard = head.eval()(features, coarse)
        head.train()
        gaps = []
        for t in (1.0, 0.1, 1e-3):
            head.temperature = t
            gaps.append((head(features, coarse) - hard).abs().mean().item())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.05 * gaps[0], gaps  # all but near ties
    head.temperature = 1.0
    g.train()(z)[:, :3].mean().backward()  # in training both the scores and the colours learn
    assert head.choose.weight.grad.abs().sum() > 0 and head.colours.weight.grad.abs().sum() > 0
