"""`dcgan-eval`: is a generator diverse, does it cover the data's modes, does it copy its training set?

Generates sprites through the shared latent convention (seeds 0 .. n-1) from a checkpoint, a run folder or
any exported ONNX file, and reports the metrics of dcgan.train.metrics, each beside its real-data floor:
held-out real sprites measured the same way against the training set.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .cli import require_torch

METRICS = {  # name: (what it says, which way is good)
    "diversity_ratio": ("mean pairwise distance, over the training set's", "near the floor (1 = as varied as real)"),
    "near_duplicate_rate": ("share whose nearest other sample is closer than any two real sprites", "low"),
    "ndb": ("k-means bins of the training set whose share differs (95%), at holdout count", "low"),
    "jsd": ("Jensen-Shannon divergence of the bin shares, at holdout count", "low"),
    "memorisation_ratio": ("distance to the nearest training sprite, over the holdout's", ">= 0.9 (below: copying)"),
    "kid": ("KID against the training set in a fixed random-CNN space", "low"),
    "ms_ssim": ("mean MS-SSIM of random pairs (1 = identical)", "near the floor; high: alike"),
    "colour_spread": (
        "spread of the sprites' mean colours, over the training set's",
        "near the floor; low: one colour",
    ),
    "fid_inception": ("FID against the training set, Inception-v3 features, at holdout count", "low"),
    "kid_inception": ("KID against the training set, Inception-v3 features", "low"),
}


def generate(model: Path, n: int) -> tuple[np.ndarray, str]:
    """Finished uint8 RGBA sprites for seeds 0 .. n-1, and a description of where they came from."""
    from dcgan.serve.contract import finish_sprites
    from dcgan.serve.generator import ModelError, SpriteGenerator
    from dcgan.serve.latent import latents

    from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint

    ckpt = model / CHECKPOINT_NAME if model.is_dir() else model
    if ckpt.suffix != ".onnx" and ckpt.exists():
        import torch

        from dcgan.export.exporter import load_generator

        try:
            state = load_checkpoint(ckpt)
            generator = load_generator(state)
        except CheckpointError as err:
            raise click.BadParameter(str(err), param_hint="MODEL") from err
        with torch.no_grad():
            parts = [generator(torch.from_numpy(latents(range(i, min(i + 256, n)), generator.cfg.nz))).numpy()
                     for i in range(0, n, 256)]  # fmt: skip
        which = "EMA generator" if "generator_ema" in state else "generator"
        return finish_sprites(np.concatenate(parts)), f"{ckpt} ({which}, epoch {state['epoch']})"
    try:
        gen = SpriteGenerator(model, provider="cpu")
    except ModelError as err:
        raise click.BadParameter(str(err), param_hint="MODEL") from err
    return gen(range(n)), str(gen.info.path)


def load_sprites(folder: Path, option: str) -> np.ndarray:
    from .data import NoImagesError, load_folder

    try:
        return load_folder(folder, warn=lambda line: click.echo(f"warning: {line}", err=True)).images.transpose(
            0, 2, 3, 1
        )
    except (FileNotFoundError, NotADirectoryError, NoImagesError) as err:
        raise click.BadParameter(str(err), param_hint=option) from err


def report_table(result: dict) -> str:
    lines = [f"{'metric':<20} {'model':>9} {'real floor':>10}  meaning (good is)", "-" * 100]
    for name, values in result["metrics"].items():
        meaning, good = METRICS[name]
        lines.append(f"{name:<20} {values['model']:>9.4f} {values['real_floor']:>10.4f}  {meaning} ({good})")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option("--data", type=click.Path(path_type=Path), required=True, help="The training sprites.")
@click.option("--holdout", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Real sprites the model never saw, for the floors. Default: 10% of --data set aside.")  # fmt: skip
@click.option("-n", "count", type=click.IntRange(min=16), default=1000, help="Sprites to generate (seeds 0 .. n-1).")
@click.option("--bins", type=click.IntRange(min=2), default=40, help="k-means bins of the training set (NDB, JSD).")
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Folder for metrics.json, sheet.png, neighbours.png. Default: RUN/eval, or eval-NAME.")  # fmt: skip
@click.option("--inception-weights", type=click.Path(path_type=Path, dir_okay=False), default=None,
              show_default=False, help="torchvision's Inception-v3 state dict (a local .pth; nothing is downloaded): "
              "adds FID and KID in Inception's feature space.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in --out.")
def main(
    model: Path,
    data: Path,
    holdout: Path | None,
    count: int,
    bins: int,
    out: Path | None,
    inception_weights: Path | None,
    overwrite: bool,
):
    """Measure diversity, mode coverage and memorisation of MODEL (checkpoint, run folder or ONNX file).

    \b
    Examples:
      dcgan-eval runs/demo --data ../shared/data/pokemon --holdout ../shared/data/pokemon-holdout
      dcgan-eval src/generator-rgba8.onnx --data sprites/ -n 500 --out report/
      dcgan-eval runs/demo --data sprites/ --inception-weights inception_v3_google-0cc3c7bd.pth
    """
    require_torch("dcgan-eval")
    from dcgan.serve.files import write_text_atomic
    from dcgan.serve.images import save_atomic, sheet

    from .metrics import evaluate, nearest_indices, pixel_features

    out = out or (
        model / "eval" if model.is_dir() and (model / "checkpoint.pt").exists() else Path(f"eval-{model.stem}")
    )
    names = ("metrics.json", "sheet.png", "neighbours.png")
    if not overwrite and any((out / name).exists() for name in names):
        raise click.ClickException(f"{out} already holds a report; pass --overwrite or choose another --out")

    inception = None
    if inception_weights is not None:
        from .inception import Inception, InceptionError

        try:
            inception = Inception(inception_weights)
        except InceptionError as err:
            raise click.BadParameter(str(err), param_hint="--inception-weights") from err
    train = load_sprites(data, "--data")
    note = ""
    if holdout is not None:
        real_holdout = load_sprites(holdout, "--holdout")
    else:  # floors from real sprites set aside, though the model may have trained on them
        order = np.random.default_rng(0).permutation(len(train))
        cut = max(2, len(train) // 10)
        real_holdout, train = train[order[:cut]], train[order[cut:]]
        note = f"no --holdout: floors use {cut} sprites of --data set aside (the model may have seen them)"
    if len(real_holdout) < 2 or len(train) < bins:
        raise click.BadParameter(f"need at least {bins} training and 2 held-out sprites", param_hint="--data")
    sprites, source = generate(model, count)
    click.echo(f"Generated {len(sprites)} sprites from {source}; {len(train)} training, {len(real_holdout)} held out")
    if note:
        click.echo(f"note: {note}", err=True)

    result = evaluate(sprites, train, real_holdout, k=bins, inception=inception)
    result["model"] = source
    result["note"] = note or None
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=2))
    save_atomic(sheet(sprites[:64], columns=8), out / "sheet.png")
    # 16 generated sprites, each followed by its nearest training sprite
    first = sprites[:16]
    nearest = nearest_indices(pixel_features(first), pixel_features(train))
    pairs = np.stack([first, train[nearest]], axis=1).reshape(-1, *first.shape[1:])
    save_atomic(sheet(pairs, columns=8), out / "neighbours.png")
    click.echo(report_table(result))
    click.echo(f"Wrote {', '.join(names)} to {out}")
