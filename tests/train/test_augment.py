import pytest
import torch

from dcgan.train.augment import color, cutout, diff_augment, translation
from dcgan.train.config import parse_policy


def sprite_batch():
    x = -torch.ones(6, 4, 96, 96)  # transparent everywhere
    x[:, :, 30:60, 30:60] = torch.rand(6, 4, 30, 30) * 2 - 1
    x[:, 3, 30:60, 30:60] = 1.0  # an opaque square
    return x


def test_colour_never_touches_alpha_or_invisible_pixels():
    x = sprite_batch()
    y = color(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[:, 3], x[:, 3])
    assert (y[:, :3][x[:, 3:4].expand(-1, 3, -1, -1) == -1] == -1).all()
    assert not torch.allclose(y[:, :3, 30:60, 30:60], x[:, :3, 30:60, 30:60])


def test_translation_and_cutout_bring_in_transparent_pixels_only():
    x = sprite_batch()
    for fn in (translation, cutout):
        y = fn(x, torch.Generator().manual_seed(1))
        assert y.shape == x.shape
        assert ((y == -1).all(dim=1) | (y[:, 3] == 1)).all()  # every pixel transparent or one of the opaque ones
    cut = cutout(torch.ones(2, 4, 96, 96), torch.Generator().manual_seed(2))
    assert ((cut == -1).all(dim=1).float().mean(dim=(1, 2)) > 0.1).all()  # a sizeable transparent hole


def test_augment_is_differentiable_and_follows_its_generator():
    x = sprite_batch().requires_grad_()
    policy = parse_policy("color,translation,cutout")
    y1 = diff_augment(x, policy, torch.Generator().manual_seed(3))
    y2 = diff_augment(x, policy, torch.Generator().manual_seed(3))
    torch.testing.assert_close(y1, y2)
    y1.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rotate"):
        parse_policy("color,rotate")
