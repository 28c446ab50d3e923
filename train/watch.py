"""The collapse alarm: diversity and near-duplicates of fixed-seed samples, calibrated on the training data.

Mode collapse shows as samples that are twins of each other: real sprites are never closer to one another
than a threshold measured on the training set itself, so a sample whose nearest fellow sample is closer than
that has a twin no real sprite has. The alarm trips when a quarter of the samples have one, or when samples
that were clearly diverse fall below half the real sprites' spread (see `alarms`).

A generator can also collapse without twins: every creature a different shape, but all one colour and one
texture. Its samples then crowd into a few of the k-means bins the training sprites fill (dcgan-eval's NDB
bins), which `mode_coverage` counts; the alarm trips when they stay crowded for CROWDED_EPOCHS (`follow_modes`).
Or every creature takes one colour while its shapes still spread over the bins (colour collapse): the alarm trips
when the spread of the samples' mean colours stays low for ONE_COLOUR_EPOCHS, past the epoch by which healthy runs
have taken colour (ONE_COLOUR_FROM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import (
    EVAL_SEED,
    bin_counts,
    effective_bins,
    kmeans,
    mean_pairwise_distance,
    nearest_distances,
    pixel_features,
    sprite_colours,
)

WATCH_SEEDS = range(256)  # the samples measured every --sample-every epochs (the grid shows the first 64)
NEAR_DUPLICATE_ALARM = 0.25  # share of samples with a twin; real sprites: 0 by construction
DIVERSITY_ALARM = 0.5  # mean pairwise distance over the real sprites'; real sprites: 1
# A new generator's samples are all alike before it has learnt anything, which is not collapse: twins count
# from this epoch on (or once the samples have passed the check).
WARMUP_EPOCHS = 10
DIVERSE = 0.8  # a spread the samples must have reached before a fall below DIVERSITY_ALARM counts
MODE_BINS = 40  # k-means bins of the training sprites that mode coverage counts in: dcgan-eval's NDB bins
# Healthy runs crowd for a while too, as their samples take colour, and spread again within 25 epochs; a run that
# stays crowded for longer has collapsed without twins. Crowding counts once the samples have spread (MODES_SPREAD).
MODES_SPREAD = 0.4  # mode coverage the samples must have reached before crowding counts
CROWDED = 0.2  # mode coverage at or below which the samples are crowded into a few bins
CROWDED_EPOCHS = 30  # how long they must stay crowded for the alarm
# Healthy runs also pass through a phase in which every creature has much the same colour, and have taken colour by
# ONE_COLOUR_FROM; a run still in one colour long after it has collapsed in colour, though its shapes may still spread
# over the bins (docs/evaluation.md).
ONE_COLOUR_FROM = 60  # the epoch from which a low colour spread counts
ONE_COLOUR = 0.3  # colour spread (over the training sprites') below which the samples are in one colour
ONE_COLOUR_EPOCHS = 25  # how long they must stay in one colour for the alarm
RULES = ("twins", "shrunk", "crowded", "one colour")  # the alarm's rules (`alarms`), in the order it reports them


@dataclass(frozen=True)
class CollapseWatch:
    real_spread: float  # mean pairwise distance among the training sprites
    threshold: float  # the smallest distance between two training sprites
    real_colour_spread: float = 1.0  # mean pairwise distance among their mean colours
    centres: np.ndarray | None = None  # k-means bins of their pixel features (MODE_BINS, as dcgan-eval's); from_images
    real_modes: float = 1.0  # effective number of those bins the training sprites fill (effective_bins)

    @classmethod
    def from_images(cls, images: np.ndarray, limit: int = 1024, seed: int = 0) -> CollapseWatch:
        """Calibrate on training images, uint8 (N, 4, H, W) as the data loader holds them."""
        if len(images) > limit:
            images = images[np.random.default_rng(seed).choice(len(images), limit, replace=False)]
        sprites = images.transpose(0, 2, 3, 1)
        real = pixel_features(sprites)
        colours = mean_pairwise_distance(sprite_colours(sprites)) or 1.0
        centres = kmeans(real, min(MODE_BINS, len(real)), EVAL_SEED)
        modes = effective_bins(bin_counts(real, centres))
        spread, threshold = mean_pairwise_distance(real), float(nearest_distances(real).min())
        return cls(spread, threshold, colours, centres, modes)

    def measure(self, sprites: np.ndarray) -> dict:
        """What the alarm reads in finished uint8 RGBA sprites (N, H, W, 4): diversity_ratio, near_duplicate_rate and
        alike (past either of their thresholds), colour_spread (the spread of the sprites' mean colours over the
        training sprites') and mode_coverage (the effective number of the training sprites' k-means bins the samples
        fill, over the training sprites' own; it falls as samples crowd into a few bins, whatever sets those apart).
        Whether `alike` means collapse depends on the stage of training: see WARMUP_EPOCHS."""
        x = pixel_features(sprites)
        diversity = mean_pairwise_distance(x) / self.real_spread if self.real_spread > 0 else 0.0
        near_dup = float((nearest_distances(x) < self.threshold).mean())
        alike = near_dup >= NEAR_DUPLICATE_ALARM or diversity < DIVERSITY_ALARM
        return {
            "diversity_ratio": float(diversity),
            "near_duplicate_rate": near_dup,
            "colour_spread": mean_pairwise_distance(sprite_colours(sprites)) / self.real_colour_spread,
            "mode_coverage": effective_bins(bin_counts(x, self.centres)) / self.real_modes,
            "alike": bool(alike),
        }


def follow_modes(modes: dict | None, health: dict, epoch: int) -> dict:
    """The history the crowding and one-colour rules need, updated with this epoch's samples (`health`, from
    CollapseWatch.measure): {"best": the highest mode coverage so far, "crowded_since": the epoch since which the
    samples have been crowded, "one_colour_since": the epoch since which they have been in one colour; None
    while they are not}. Crowding before the samples have spread (MODES_SPREAD) is a slow start, not collapse,
    and so is one colour before ONE_COLOUR_FROM. A history saved before the one-colour rule starts it afresh."""
    coverage = health["mode_coverage"]
    best = max(coverage, modes["best"]) if modes else coverage
    crowded_now = modes is not None and modes["best"] >= MODES_SPREAD and coverage <= CROWDED
    one_colour_now = epoch >= ONE_COLOUR_FROM and health["colour_spread"] < ONE_COLOUR

    def since(key: str, now: bool) -> int | None:
        before = modes.get(key) if modes else None
        return (epoch if before is None else before) if now else None

    return {
        "best": best,
        "crowded_since": since("crowded_since", crowded_now),
        "one_colour_since": since("one_colour_since", one_colour_now),
    }


def lasted(modes: dict | None, key: str, epoch: int) -> bool:
    """Whether the state `key` of `follow_modes` has lasted long enough for the alarm: "crowded_since" for
    CROWDED_EPOCHS, "one_colour_since" for ONE_COLOUR_EPOCHS."""
    since = modes.get(key) if modes else None
    epochs = {"crowded_since": CROWDED_EPOCHS, "one_colour_since": ONE_COLOUR_EPOCHS}[key]
    return since is not None and epoch - since >= epochs


def alarms(health: dict, best_diversity: float | None, epoch: int, modes: dict | None = None) -> list[str]:
    """The alarm's rules that this epoch's samples trip (RULES, in that order; none: healthy), given the best
    diversity ratio of earlier samples that passed (None: none has yet) and the mode-coverage history
    (`follow_modes`, this epoch's included).

    Twins count once past the warm-up, or once samples have passed. A low spread counts only after the
    samples were clearly diverse (DIVERSE): a slow start, whose spread may hover near the threshold while its
    samples form, is not collapse. Crowding and one colour count once they have lasted (`lasted`)."""
    tripped = {
        "twins": health["near_duplicate_rate"] >= NEAR_DUPLICATE_ALARM
        and (best_diversity is not None or epoch >= WARMUP_EPOCHS),
        "shrunk": health["diversity_ratio"] < DIVERSITY_ALARM
        and best_diversity is not None
        and best_diversity >= DIVERSE,
        "crowded": lasted(modes, "crowded_since", epoch),
        "one colour": lasted(modes, "one_colour_since", epoch),
    }
    return [rule for rule in RULES if tripped[rule]]


def better(health: dict, modes: dict, best: dict | None) -> bool:
    """Whether this epoch's samples make a better best.pt than `best` ({"epoch", "diversity_ratio"}, None: no
    epoch has qualified yet): more diverse, with no twins and no shrunk spread (`alike`), neither crowded into a
    few bins nor in one colour (modes: `follow_modes`, this epoch's included), for diversity alone would favour
    varied samples of a collapse without twins."""
    return (
        not health["alike"]
        and modes["crowded_since"] is None
        and modes["one_colour_since"] is None
        and (best is None or health["diversity_ratio"] > best["diversity_ratio"])
    )


def describe(m: dict, modes: dict | None = None, tripped: list[str] | tuple[str, ...] = ()) -> str:
    """The watch's reading in words: first the rules in `tripped` (from `alarms`), then the others' figures."""
    parts = {
        "twins": f"{m['near_duplicate_rate']:.0%} of samples have a twin closer than any two real sprites "
        f"(alarm at {NEAR_DUPLICATE_ALARM:.0%})",
        "shrunk": f"diversity {m['diversity_ratio']:.2f} of the real sprites' (alarm below {DIVERSITY_ALARM})",
    }
    if modes and modes["crowded_since"] is not None:
        parts["crowded"] = (
            f"since epoch {modes['crowded_since']} crowded into a few of the training sprites' bins "
            f"(mode coverage {m['mode_coverage']:.2f}, alarm at {CROWDED} or below for {CROWDED_EPOCHS} epochs)"
        )
    if modes and modes["one_colour_since"] is not None:
        parts["one colour"] = (
            f"since epoch {modes['one_colour_since']} every creature much the same colour "
            f"(colour spread {m['colour_spread']:.2f}, alarm below {ONE_COLOUR} for {ONE_COLOUR_EPOCHS} epochs)"
        )
    first = [parts[rule] for rule in RULES if rule in tripped and rule in parts]
    rest = [text for rule, text in parts.items() if rule not in tripped]
    return "; ".join(first + rest)
