"""The metrics dcgan-eval reports and dcgan-select ranks checkpoints by, in one catalogue, and the options both
commands read the real sprites with. Importable without torch (the commands' help needs no training stack)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import click


class Metric(NamedTuple):
    description: str  # what it measures (dcgan.train.metrics and dcgan.train.likeness compute it)
    better: str  # which way is better, against the real floor beside it
    heading: str  # the column heading in dcgan-select's table


METRICS: dict[str, Metric] = {
    "diversity_ratio": Metric(
        "mean pairwise distance, over the training set's", "near the floor (1 = as varied as real)", "diversity"
    ),
    "near_duplicate_rate": Metric(
        "share whose nearest other sample is closer than any two real sprites", "low", "near-duplicates"
    ),
    "ndb": Metric("k-means bins of the training set whose share differs (95%), at holdout count", "low", "NDB"),
    "jsd": Metric("Jensen-Shannon divergence of the bin shares, at holdout count", "low", "JSD"),
    "memorisation_ratio": Metric(
        "distance to the nearest training sprite, over the holdout's", ">= 0.9 (below: copying)", "memorisation"
    ),
    "kid": Metric("KID against the training set in a fixed random-CNN space", "low", "KID"),
    "ms_ssim": Metric("mean MS-SSIM of random pairs (1 = identical)", "near the floor; high: alike", "MS-SSIM"),
    "colour_spread": Metric(
        "spread of the sprites' mean colours, over the training set's",
        "near the floor; low: one colour",
        "colour spread",
    ),
    "line_art": Metric(
        "share of opaque pixels dark enough to be outline or line art, over the training set's",
        "near the floor; low: washed out",
        "line art",
    ),
    "grid_texture": Metric(
        "spectrum on the upsampling grid's frequencies (periods 2-8 px), over the rest of that band",
        "near the floor (about 1); high: a dotted texture",
        "grid texture",
    ),
    "flat_colour_share": Metric(
        "neighbouring opaque pixels of one flat colour (within 6 levels)", "near the floor", "flat colour"
    ),
    "colours_per_sprite": Metric(
        "distinct colours per sprite, 4 bits a channel", "near the floor; high: noise", "colours"
    ),
    "speck_share": Metric("opaque pixels outside each sprite's largest part", "near the floor; high: specks", "specks"),
    "parts_per_sprite": Metric(
        "connected parts of 4 px or more per sprite", "near the floor (about 1); high: torn", "parts"
    ),
    "dark_outline_share": Metric("silhouette-edge pixels dark enough to be outline", "near the floor", "outline"),
    "spectral_gap": Metric(
        "log power-spectrum gap to the training set, upper half of frequencies", "low; high: texture", "spectral gap"
    ),
    "classifier_accuracy": Metric(
        "a small CNN telling unseen real from unseen generated sprites", "near 0.5; 1: all told", "classifier"
    ),
    "fid_inception": Metric(
        "FID against the training set, Inception-v3 features, at holdout count", "low", "FID (Inception)"
    ),
    "kid_inception": Metric("KID against the training set, Inception-v3 features", "low", "KID (Inception)"),
}


def real_sprite_options(count_help: str, count_default: int = 1000):
    """The options every command that scores generated sprites against real ones takes: --data, --holdout, -n (as
    `count`) and --bins."""
    options = [
        click.option("--data", type=click.Path(path_type=Path), required=True, help="The training sprites."),
        click.option(
            "--holdout",
            type=click.Path(path_type=Path),
            default=None,
            show_default=False,
            help="Real sprites the model never saw, for the floors. Default: 10% of --data set aside.",
        ),
        click.option("-n", "count", type=click.IntRange(min=16), default=count_default, help=count_help),
        click.option(
            "--bins", type=click.IntRange(min=2), default=40, help="k-means bins of the training set (NDB, JSD)."
        ),
    ]

    def decorate(command):
        for option in reversed(options):  # as stacked decorators apply: the first listed is the first shown
            command = option(command)
        return command

    return decorate
