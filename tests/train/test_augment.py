import pytest
import torch

from dcgan.train.augment import (
    ADA_SPEED_IMAGES,
    ada_adjust,
    ada_geometric,
    color,
    cutout,
    diff_augment,
    parse_policy,
    translation,
)


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


def test_ada_at_zero_probability_is_the_identity_and_draws_nothing():
    x, rng = sprite_batch(), torch.Generator().manual_seed(4)
    state = rng.get_state()
    assert ada_geometric(x, 0.0, rng) is x
    assert torch.equal(rng.get_state(), state)  # so a run whose p stays 0 is the run without ADA


def test_ada_moves_sprites_about_the_centre_and_brings_in_transparent_pixels_only():
    x = -torch.ones(64, 4, 96, 96)
    x[:, :, 40:56, 40:56] = 0.5  # a centred opaque square, away from the border at any scale drawn
    x[:, 3, 40:56, 40:56] = 1.0
    y = ada_geometric(x, 1.0, torch.Generator().manual_seed(5))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert ((y - x).abs().flatten(1).amax(dim=1) > 0.1).all()  # at p = 1 every sprite is transformed
    alpha = (y[:, 3] + 1) / 2
    coords = torch.arange(96, dtype=torch.float32) + 0.5
    row_centre = (alpha.sum(dim=2) * coords).sum(dim=1) / alpha.sum(dim=(1, 2))
    col_centre = (alpha.sum(dim=1) * coords).sum(dim=1) / alpha.sum(dim=(1, 2))
    torch.testing.assert_close(row_centre, torch.full((64,), 48.0), atol=0.1, rtol=0)
    torch.testing.assert_close(col_centre, torch.full((64,), 48.0), atol=0.1, rtol=0)
    assert (y[:, :, :8, :] == -1).all() and (y[:, :, :, -8:] == -1).all()  # the border stays transparent
    transparent = (y[:, 3] == -1)[:, None].expand(-1, 3, -1, -1)
    assert (y[:, :3][transparent] == -1).all()  # no colour where nothing is visible
    empty = -torch.ones(4, 4, 96, 96)
    assert torch.equal(ada_geometric(empty, 1.0, torch.Generator().manual_seed(6)), empty)


def test_ada_applies_each_transform_with_probability_p():
    x = torch.rand(4000, 4, 8, 8) * 2 - 1
    for p in (0.1, 0.3):
        y = ada_geometric(x, p, torch.Generator().manual_seed(7))
        changed = (y != x).flatten(1).any(dim=1).float().mean().item()
        assert changed == pytest.approx(1 - (1 - p) ** 3, abs=0.03)  # three transforms, each with probability p


def test_ada_is_differentiable():
    x = sprite_batch().requires_grad_()
    ada_geometric(x, 1.0, torch.Generator().manual_seed(8)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ada_probability_follows_the_share_of_confident_real_scores():
    step = 32 / ADA_SPEED_IMAGES
    assert ada_adjust(0.5, 0.8, 0.6, 32) == pytest.approx(0.5 + step)  # D sure of too many real sprites: more
    assert ada_adjust(0.5, 0.2, 0.6, 32) == pytest.approx(0.5 - step)
    assert ada_adjust(0.5, 0.6, 0.6, 32) == 0.5
    assert ada_adjust(0.0, -1.0, 0.6, 32) == 0.0 and ada_adjust(1.0, 1.0, 0.6, 32) == 1.0
    p = 0.0
    for _ in range(ADA_SPEED_IMAGES // 32):
        p = ada_adjust(p, 1.0, 0.6, 32)
    assert p == pytest.approx(1.0, abs=step)  # from 0 to 1 in ADA_SPEED_IMAGES images
