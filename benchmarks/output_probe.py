"""Which bins make a model's NDB, and whether a change to its output layer alone moves them.

    python benchmarks/output_probe.py serve/models/generator.onnx --data ../shared/data/pokemon \\
        --holdout ../shared/data/pokemon-holdout --scale 0.85 --scale 1.2 --shift -0.1 --shift -0.2

NDB (dcgan-eval) is the mean, over holdout-sized subsets of the generated sprites, of the number of k-means bins
whose share differs from the training set's at 95%. Per bin, the share of subsets in which it differs sums to
NDB: the first table says which bins make it. The second scores copies of the ONNX generator whose last
convolution is changed for the RGB channels only (alpha, and so every silhouette, stays as it is): its weights
multiplied by --scale (more or less contrast before the tanh) or a bias --shift added (darker below 0, paler
above). A probe, not a recipe: it asks whether the bins the model misses are a matter of overall contrast or
brightness. Tables to benchmarks/results/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np
import onnx
from onnx import numpy_helper
from report import publish  # benchmarks/ is on sys.path when run as a script

from dcgan.train.evaluate import generate, load_sprites
from dcgan.train.metrics import LUMA, Reference, bin_counts, different_bins, pixel_features, sprite_colours, subsets

RESULTS = Path(__file__).parent / "results" / "output_probe.md"
SHOWN = ("ndb", "jsd", "diversity_ratio", "line_art", "memorisation_ratio")


def ndb_shares(reference: Reference, features: np.ndarray) -> np.ndarray:
    """Per bin, the share of holdout-sized subsets in which it counts towards NDB; the shares sum to NDB."""
    parts = subsets(len(features), len(reference.holdout))
    hits = sum(different_bins(reference.train_bins, bin_counts(features[part], reference.centres)) for part in parts)
    return hits / len(parts)


def changed_output(model: Path, scale: float, shift: float, folder: Path) -> Path:
    """A copy of the ONNX generator whose last ConvTranspose has its RGB weights times `scale` and `shift` added."""
    graph = onnx.load(model)
    last = [node for node in graph.graph.node if node.op_type == "ConvTranspose"][-1]
    for init in graph.graph.initializer:
        if init.name == last.input[1]:
            weight = numpy_helper.to_array(init).copy()
            weight[:, :3] *= scale
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
    if shift:
        graph.graph.initializer.append(numpy_helper.from_array(np.float32([shift] * 3 + [0.0]), "probe_rgb_shift"))
        last.input.append("probe_rgb_shift")
    path = folder / f"probe-{scale}-{shift}.onnx"
    onnx.save(graph, path)
    return path


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-n", "count", default=3000, show_default=True, help="Sprites per setting.")
@click.option("--first-seed", default=300000, show_default=True)
@click.option("--scale", "scales", type=float, multiple=True, help="RGB weights of the last layer times this.")
@click.option("--shift", "shifts", type=float, multiple=True, help="RGB bias added to the last layer.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def main(model, data, holdout, count, first_seed, scales, shifts, out) -> None:
    """Per-bin NDB of MODEL (an fp32 ONNX generator), then the same metrics with its output layer changed."""
    train, held = load_sprites(data, "--data"), load_sprites(holdout, "--holdout")
    reference = Reference(train, held)
    train_share = reference.train_bins / reference.train_bins.sum()
    train_luma = float(np.median(sprite_colours(train) @ LUMA.astype(np.float64)))
    settings = [(1.0, 0.0)] + [(s, 0.0) for s in scales] + [(1.0, b) for b in shifts]
    rows, shares = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for scale, shift in settings:
            path = model if (scale, shift) == (1.0, 0.0) else changed_output(model, scale, shift, Path(tmp))
            sprites, _ = generate(path, count, first_seed)
            features = pixel_features(sprites)
            bin_shares = bin_counts(features, reference.centres) / len(features)
            if shares is None:  # the model as it is
                shares, model_share = ndb_shares(reference, features), bin_shares
            metrics = reference.score(sprites)["metrics"]
            luma = float(np.median(sprite_colours(sprites) @ LUMA.astype(np.float64)))
            rows.append(f"| {scale:g} | {shift:+g} | " + " | ".join(f"{metrics[k]['model']:.3f}" for k in SHOWN)
                        + f" | {luma:.3f} | {bin_shares[np.argmax(shares)]:.1%} |")  # fmt: skip
            click.echo(rows[-1])
    order = np.argsort(-shares)[:8]
    lines = [
        f"# Output probe: {model}",
        "",
        f"`python benchmarks/output_probe.py {model} --data {data} --holdout {holdout} -n {count} --first-seed "
        f"{first_seed}" + "".join(f" --scale {s:g}" for s in scales) + "".join(f" --shift {b:g}" for b in shifts)
        + "`",
        "",
        f"NDB {shares.sum():.2f} on {count} sprites (seeds from {first_seed}), at the holdout's count "
        f"({len(held)}); the holdout's own: {reference.floors['ndb']:.2f}. The bins that make it:",
        "",
        "| bin | training share | model share | share of subsets in which it differs |",
        "|---:|---:|---:|---:|",
        *(f"| {j} | {train_share[j]:.1%} | {model_share[j]:.1%} | {shares[j]:.2f} |" for j in order),
        "",
        f"The model with its last layer's RGB changed (median brightness of the visible pixels: training sprites "
        f"{train_luma:.3f}; last column: the share of bin {int(order[0])}, the first above):",
        "",
        "| RGB scale | RGB shift | " + " | ".join(SHOWN) + " | median brightness | top bin |",
        "|---:|---:|" + "---:|" * (len(SHOWN) + 2),
        *rows,
    ]  # fmt: skip
    publish(lines, out)


if __name__ == "__main__":
    main()
