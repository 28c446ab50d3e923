"""Which bins make a model's NDB, and whether a change to its output layer alone moves them.

    python benchmarks/output_probe.py serve/models/generator.onnx --data ../shared/data/pokemon \\
        --holdout ../shared/data/pokemon-holdout --scale 0.85 --shift -0.1 --alpha-shift -1

NDB (dcgan-eval) is the mean, over holdout-sized subsets of the generated sprites, of the number of k-means bins
whose share differs from the training set's at 95%. Per bin, the share of subsets in which it differs sums to
NDB: the first table says which bins make it. The second compares sizes: the share of sprites in each third of
the training set's sizes (the share of opaque pixels), and the spread of the bounding box's longer side. The
third scores copies of the ONNX generator whose last convolution is changed: its RGB weights multiplied by
--scale (more or less contrast before the tanh), a bias --shift added to RGB (darker below 0, paler above), or a
bias --alpha-shift added to alpha (smaller silhouettes below 0); --majority scores the unchanged model's sprites
with each pixel's hard alpha replaced by the majority of its 3 x 3 neighbourhood (specks and pinholes gone, as a
sampler's clean-up would). A probe, not a recipe: it asks whether the bins the model misses are a matter of
overall contrast, brightness, size or stray pixels. MODEL may also be a checkpoint (--live: its trained
generator), for all but the changed last layers. Tables to benchmarks/results/.
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


def coverage(sprites: np.ndarray) -> np.ndarray:
    """Per sprite, the share of its pixels that are opaque (alpha >= 128)."""
    return (sprites[..., 3] >= 128).mean(axis=(1, 2))


def extent(sprites: np.ndarray) -> np.ndarray:
    """Per sprite, the longer side in pixels of the bounding box of its opaque pixels (0 for an empty sprite)."""
    opaque = sprites[..., 3] >= 128
    sides = [opaque.any(axis=axis) for axis in (2, 1)]  # rows, then columns, that hold an opaque pixel
    spans = [
        np.where(hit.any(axis=1), hit.shape[1] - hit[:, ::-1].argmax(axis=1) - hit.argmax(axis=1), 0) for hit in sides
    ]
    return np.maximum(*spans)


def size_cuts(train: np.ndarray) -> np.ndarray:
    """The two coverages that cut the training sprites into thirds by size."""
    return np.percentile(coverage(train), [100 / 3, 200 / 3])


def thirds(sprites: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of sprites in each third of the training set's sizes, cut at `edges` (two coverages)."""
    return np.bincount(np.digitize(coverage(sprites), edges), minlength=3) / len(sprites)


def size_row(name: str, sprites: np.ndarray, edges: np.ndarray) -> str:
    """A size-table row: shares in the training set's thirds of coverage, then extent at 10/50/90%."""
    spread = np.percentile(extent(sprites), [10, 50, 90])
    return (
        f"| {name} | "
        + " | ".join(f"{share:.1%}" for share in thirds(sprites, edges))
        + " | "
        + " / ".join(f"{v:.0f}" for v in spread)
        + " |"
    )


def majority_alpha(sprites: np.ndarray) -> np.ndarray:
    """Finished sprites with each pixel opaque where at least 5 of its 3 x 3 neighbourhood are (outside the image
    counts as transparent). A pixel that turns transparent loses its colour; one that turns opaque takes the mean
    colour of its opaque neighbours (a finished sprite keeps no colour where it is transparent)."""
    opaque = sprites[..., 3] >= 128
    padded = np.pad(opaque, ((0, 0), (1, 1), (1, 1)))
    rgb = np.pad(sprites[..., :3].astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = opaque.shape[1:]
    windows = [(dy, dx) for dy in range(3) for dx in range(3)]
    count = sum(padded[:, dy : dy + h, dx : dx + w].astype(np.int32) for dy, dx in windows)
    colour = sum(rgb[:, dy : dy + h, dx : dx + w] for dy, dx in windows) / np.maximum(count, 1)[..., None]
    cleaned = count >= 5
    out = np.where(opaque[..., None], sprites[..., :3], np.round(colour)) * cleaned[..., None]
    return np.concatenate([out, cleaned[..., None] * 255.0], axis=-1).astype(np.uint8)


def changed_output(model: Path, scale: float, shift: float, alpha_shift: float, folder: Path) -> Path:
    """A copy of the ONNX generator whose last ConvTranspose has its RGB weights times `scale`, `shift` added to
    its RGB and `alpha_shift` to its alpha (before the tanh)."""
    graph = onnx.load(model)
    last = [node for node in graph.graph.node if node.op_type == "ConvTranspose"][-1]
    for init in graph.graph.initializer:
        if init.name == last.input[1]:
            weight = numpy_helper.to_array(init).copy()
            weight[:, :3] *= scale
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
    if shift or alpha_shift:
        graph.graph.initializer.append(numpy_helper.from_array(np.float32([shift] * 3 + [alpha_shift]), "probe_shift"))
        last.input.append("probe_shift")
    path = folder / f"probe-{scale}-{shift}-{alpha_shift}.onnx"
    onnx.save(graph, path)
    return path


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-n", "count", default=3000, show_default=True, help="Sprites per setting.")
@click.option("--first-seed", default=300000, show_default=True)
@click.option("--scale", "scales", type=float, multiple=True, help="RGB weights of the last layer times this.")
@click.option("--shift", "shifts", type=float, multiple=True, help="RGB bias added to the last layer.")
@click.option("--alpha-shift", "alpha_shifts", type=float, multiple=True,
              help="Alpha bias added to the last layer (below 0: smaller silhouettes).")  # fmt: skip
@click.option("--majority", is_flag=True, help="Also the model's sprites with their alpha cleaned by a 3 x 3 majority.")
@click.option("--live", is_flag=True, help="A checkpoint's trained generator instead of its EMA one.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def main(model, data, holdout, count, first_seed, scales, shifts, alpha_shifts, majority, live, out) -> None:
    """Per-bin NDB and sizes of MODEL (a checkpoint or an fp32 ONNX generator), then, for an ONNX generator, the
    same metrics with its output layer changed."""
    if (scales or shifts or alpha_shifts) and model.suffix != ".onnx":
        raise click.BadParameter(
            "--scale and the shifts change an ONNX file; export the checkpoint first", param_hint="MODEL"
        )
    train, held = load_sprites(data, "--data"), load_sprites(holdout, "--holdout")
    reference = Reference(train, held)
    train_share = reference.train_bins / reference.train_bins.sum()
    train_luma = float(np.median(sprite_colours(train) @ LUMA.astype(np.float64)))
    edges = size_cuts(train)
    settings = [(1.0, 0.0, 0.0, False)] + [(1.0, 0.0, 0.0, True)] * majority + [(s, 0.0, 0.0, False) for s in scales]
    settings += [(1.0, b, 0.0, False) for b in shifts] + [(1.0, 0.0, a, False) for a in alpha_shifts]
    rows, shares, unchanged = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        for scale, shift, alpha_shift, cleaned in settings:
            if cleaned:  # the unchanged model's sprites, the first setting's
                sprites = majority_alpha(unchanged)
            else:
                changed = (scale, shift, alpha_shift) != (1.0, 0.0, 0.0)
                path = changed_output(model, scale, shift, alpha_shift, Path(tmp)) if changed else model
                sprites, _ = generate(path, count, first_seed, live)
            features = pixel_features(sprites)
            bin_shares = bin_counts(features, reference.centres) / len(features)
            if shares is None:  # the model as it is
                shares, model_share, unchanged = ndb_shares(reference, features), bin_shares, sprites
                sizes = [
                    size_row(name, s, edges) for name, s in (("training", train), ("holdout", held), ("model", sprites))
                ]
            metrics = reference.score(sprites)["metrics"]
            small = thirds(sprites, edges)[0]
            luma = float(np.median(sprite_colours(sprites) @ LUMA.astype(np.float64)))
            rows.append(f"| {scale:g} | {shift:+g} | {alpha_shift:+g} | {'yes' if cleaned else 'no'} | "
                        + " | ".join(f"{metrics[k]['model']:.3f}" for k in SHOWN)
                        + f" | {luma:.3f} | {bin_shares[np.argmax(shares)]:.1%} | {small:.1%} |")  # fmt: skip
            click.echo(rows[-1])
    order = np.argsort(-shares)[:8]
    lines = [
        f"# Output probe: {model}",
        "",
        f"`python benchmarks/output_probe.py {model} --data {data} --holdout {holdout} -n {count} --first-seed "
        f"{first_seed}" + " --live" * live + "".join(f" --scale {s:g}" for s in scales)
        + "".join(f" --shift {b:g}" for b in shifts) + "".join(f" --alpha-shift {a:g}" for a in alpha_shifts)
        + " --majority" * majority + "`",
        "",
        f"NDB {shares.sum():.2f} on {count} sprites (seeds from {first_seed}), at the holdout's count "
        f"({len(held)}); the holdout's own: {reference.floors['ndb']:.2f}. The bins that make it:",
        "",
        "| bin | training share | model share | share of subsets in which it differs |",
        "|---:|---:|---:|---:|",
        *(f"| {j} | {train_share[j]:.1%} | {model_share[j]:.1%} | {shares[j]:.2f} |" for j in order),
        "",
        f"Sizes: the share of sprites in each third of the training set's opaque-pixel shares (cut at "
        f"{edges[0]:.1%} and {edges[1]:.1%}), and the longer side of the bounding box in pixels at 10%, 50% and 90%:",
        "",
        "| sprites | small | middle | large | longer side 10% / 50% / 90% |",
        "|---|---:|---:|---:|---:|",
        *sizes,
        "",
        ("The model with its last layer's RGB changed" if len(rows) > 1 else "The model's metrics")
        + f" (median brightness of the visible pixels: training sprites {train_luma:.3f}; last column: the share of "
        f"bin {int(order[0])}, the first above):",
        "",
        "| RGB scale | RGB shift | alpha shift | 3 x 3 majority | " + " | ".join(SHOWN)
        + " | median brightness | top bin | small |",
        "|---:|---:|---:|---|" + "---:|" * (len(SHOWN) + 3),
        *rows,
    ]  # fmt: skip
    publish(lines, out)


if __name__ == "__main__":
    main()
