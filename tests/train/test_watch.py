import numpy as np

from conftest import synthetic_sprite
from dcgan.train.metrics import hard_alpha
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

    slow = {"diversity_ratio": 0.3, "near_duplicate_rate": 0.0}
    twins = {"diversity_ratio": 0.9, "near_duplicate_rate": 0.6}
    assert not collapsed(slow, best_diversity=None, epoch=50)  # never diverse yet: still forming
    assert not collapsed(slow, best_diversity=0.55, epoch=50)  # only just passed: hovering, not collapse
    assert collapsed(slow, best_diversity=1.0, epoch=50)  # was clearly diverse, now shrunk
    assert not collapsed(twins, best_diversity=None, epoch=WARMUP_EPOCHS - 1)
    assert collapsed(twins, best_diversity=None, epoch=WARMUP_EPOCHS)
    assert collapsed(twins, best_diversity=0.6, epoch=1)


def test_the_watch_records_line_art_against_the_training_sprites():
    real = sprites(100, 1)
    real[..., :3] = np.where(real[..., 3:] > 0, real[..., :3] // 4, 0)  # dark sprites: their line art is all
    watch = CollapseWatch.from_images(real.transpose(0, 3, 1, 2))
    assert watch.measure(real[:64])["line_art"] > 0.9
    washed = real[:64].copy()
    washed[..., :3] = np.where(washed[..., 3:] > 0, 255 - washed[..., :3] // 2, 0)  # the same, pale
    health = watch.measure(washed)
    assert health["line_art"] == 0.0 and 0.5 < health["grid_texture"] < 2


def test_the_watch_measures_drawing_as_the_sampler_finishes_it():
    """A raw generator output: a pale opaque body in a faint black haze (alpha 40 of 255). The sampler makes the
    haze transparent, so it is no line art; counted as opaque, it would be most of the picture's."""
    real = sprites(100, 1)
    watch = CollapseWatch.from_images(real.transpose(0, 3, 1, 2))
    raw = np.zeros((64, 96, 96, 4), np.uint8)
    raw[..., 3] = 40  # haze everywhere, black
    raw[:, 30:60, 30:60] = (230, 220, 200, 255)  # the body
    assert watch.measure(raw)["line_art"] == 0.0
    finished = hard_alpha(raw)
    assert set(np.unique(finished[..., 3])) == {0, 255} and finished[..., :3][finished[..., 3] == 0].max() == 0
    assert (finished[:, 30:60, 30:60] == raw[:, 30:60, 30:60]).all()


def test_hard_alpha_finishes_uint8_sprites_as_the_sampler_finishes_raw_output():
    """hard_alpha repeats finish_sprites' threshold on uint8 levels: both must give the same sprites."""
    from dcgan.serve.contract import finish_sprites

    raw = np.random.default_rng(0).uniform(-1, 1, (8, 4, 96, 96)).astype(np.float32)
    levels = np.clip(np.round((raw + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert (hard_alpha(levels) == finish_sprites(raw)).all()
