"""`dcgan-curve`: a run judged along its length, not at one point.

Scores every kept checkpoint of one or more runs (RUN/checkpoints/epochNNNN.pt and RUN/checkpoint.pt) on the same
fresh seeds, with the likeness measures and the collapse numbers of dcgan-eval, and writes:
- curve.md and curve.json: one row per checkpoint and measure;
- curve.png: every measure against the images the run has seen, one panel each, the holdout's value as a dashed line
  (and a baseline model's, with --baseline, as a dotted one);
- strip-RUN.png: the same 16 seeds at every checkpoint, one row each, so a person sees the sprites change.

Scores are cached in curve.json by checkpoint, so running it again as a run goes on scores only the new checkpoints.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from .dependencies import require_torch

# (metric, short label, which way is better: -1 lower, +1 higher, 0 nearer the holdout)
MEASURES = (
    ("flat_colour_share", "flat colour share", 0),
    ("colours_per_sprite", "colours per sprite", 0),
    ("speck_share", "specks", -1),
    ("parts_per_sprite", "parts per sprite", 0),
    ("spectral_gap", "spectral gap", -1),
    ("classifier_accuracy", "classifier accuracy", -1),
    ("diversity_ratio", "diversity", 0),
    ("memorisation_ratio", "memorisation", 1),
    ("ndb", "NDB", -1),
)
STRIP_SEEDS = 16
FIRST_SEED = 700_000  # past the grid, watch and selection seeds: sprites no choice was made on
CACHE_VERSION = 1
NDB_NOTE = "NDB: the mean over disjoint sets of the holdout's size, ± its standard error."


@dataclass
class Point:
    run: str
    checkpoint: str
    epoch: int
    images: int  # training images seen: optimiser steps x batch size
    metrics: dict[str, float]


def kept_checkpoints(run: Path) -> list[Path]:
    """The run's kept checkpoints in training order, then its latest one where that is newer."""
    from .checkpoint import CHECKPOINT_NAME

    kept = sorted(run.glob("checkpoints/epoch*.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    latest = run / CHECKPOINT_NAME
    if latest.exists() and not any(p.samefile(latest) for p in kept):
        kept.append(latest)
    return kept


def measure(reference, sprites: np.ndarray) -> dict[str, float]:
    """MEASURES of `sprites` against `reference` (dcgan.train.metrics.Reference), computed as Reference.score
    computes them, without the measures the curve does not draw; and "ndb_se", NDB's standard error over the sets."""
    from .likeness import likeness, two_sample_accuracy
    from .metrics import (
        finish_levels,
        mean_pairwise_distance,
        nearest_distances,
        pixel_features,
        standard_error,
        subsets,
    )

    features, finished = pixel_features(sprites), finish_levels(sprites)
    size = len(reference.holdout)
    ndbs = [reference.ndb(features[s]) for s in subsets(len(features), size)]
    values = {
        **likeness(finished, reference.train_spectrum),
        "classifier_accuracy": two_sample_accuracy(
            reference.finished["train"], finished, reference.finished["holdout"]
        ),
        "diversity_ratio": mean_pairwise_distance(features) / reference.train_spread,
        "memorisation_ratio": float(nearest_distances(features, reference.train_features).mean())
        / reference.holdout_nearest,
        "ndb": float(np.mean(ndbs)),
    }
    spread = {"ndb_se": se} if (se := standard_error(ndbs)) is not None else {}
    return {**{name: values[name] for name, _, _ in MEASURES}, **spread}


def score_run(run: Path, reference, count: int, first_seed: int, cache: dict, echo=click.echo) -> tuple[list, list]:
    """(points, strip rows) of every kept checkpoint of `run`; cached points are reused, new ones added to `cache`."""
    from .checkpoint import CheckpointError, load_checkpoint
    from .evaluate import sprites_of

    points, strips = [], []
    checkpoints = kept_checkpoints(run)
    if not checkpoints:
        raise click.BadParameter(
            f"{run} holds no checkpoint (checkpoint.pt or checkpoints/epoch*.pt)", param_hint="RUN"
        )
    with click.progressbar(checkpoints, label=f"scoring {run.name}", file=sys.stderr) as bar:
        for path in bar:
            try:
                state = load_checkpoint(path)
                sprites = sprites_of(state, range(first_seed, first_seed + count))
            except CheckpointError as err:
                raise click.BadParameter(str(err), param_hint="RUN") from err
            images = state["step"] * state["train_config"]["batch_size"]
            key = f"{run.name}/{path.name}@{state['step']}"
            if key not in cache:
                cache[key] = measure(reference, sprites)
            points.append(Point(run.name, path.name, state["epoch"], images, cache[key]))
            strips.append((images, sprites[:STRIP_SEEDS]))
    echo(f"{run}: {len(points)} checkpoints, {points[0].images:,} to {points[-1].images:,} images")
    return points, strips


def table(points: list[Point], floors: dict[str, float], baseline: dict[str, float] | None) -> str:
    names = [name for name, _, _ in MEASURES]
    head = "| run | checkpoint | epoch | images | " + " | ".join(label for _, label, _ in MEASURES) + " |"
    lines = [head, "|" + "---|" * 4 + "---:|" * len(names)]
    rows = [("holdout", "", "", "", floors)] + ([("baseline", "", "", "", baseline)] if baseline else [])
    rows += [(p.run, p.checkpoint, str(p.epoch), f"{p.images:,}", p.metrics) for p in points]
    for run, ckpt, epoch, images, values in rows:
        cells = [_fmt(values[n]) for n in names]
        if "ndb_se" in values:  # NDB moves most from one set of seeds to another: say how far
            cells[names.index("ndb")] += f" ± {_fmt(values['ndb_se'])}"
        lines.append(f"| {run} | {ckpt} | {epoch} | {images} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))


def plot(points: list[Point], floors: dict[str, float], baseline: dict[str, float] | None, path: Path) -> None:
    """Small multiples drawn with Pillow: one panel per measure, a line per run, dashed holdout, dotted baseline."""
    from PIL import Image, ImageDraw

    from dcgan.serve.images import save_atomic

    runs = list(dict.fromkeys(p.run for p in points))
    pw, ph, cols, left, top, legend = 330, 210, 3, 46, 26, 28
    rows = -(-len(MEASURES) // cols)
    canvas = Image.new("RGB", (cols * pw, legend + rows * ph), "white")
    draw = ImageDraw.Draw(canvas)
    x_max = max(p.images for p in points) or 1
    for i, run in enumerate(runs):
        x = 10 + i * 160
        draw.line([(x, 14), (x + 24, 14)], fill=COLOURS[i % len(COLOURS)], width=3)
        draw.text((x + 30, 8), run, fill="black")
    draw.text((10 + len(runs) * 160, 8), "- - holdout" + ("   . . . baseline" if baseline else ""), fill="black")
    for k, (name, label, better) in enumerate(MEASURES):
        ox, oy = (k % cols) * pw, legend + (k // cols) * ph
        x0, y0, x1, y1 = ox + left, oy + top, ox + pw - 12, oy + ph - 28
        values = [p.metrics[name] for p in points] + [floors[name]] + ([baseline[name]] if baseline else [])
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad

        def xy(images: float, value: float, x0=x0, y0=y0, x1=x1, y1=y1, lo=lo, hi=hi) -> tuple[float, float]:
            return x0 + (x1 - x0) * images / x_max, y1 - (y1 - y0) * (value - lo) / (hi - lo)

        arrow = {-1: "lower is better", 1: "higher is better", 0: "nearer the holdout is better"}[better]
        draw.text((x0, oy + 6), f"{label} ({arrow})", fill="black")
        draw.rectangle([x0, y0, x1, y1], outline=(160, 160, 160))
        for value in (lo + pad, hi - pad):
            draw.text((ox + 2, xy(0, value)[1] - 6), _fmt(value), fill=(90, 90, 90))
        draw.text((x0, y1 + 4), "0", fill=(90, 90, 90))
        draw.text((x1 - 70, y1 + 4), f"{x_max / 1000:,.0f}k images", fill=(90, 90, 90))
        for reference, step in ((floors[name], 8), *(((baseline[name], 3),) if baseline else ())):
            y = xy(0, reference)[1]
            for x in range(int(x0), int(x1), 2 * step):
                draw.line([(x, y), (min(x + step, x1), y)], fill=(60, 60, 60), width=1)
        for i, run in enumerate(runs):
            line = [xy(p.images, p.metrics[name]) for p in points if p.run == run]
            colour = COLOURS[i % len(COLOURS)]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for x, y in line:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    save_atomic(canvas, path)


def strip(rows: list[tuple[int, np.ndarray]], path: Path) -> None:
    """One row of the same seeds per checkpoint, labelled with the images seen."""
    from PIL import Image, ImageDraw

    from dcgan.serve.images import save_atomic, sheet

    grid = sheet(np.concatenate([sprites for _, sprites in rows]), columns=STRIP_SEEDS)
    label = 84
    canvas = Image.new("RGB", (label + grid.width, grid.height), "white")
    canvas.paste(grid, (label, 0))
    draw = ImageDraw.Draw(canvas)
    cell = grid.height / len(rows)
    for i, (images, _) in enumerate(rows):
        draw.text((6, i * cell + cell / 2 - 6), f"{images / 1000:,.0f}k images", fill="black")
    save_atomic(canvas, path)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--data", type=click.Path(path_type=Path), required=True, help="The training sprites.")
@click.option("--holdout", type=click.Path(path_type=Path), required=True, help="Real sprites no run trained on.")
@click.option("-n", "count", type=click.IntRange(min=204), default=512, help="Sprites per checkpoint.")
@click.option("--first-seed", type=click.IntRange(min=0), default=FIRST_SEED, help="Seeds first-seed .. + n - 1.")
@click.option("--baseline", type=click.Path(path_type=Path, exists=True), default=None, show_default=False,
              help="A model (ONNX file or checkpoint) drawn as a dotted line, e.g. the shipped one.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("curve"),
              help="Folder for curve.md, curve.json, curve.png and strip-RUN.png; its cache is reused.")  # fmt: skip
def main(runs, data, holdout, count, first_seed, baseline, out):
    """Score every kept checkpoint of RUN... along the images each has seen: the likeness measures and the
    collapse numbers, each beside the holdout's value, and a strip of the same 16 seeds per checkpoint.

    \b
    Examples:
      dcgan-curve runs/resize runs/palette --data $DATA --holdout $HOLDOUT --out curves/
      dcgan-curve runs/palette --data $DATA --holdout $HOLDOUT --baseline generator-rgba8.onnx
    """
    require_torch("dcgan-curve")
    from dcgan.serve.files import write_text_atomic

    from .evaluate import generate as generate_model
    from .evaluate import load_real
    from .metrics import EVAL_SEED, Reference

    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise click.BadParameter("two runs share a folder name; their rows and strips would mix", param_hint="RUNS")
    train, real_holdout, _ = load_real(data, holdout, 40)
    reference = Reference(train, real_holdout, k=40, seed=EVAL_SEED)
    floors = {name: reference.floors[name] for name, _, _ in MEASURES}
    cache_path = out / "curve.json"
    settings = {"version": CACHE_VERSION, "n": count, "first_seed": first_seed, "data": len(train),
                "holdout": len(real_holdout)}  # fmt: skip
    cache = {}
    if cache_path.exists():
        try:
            saved = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("settings") == settings:
            cache = saved.get("scores", {})
    points, strips = [], {}
    for run in runs:
        run_points, strips[run.name] = score_run(run, reference, count, first_seed, cache)
        points += run_points
    base = None
    if baseline is not None:
        sprites, source = generate_model(baseline, count, first_seed)
        base = measure(reference, sprites)
        click.echo(f"baseline: {source}")
    out.mkdir(parents=True, exist_ok=True)
    text = table(points, floors, base)
    saved = {"settings": settings, "scores": cache, "floors": floors, "baseline": base}
    write_text_atomic(cache_path, json.dumps({**saved, "points": [p.__dict__ for p in points]}, indent=1))
    seeds = f"Seeds {first_seed} .. {first_seed + count - 1}, EMA generators."
    write_text_atomic(out / "curve.md", f"{seeds} {NDB_NOTE}\n\n{text}\n")
    plot(points, floors, base, out / "curve.png")
    for name, rows in strips.items():
        strip(rows, out / f"strip-{name}.png")
    click.echo(text)
    click.echo(f"Wrote curve.md, curve.json, curve.png and {len(strips)} strip(s) to {out}")
