"""How the sizes of a run's samples move over its kept checkpoints, for the trained generator and the EMA one.

    python benchmarks/size_course.py runs/a runs/b --data ../shared/data/pokemon \\
        --holdout ../shared/data/pokemon-holdout --from-epoch 60

For every kept checkpoint of each run (checkpoints/epochNNNN.pt), the EMA generator's samples, and with --live
the trained generator's too (first of the runs only: runs that differ in their EMA alone share it), are sorted
into the training set's thirds of size (the share of opaque pixels, as benchmarks/output_probe.py does), beside
NDB, line art and diversity on the same seeds (dcgan-eval's metrics). Table to benchmarks/results/.
"""

from __future__ import annotations

from pathlib import Path

import click
from output_probe import size_cuts, thirds  # benchmarks/ is on sys.path when run as a script
from report import publish

from dcgan.train.evaluate import generate, load_sprites
from dcgan.train.metrics import Reference

RESULTS = Path(__file__).parent / "results" / "size_course.md"


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-n", "count", default=2000, show_default=True, help="Sprites per generator and checkpoint.")
@click.option("--first-seed", default=300000, show_default=True)
@click.option("--from-epoch", default=0, show_default=True, help="Skip kept checkpoints before this epoch.")
@click.option("--live", is_flag=True, help="Also the first run's trained generator.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def main(runs, data, holdout, count, first_seed, from_epoch, live, out) -> None:
    """Sizes, NDB, line art and diversity of RUNS' samples at each kept checkpoint."""
    train, held = load_sprites(data, "--data"), load_sprites(holdout, "--holdout")
    reference = Reference(train, held)
    edges = size_cuts(train)
    kept = {run: sorted((run / "checkpoints").glob("epoch*.pt")) for run in runs}
    generators = [(run, False) for run in runs] + [(runs[0], True)] * live
    rows = []
    for run, trained in generators:
        for ckpt in kept[run]:
            epoch = int(ckpt.stem.removeprefix("epoch"))
            if epoch < from_epoch:
                continue
            sprites, _ = generate(ckpt, count, first_seed, trained)
            metrics = reference.score(sprites)["metrics"]
            shares = thirds(sprites, edges)
            name = f"{run.name}, {'trained' if trained else 'EMA'}"
            rows.append(
                f"| {name} | {epoch} | " + " | ".join(f"{s:.1%}" for s in shares)
                + "".join(f" | {metrics[k]['model']:.2f}" for k in ("ndb", "line_art", "diversity_ratio")) + " |"
            )  # fmt: skip
            click.echo(rows[-1])
    real = [f"| {name} | | " + " | ".join(f"{s:.1%}" for s in thirds(s, edges)) + " | | | |"
            for name, s in (("training sprites", train), ("holdout sprites", held))]  # fmt: skip
    lines = [
        "# Sizes over training",
        "",
        f"`python benchmarks/size_course.py {' '.join(map(str, runs))} --data {data} --holdout {holdout} -n {count} "
        f"--first-seed {first_seed} --from-epoch {from_epoch}" + " --live" * live + "`",
        "",
        f"Shares of {count} samples (seeds from {first_seed}) in the training set's thirds of size (opaque-pixel "
        f"share below {edges[0]:.1%}, up to {edges[1]:.1%}, above), then dcgan-eval's NDB (holdout's own: "
        f"{reference.floors['ndb']:.2f}), line art and diversity ratio on the same samples:",
        "",
        "| generator | epoch | small | middle | large | NDB | line art | diversity |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *real,
        *rows,
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
