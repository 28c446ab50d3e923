"""What NDB and JSD read for a perfect generator: the chance level behind dcgan-eval's coverage rows.

    python benchmarks/ndb_chance.py --data ../shared/data/pokemon --holdout ../shared/data/pokemon-holdout

A perfect generator draws its sprites' k-means bins with exactly the training set's shares. This draws such
bin counts (multinomial, at the holdout's count, as dcgan-eval compares) many times and reports NDB and JSD:
their mean is what sampling noise alone gives, the level below which no model can be told apart. Beside it,
the holdout's own NDB for several k-means seeds (dcgan-eval uses seed 0). Table to benchmarks/results/.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from report import publish  # benchmarks/ is on sys.path when run as a script

from dcgan.train.evaluate import load_sprites
from dcgan.train.metrics import bin_counts, jsd, kmeans, ndb, pixel_features

RESULTS = Path(__file__).parent / "results" / "ndb_chance.md"


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--bins", default=40, show_default=True, help="k-means bins, as dcgan-eval --bins.")
@click.option("--draws", default=20000, show_default=True, help="Perfect-generator draws.")
@click.option("--subsets", default=9, show_default=True, help="Subsets dcgan-eval averages (-n 1000 / holdout).")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def main(data: Path, holdout: Path, bins: int, draws: int, subsets: int, out: Path) -> None:
    train = pixel_features(load_sprites(data, "--data"))
    held = pixel_features(load_sprites(holdout, "--holdout"))
    m = len(held)
    centres = kmeans(train, bins, 0)
    train_bins = bin_counts(train, centres)
    rng = np.random.default_rng(0)
    perfect = [rng.multinomial(m, train_bins / train_bins.sum()) for _ in range(draws)]
    ndbs = np.array([ndb(train_bins, c) for c in perfect])
    jsds = np.array([jsd(train_bins, c) for c in perfect])
    means = ndbs[rng.integers(0, draws, (5000, subsets))].mean(axis=1)
    lines = [
        f"NDB and JSD at chance: {len(train)} training sprites, {bins} k-means bins (seed 0), {m} sprites a set "
        f"(the holdout's count); {draws} perfect-generator draws.",
        "",
        "| set | NDB | JSD |",
        "|---|---:|---:|",
        f"| perfect generator, one set: mean (sd) | {ndbs.mean():.2f} ({ndbs.std():.2f}) "
        f"| {jsds.mean():.3f} ({jsds.std():.3f}) |",
        f"| perfect generator, mean of {subsets} sets (as dcgan-eval averages): 5th-95th percentile "
        f"| {np.percentile(means, 5):.2f}-{np.percentile(means, 95):.2f} | |",
    ]
    for seed in range(5):
        c = centres if seed == 0 else kmeans(train, bins, seed)
        b = bin_counts(train, c)
        h = bin_counts(held, c)
        lines.append(f"| holdout, k-means seed {seed} | {ndb(b, h)} | {jsd(b, h):.3f} |")
    publish(lines, out)


if __name__ == "__main__":
    main()
