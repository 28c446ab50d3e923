"""The collapse alarm: diversity and near-duplicates of fixed-seed samples, calibrated on the training data.

Mode collapse shows as samples that are twins of each other: real sprites are never closer to one another
than a threshold measured on the training set itself, so a sample whose nearest fellow sample is closer than
that has a twin no real sprite has. The alarm trips when a quarter of the samples have one, or when samples
that were clearly diverse fall below half the real sprites' spread (see `collapsed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import (
    grid_texture,
    hard_alpha,
    line_art_share,
    mean_ms_ssim,
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


@dataclass(frozen=True)
class CollapseWatch:
    real_spread: float  # mean pairwise distance among the training sprites
    threshold: float  # the smallest distance between two training sprites
    real_colour_spread: float = 1.0  # mean pairwise distance among their mean colours
    real_line_art: float = 1.0  # share of their opaque pixels that are outline or line art (line_art_share)

    @classmethod
    def from_images(cls, images: np.ndarray, limit: int = 1024, seed: int = 0) -> CollapseWatch:
        """Calibrate on training images, uint8 (N, 4, H, W) as the data loader holds them."""
        if len(images) > limit:
            images = images[np.random.default_rng(seed).choice(len(images), limit, replace=False)]
        sprites = images.transpose(0, 2, 3, 1)
        real = pixel_features(sprites)
        colours = mean_pairwise_distance(sprite_colours(sprites)) or 1.0
        line_art = line_art_share(sprites) or 1.0
        return cls(mean_pairwise_distance(real), float(nearest_distances(real).min()), colours, line_art)

    def measure(self, sprites: np.ndarray) -> dict:
        """diversity_ratio, near_duplicate_rate, and alike (past either alarm threshold) for uint8 RGBA sprites
        (N, H, W, 4), with ms_ssim, colour_spread, line_art and grid_texture recorded, not alarmed on (see
        dcgan.train.metrics; the last two on the sprites with alpha made hard, as dcgan-eval measures them).
        Whether `alike` means collapse depends on the stage of training: see WARMUP_EPOCHS."""
        x = pixel_features(sprites)
        diversity = mean_pairwise_distance(x) / self.real_spread if self.real_spread > 0 else 0.0
        near_dup = float((nearest_distances(x) < self.threshold).mean())
        alike = near_dup >= NEAR_DUPLICATE_ALARM or diversity < DIVERSITY_ALARM
        finished = hard_alpha(sprites)  # drawing is measured as dcgan-sample will deliver it, not on the haze
        return {
            "diversity_ratio": float(diversity),
            "near_duplicate_rate": near_dup,
            "ms_ssim": mean_ms_ssim(sprites, pairs=500),
            "colour_spread": mean_pairwise_distance(sprite_colours(sprites)) / self.real_colour_spread,
            "line_art": line_art_share(finished) / self.real_line_art,
            "grid_texture": grid_texture(finished),
            "alike": bool(alike),
        }


def collapsed(health: dict, best_diversity: float | None, epoch: int) -> bool:
    """The alarm, given the best diversity ratio of earlier samples that passed (None: none has yet).

    Twins count once past the warm-up, or once samples have passed. A low spread counts only after the
    samples were clearly diverse (DIVERSE): a slow start is not collapse. (On the article preset's run the
    spread hovered around 0.5 while its samples formed, epochs 8-29, with no twins, then rose past 1.0 by epoch 75.)"""
    twins = health["near_duplicate_rate"] >= NEAR_DUPLICATE_ALARM and (
        best_diversity is not None or epoch >= WARMUP_EPOCHS
    )
    shrunk = health["diversity_ratio"] < DIVERSITY_ALARM and best_diversity is not None and best_diversity >= DIVERSE
    return bool(twins or shrunk)


def describe(m: dict) -> str:
    return (
        f"{m['near_duplicate_rate']:.0%} of samples have a twin closer than any two real sprites "
        f"(alarm at {NEAR_DUPLICATE_ALARM:.0%}), diversity {m['diversity_ratio']:.2f} of the real sprites' "
        f"(alarm below {DIVERSITY_ALARM})"
    )
