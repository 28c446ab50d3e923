"""The demo checkpoint's calibration: the layer that draws the sprite, scaled so a random generator draws like a
trained one, for every generator."""

import pytest
import torch
from torch import nn

from dcgan.serve.latent import latents
from dcgan.train.config import GENERATORS, ModelConfig
from dcgan.train.demo import calibrate, output_layer
from dcgan.train.model import build_models


def test_the_output_layer_is_the_one_that_draws_the_sprite():
    paper, resize, palette = (build_models(ModelConfig(ngf=4, generator=g))[0] for g in ("paper", "resize", "palette"))
    assert isinstance(output_layer(paper), nn.ConvTranspose2d) and output_layer(paper).out_channels == 4
    # resize's only transposed convolution is its projection of z; the sprite is drawn by a stride-1 convolution
    assert type(output_layer(resize)) is nn.Conv2d and output_layer(resize).out_channels == 4
    assert output_layer(palette) is palette.main.head.choose  # no output convolution: the palette's scores


@pytest.mark.parametrize("generator", GENERATORS)
def test_calibrated_generators_feed_their_output_layer_unit_variance_on_unseen_latents(generator):
    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(ngf=4, generator=generator))
    calibrate(g, 100)
    assert not g.training
    seen = []
    output_layer(g).register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        sprites = g(torch.from_numpy(latents(range(1000, 1128), 100)))  # not the calibration's seeds
    assert 0.8 < seen[0].std() < 1.25  # batch-norm statistics that belong to the weights as scaled
    alpha = sprites[:, 3]
    assert (alpha > 0.5).any() and (alpha < -0.5).any()  # both sides of the threshold
    assert sprites.min() < -0.9 and sprites.max() > 0.9
