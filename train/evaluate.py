"""`dcgan-eval`: is a generator diverse, does it cover the data's modes, does it copy its training set?

Generates sprites through the shared latent convention (seeds 0 .. n-1 by default) from a checkpoint, a run folder or
any exported ONNX file, and reports the metrics of dcgan.train.metrics, each beside its real-data floor:
held-out real sprites measured the same way against the training set.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .catalogue import METRICS, real_sprite_options
from .dependencies import require_torch


def sprites_of(state: dict, seeds: range, ema: bool = True) -> np.ndarray:
    """Finished uint8 RGBA sprites of a loaded checkpoint's generator for `seeds`: its EMA one where `ema` and the
    checkpoint has one (as exported), else the trained one. Raises CheckpointError for a checkpoint it cannot build."""
    import torch

    from dcgan.serve.contract import finish_sprites
    from dcgan.serve.latent import latents

    from .checkpoint import load_generator

    generator = load_generator(state, ema=ema and "generator_ema" in state)
    with torch.no_grad():
        parts = [generator(torch.from_numpy(latents(seeds[i : i + 256], generator.cfg.nz))).numpy()
                 for i in range(0, len(seeds), 256)]  # fmt: skip
    return finish_sprites(np.concatenate(parts))


def generate(model: Path, n: int, first_seed: int = 0, live: bool = False) -> tuple[np.ndarray, str]:
    """Finished uint8 RGBA sprites for seeds first_seed .. first_seed + n - 1, and where they came from. `live`:
    a checkpoint's trained generator instead of its EMA one (exported files carry only the EMA one)."""
    from dcgan.serve.generator import ModelError, SpriteGenerator

    from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, retired_note

    ckpt = model / CHECKPOINT_NAME if model.is_dir() else model
    if ckpt.suffix != ".onnx" and ckpt.exists():
        try:
            state = load_checkpoint(ckpt)
            if note := retired_note(state, ckpt):
                click.echo(note, err=True)
            sprites = sprites_of(state, range(first_seed, first_seed + n), ema=not live)
        except CheckpointError as err:
            raise click.BadParameter(str(err), param_hint="MODEL") from err
        which = "EMA generator" if not live and "generator_ema" in state else "generator"
        return sprites, f"{ckpt} ({which}, epoch {state['epoch']})"
    if live:
        raise click.BadParameter(f"--live needs a checkpoint or run folder, not {model}", param_hint="MODEL")
    try:
        gen = SpriteGenerator(model, provider="cpu")
    except ModelError as err:
        raise click.BadParameter(str(err), param_hint="MODEL") from err
    return gen(range(first_seed, first_seed + n)), str(gen.info.path)


def load_sprites(folder: Path, option: str) -> np.ndarray:
    from .data import NoImagesError, load_folder

    try:
        return load_folder(folder, warn=lambda line: click.echo(f"warning: {line}", err=True)).images.transpose(
            0, 2, 3, 1
        )
    except (FileNotFoundError, NotADirectoryError, NoImagesError) as err:
        raise click.BadParameter(str(err), param_hint=option) from err


def load_real(data: Path, holdout: Path | None, bins: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The training sprites, the held-out ones for the floors, and a note when --holdout is missing (then 10% of
    --data is set aside, though the model may have trained on it)."""
    train = load_sprites(data, "--data")
    note = ""
    if holdout is not None:
        real_holdout = load_sprites(holdout, "--holdout")
    else:
        order = np.random.default_rng(0).permutation(len(train))
        cut = max(2, len(train) // 10)
        real_holdout, train = train[order[:cut]], train[order[cut:]]
        note = f"no --holdout: floors use {cut} sprites of --data set aside (the model may have seen them)"
    if len(real_holdout) < 2 or len(train) < bins:
        raise click.BadParameter(f"need at least {bins} training and 2 held-out sprites", param_hint="--data")
    return train, real_holdout, note


def report_table(result: dict) -> str:
    """One line per metric; a metric taken over holdout-sized subsets shows its standard error as ± (set to
    set, another choice of seeds moves the mean by about that much)."""
    lines = [f"{'metric':<20} {'model':>9} {'± se':>7} {'real floor':>10}  meaning (good is)", "-" * 108]
    for name, values in result["metrics"].items():
        metric = METRICS[name]
        se = values.get("model_se")
        spread = f"±{se:.2g}" if se is not None else ""
        lines.append(
            f"{name:<20} {values['model']:>9.4f} {spread:>7} {values['real_floor']:>10.4f}  "
            f"{metric.description} ({metric.better})"
        )
    return "\n".join(lines)


SHARES = (("training", "train_share"), ("model", "model_share"), ("holdout", "holdout_share"))


def coverage_lines(bins: list[dict], count: int = 3) -> list[str]:
    """The bins furthest from the training set's shares, missed ones first."""
    order = sorted(bins, key=lambda b: b["z"])
    lines = ["bins furthest from the training shares (z at holdout count; NDB counts |z| > 1.96):"]
    for b in order[:count] + [b for b in order[-count:] if b not in order[:count]]:
        shares = "  ".join(f"{who} {100 * b[key]:5.1f}%" for who, key in SHARES)
        lines.append(f"  bin {b['bin']:>3}: {shares}  z {b['z']:+.2f}")
    return lines


def coverage_sheet(
    bins: list[dict], train: np.ndarray, train_labels: np.ndarray, generated: np.ndarray, gen_labels: np.ndarray,
    rows: int = 4, per_side: int = 6,
):  # fmt: skip
    """A picture of the modes: the `rows` most missed bins, then the `rows` most overfilled, each as a row of
    training sprites of the bin (those nearest its centre, in `train`'s order) beside generated ones."""
    from PIL import Image, ImageDraw

    from dcgan.serve.images import sheet

    order = sorted(bins, key=lambda b: b["z"])
    chosen = order[:rows] + [b for b in reversed(order[-rows:]) if b not in order[:rows]]
    size = train.shape[1:]
    label_width, header = 170, 24
    tiles = []
    for b in chosen:
        row = np.zeros((2 * per_side + 1, *size), np.uint8)  # transparent: empty cells show the background
        real, fake = train[train_labels == b["bin"]][:per_side], generated[gen_labels == b["bin"]][:per_side]
        row[: len(real)], row[per_side + 1 : per_side + 1 + len(fake)] = real, fake
        tiles.append(row)
    grid = sheet(np.concatenate(tiles), columns=2 * per_side + 1)
    canvas = Image.new("RGB", (label_width + grid.width, header + grid.height), "white")
    canvas.paste(grid, (label_width, header))
    draw = ImageDraw.Draw(canvas)
    cell = size[0] + 2
    draw.text((label_width + 4, 6), "training sprites of the bin", fill="black")
    draw.text((label_width + (per_side + 1) * cell + 4, 6), "generated sprites in the bin", fill="black")
    for i, b in enumerate(chosen):
        y = header + i * cell + cell // 2 - 20
        verdict = "missed" if b["z"] < 0 else "overfilled"
        draw.text((8, y), f"bin {b['bin']} ({verdict})", fill="black")
        draw.text((8, y + 14), f"training {100 * b['train_share']:.1f}%", fill="black")
        draw.text((8, y + 28), f"model {100 * b['model_share']:.1f}%   z {b['z']:+.2f}", fill="black")
    return canvas


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@real_sprite_options(count_help="Sprites to generate: seeds 0 .. n-1, or n seeds from --first-seed.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0,
              help="The first seed: choose checkpoints on other seeds than those you report.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Folder for metrics.json, sheet.png, holdout.png, neighbours.png, coverage.png. Default: RUN/eval, "
              "or eval-NAME.")  # fmt: skip
@click.option("--inception-weights", type=click.Path(path_type=Path, dir_okay=False), default=None,
              show_default=False, help="torchvision's Inception-v3 state dict (a local .pth; nothing is downloaded): "
              "adds FID and KID in Inception's feature space.")  # fmt: skip
@click.option("--live", is_flag=True,
              help="Evaluate a checkpoint's trained generator instead of its EMA one (the one exported).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in --out.")
def main(
    model: Path,
    data: Path,
    holdout: Path | None,
    count: int,
    first_seed: int,
    bins: int,
    out: Path | None,
    inception_weights: Path | None,
    live: bool,
    overwrite: bool,
):
    """Measure diversity, mode coverage and memorisation of MODEL (checkpoint, run folder or ONNX file).

    \b
    Examples:
      dcgan-eval runs/demo --data $DATA --holdout $HOLDOUT
      dcgan-eval src/generator-rgba8.onnx --data sprites/ -n 500 --out report/
      dcgan-eval runs/demo --data sprites/ --inception-weights inception_v3_google-0cc3c7bd.pth
      dcgan-eval runs/demo/checkpoints/epoch0100.pt --data sprites/ --first-seed 200000   # choosing
    """
    require_torch("dcgan-eval")
    from dcgan.serve.files import write_text_atomic
    from dcgan.serve.images import save_atomic, sheet

    from .metrics import EVAL_SEED, Reference, nearest_indices, pixel_features, sq_distances

    out = out or (
        model / "eval" if model.is_dir() and (model / "checkpoint.pt").exists() else Path(f"eval-{model.stem}")
    )
    names = ("metrics.json", "sheet.png", "holdout.png", "neighbours.png", "coverage.png")
    if not overwrite and any((out / name).exists() for name in names):
        raise click.ClickException(f"{out} already holds a report; pass --overwrite or choose another --out")

    inception = None
    if inception_weights is not None:
        from .inception import Inception, InceptionError

        try:
            inception = Inception(inception_weights)
        except InceptionError as err:
            raise click.BadParameter(str(err), param_hint="--inception-weights") from err
    train, real_holdout, note = load_real(data, holdout, bins)
    sprites, source = generate(model, count, first_seed, live)
    click.echo(f"Generated {len(sprites)} sprites from {source}; {len(train)} training, {len(real_holdout)} held out")
    if note:
        click.echo(f"note: {note}", err=True)

    real = Reference(train, real_holdout, k=bins, seed=EVAL_SEED, inception=inception)
    result = real.score(sprites)
    train_features, centres = real.train_features, real.centres
    result["model"] = source
    result["seeds"] = [first_seed, first_seed + count - 1]
    result["note"] = note or None
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=2))
    save_atomic(sheet(sprites[:64], columns=8), out / "sheet.png")
    save_atomic(sheet(real_holdout[:64], columns=8), out / "holdout.png")  # the real sheet to judge it beside
    # 16 generated sprites, each followed by its nearest training sprite
    first = sprites[:16]
    nearest = nearest_indices(pixel_features(first), train_features)
    pairs = np.stack([first, train[nearest]], axis=1).reshape(-1, *first.shape[1:])
    save_atomic(sheet(pairs, columns=8), out / "neighbours.png")
    # each bin's training sprites nearest its centre first, its generated sprites in seed order
    to_centres = sq_distances(train_features, centres)
    by_closeness = np.argsort(to_centres.min(axis=1))
    train_labels = to_centres.argmin(axis=1)
    gen_labels = nearest_indices(pixel_features(sprites), centres)
    picture = coverage_sheet(result["bins"], train[by_closeness], train_labels[by_closeness], sprites, gen_labels)
    save_atomic(picture, out / "coverage.png")
    click.echo(report_table(result))
    click.echo("\n".join(coverage_lines(result["bins"])))
    click.echo(f"Wrote {', '.join(names)} to {out}")
