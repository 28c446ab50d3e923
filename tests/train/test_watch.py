import numpy as np

from conftest import crowd, synthetic_sprite
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
    from dcgan.train.watch import WARMUP_EPOCHS, alarms

    slow = {"diversity_ratio": 0.3, "near_duplicate_rate": 0.0}
    twins = {"diversity_ratio": 0.9, "near_duplicate_rate": 0.6}
    assert alarms(slow, best_diversity=None, epoch=50) == []  # never diverse yet: still forming
    assert alarms(slow, best_diversity=0.55, epoch=50) == []  # only just passed: hovering, not collapse
    assert alarms(slow, best_diversity=1.0, epoch=50) == ["shrunk"]  # was clearly diverse, now shrunk
    assert alarms(twins, best_diversity=None, epoch=WARMUP_EPOCHS - 1) == []
    assert alarms(twins, best_diversity=None, epoch=WARMUP_EPOCHS) == ["twins"]
    assert alarms(twins, best_diversity=0.6, epoch=1) == ["twins"]
    assert alarms({**slow, "near_duplicate_rate": 0.6}, best_diversity=1.0, epoch=50) == ["twins", "shrunk"]


def test_the_alarm_message_leads_with_the_rule_that_tripped():
    from dcgan.train.watch import ONE_COLOUR_FROM, alarms, describe, follow_modes

    health = {"near_duplicate_rate": 0.0, "diversity_ratio": 0.9, "mode_coverage": 0.5, "colour_spread": 0.2}
    modes = None
    for epoch in range(ONE_COLOUR_FROM, ONE_COLOUR_FROM + 100, 5):
        modes = follow_modes(modes, health, epoch)
        tripped = alarms(health, 0.9, epoch, modes)
        if tripped:
            break
    assert tripped == ["one colour"]
    text = describe(health, modes, tripped)
    assert text.startswith(f"since epoch {ONE_COLOUR_FROM} every creature much the same colour")
    assert "0% of samples have a twin" in text and "diversity 0.90" in text  # the other figures follow
    assert describe(health, modes).startswith("0% of samples have a twin")  # nothing tripped: the usual order


def test_mode_coverage_falls_when_varied_samples_crowd_into_a_few_of_the_training_bins():
    """Sprites unlike each other (no twins, spread above the alarm) that all fall into two of the training
    sprites' k-means bins: the spread misses it, the coverage does not."""
    watch = CollapseWatch.from_images(sprites(100, 1).transpose(0, 3, 1, 2))
    fresh = watch.measure(sprites(128, 2))
    crowded = watch.measure(crowd(sprites(600, 3), watch.centres, 64))
    assert fresh["mode_coverage"] > 0.5
    assert crowded["mode_coverage"] < 0.15 and not crowded["alike"] and crowded["diversity_ratio"] > 0.7


def first_alarm(coverages, every=10, colours=None):
    """The epoch at which the alarm first trips on samples measured every `every` epochs with these mode coverages
    and colour spreads (1.0, as varied as real sprites, where not given); None if it never does."""
    from dcgan.train.watch import alarms, follow_modes

    modes, health = None, {"diversity_ratio": 0.9, "near_duplicate_rate": 0.0}
    for i, coverage in enumerate(coverages):
        epoch = (i + 1) * every
        measured = {**health, "mode_coverage": coverage, "colour_spread": colours[i] if colours else 1.0}
        modes = follow_modes(modes, measured, epoch)
        if alarms(measured, 0.9, epoch, modes):
            return epoch
    return None


def test_crowding_trips_the_alarm_only_when_it_lasts_after_the_samples_have_spread():
    """Mode coverage every 10 epochs as measured on two width-54 runs: a healthy one (seed 6) that crowds while
    its samples take colour, then spreads again, and the one-batch run (--d-joint-batch, since removed) whose
    creatures all took one colour and one texture; and every 5 epochs, the healthy run that crowded longest (seed 9,
    crowded for 25 epochs from epoch 60)."""
    from dcgan.train.watch import CROWDED_EPOCHS, follow_modes, lasted

    healthy = [0.05, 0.07, 0.44, 0.44, 0.30, 0.23, 0.23, 0.30, 0.44, 0.57, 0.65, 0.68, 0.68]
    one_batch = [0.07, 0.16, 0.71, 0.79, 0.41, 0.18, 0.13, 0.13, 0.11]
    assert first_alarm(healthy) is None
    seed_9 = [0.05, 0.05, 0.06, 0.15, 0.56, 0.57, 0.56, 0.51, 0.42, 0.31, 0.22, 0.18,
              0.16, 0.15, 0.17, 0.19, 0.23, 0.29]  # fmt: skip
    assert first_alarm(seed_9, every=5) is None
    assert first_alarm(one_batch) == 60 + (CROWDED_EPOCHS + 9) // 10 * 10  # crowded since epoch 60
    assert first_alarm([0.05] * 30) is None  # never spread: a slow start
    brief = [0.05] * 5 + [0.5] * 2 + [0.15] * (CROWDED_EPOCHS // 5) + [0.3] * 10  # every 5 epochs
    assert first_alarm(brief, every=5) is None
    modes = {"best": 0.7, "crowded_since": None, "one_colour_since": None}
    for epoch in (40, 40 + CROWDED_EPOCHS):
        modes = follow_modes(modes, {"mode_coverage": 0.1, "colour_spread": 1.0}, epoch)
    assert modes == {"best": 0.7, "crowded_since": 40, "one_colour_since": None}
    assert lasted(modes, "crowded_since", 40 + CROWDED_EPOCHS)
    spread_again = follow_modes(modes, {"mode_coverage": 0.3, "colour_spread": 1.0}, 70)
    assert spread_again["crowded_since"] is None  # the count starts over
    old = follow_modes({"best": 0.7, "crowded_since": 40}, {"mode_coverage": 0.1, "colour_spread": 0.2}, 70)
    assert old == {"best": 0.7, "crowded_since": 40, "one_colour_since": 70}  # a history saved before colours


def test_one_colour_trips_the_alarm_only_when_it_lasts_past_the_epoch_healthy_runs_take_colour():
    """Colour spread every 10 epochs as measured: the spectral-norm run (--d-norm spectral --loss hinge, width 48)
    whose creatures were all one beige, while their shapes still spread over the bins (mode coverage 0.24-0.47),
    and the healthy run that took colour slowest (width 54, seed 6, EMA half-life 40,000); and every 5 epochs,
    the healthy run whose colour dipped lowest after epoch 60 (seed 9)."""
    from dcgan.train.watch import ONE_COLOUR_EPOCHS, ONE_COLOUR_FROM, describe, follow_modes

    spectral = [0.15, 0.26, 0.32, 0.32, 0.29, 0.22, 0.21, 0.20, 0.19, 0.19]
    slowest = [0.03, 0.05, 0.12, 0.23, 0.38, 0.47, 0.50, 0.49, 0.47, 0.51, 0.58, 0.68, 0.76, 0.82, 0.89]
    coverage = [0.3] * 15  # spread over the bins throughout: the crowding rule stays silent
    assert (
        first_alarm(coverage[: len(spectral)], colours=spectral) == ONE_COLOUR_FROM + (ONE_COLOUR_EPOCHS + 9) // 10 * 10
    )
    assert first_alarm(coverage, colours=slowest) is None
    seed_9 = [0.02, 0.04, 0.04, 0.07, 0.16, 0.25, 0.3, 0.36, 0.43, 0.48, 0.46, 0.43, 0.4, 0.39, 0.41, 0.45, 0.52, 0.59]
    assert first_alarm([0.3] * len(seed_9), every=5, colours=seed_9) is None  # the lowest healthy reading past 60
    assert first_alarm(coverage[:5], colours=[0.05] * 5) is None  # no colour yet at epoch 50: a slow start
    health = {"near_duplicate_rate": 0.0, "diversity_ratio": 0.7, "mode_coverage": 0.3, "colour_spread": 0.2}
    modes = follow_modes(None, health, ONE_COLOUR_FROM)
    assert f"since epoch {ONE_COLOUR_FROM} every creature much the same colour" in describe(health, modes)


def test_best_checkpoint_skips_alike_crowded_and_one_colour_samples_however_varied():
    from dcgan.train.watch import better

    best = {"epoch": 40, "diversity_ratio": 0.9}
    spread = {"best": 0.7, "crowded_since": None, "one_colour_since": None}
    crowded, one_colour = {**spread, "crowded_since": 60}, {**spread, "one_colour_since": 60}
    varied = {"diversity_ratio": 0.95, "alike": False}
    assert better(varied, spread, best) and better(varied, spread, None)
    assert not better({**varied, "diversity_ratio": 0.85}, spread, best)
    for stuck in (crowded, one_colour):
        assert not better(varied, stuck, best) and not better(varied, stuck, None)
    assert not better({**varied, "alike": True}, spread, None)
