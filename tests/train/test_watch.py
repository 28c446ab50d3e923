import numpy as np

from conftest import synthetic_sprite
from dcgan.train.watch import CollapseWatch


def sprites(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([np.asarray(synthetic_sprite(rng).convert("RGBA")) for _ in range(n)])


def test_real_looking_samples_pass_and_twins_trip_the_alarm():
    train = sprites(100, 1).transpose(0, 3, 1, 2)  # as the loader holds them
    watch = CollapseWatch.from_images(train)
    healthy = watch.measure(sprites(64, 2))
    assert not healthy["alike"] and healthy["near_duplicate_rate"] < 0.1 and healthy["diversity_ratio"] > 0.8
    twins = watch.measure(np.repeat(sprites(8, 3), 8, axis=0))  # 8 creatures, 8 copies each
    assert twins["alike"] and twins["near_duplicate_rate"] == 1.0


def test_alarm_rules_ignore_a_slow_start_but_not_twins_or_a_shrinking_spread():
    from dcgan.train.watch import WARMUP_EPOCHS, collapsed

    slow = {"diversity_ratio": 0.3, "near_duplicate_rate": 0.0, "colour_spread": 0.9}
    twins = {"diversity_ratio": 0.9, "near_duplicate_rate": 0.6, "colour_spread": 0.9}
    assert not collapsed(slow, best_diversity=None, epoch=50)  # never diverse yet: still forming
    assert not collapsed(slow, best_diversity=0.55, epoch=50)  # only just passed: hovering, not collapse
    assert collapsed(slow, best_diversity=1.0, epoch=50)  # was clearly diverse, now shrunk
    assert not collapsed(twins, best_diversity=None, epoch=WARMUP_EPOCHS - 1)
    assert collapsed(twins, best_diversity=None, epoch=WARMUP_EPOCHS)
    assert collapsed(twins, best_diversity=0.6, epoch=1)


def one_colour(sprites, rgb=(200, 90, 60)):
    """The same shapes, every visible pixel one colour."""
    out = sprites.copy()
    out[out[..., 3] >= 128, :3] = rgb
    return out


def test_diverse_shapes_in_one_colour_are_colour_collapse():
    from dcgan.train.watch import COLOUR_ALARM, COLOUR_WARMUP_EPOCHS, collapsed

    watch = CollapseWatch.from_images(sprites(100, 1).transpose(0, 3, 1, 2))
    samples = sprites(64, 2)
    healthy, hue = watch.measure(samples), watch.measure(one_colour(samples))
    assert healthy["colour_spread"] > 0.8 and not healthy["alike"]
    assert hue["colour_spread"] < 0.01 and hue["alike"]
    varied_shapes = {"diversity_ratio": 0.9, "near_duplicate_rate": 0.0}
    one_hue = {**varied_shapes, "colour_spread": hue["colour_spread"]}
    assert not collapsed(one_hue, best_diversity=None, epoch=COLOUR_WARMUP_EPOCHS - 1)  # colour comes later than shape
    assert collapsed(one_hue, best_diversity=None, epoch=COLOUR_WARMUP_EPOCHS)
    assert collapsed(one_hue, best_diversity=0.9, epoch=100)
    assert not collapsed({**varied_shapes, "colour_spread": COLOUR_ALARM * 1.1}, best_diversity=0.9, epoch=100)
