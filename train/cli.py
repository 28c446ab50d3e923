"""`dcgan-train`: a folder of sprites -> a DCGAN run folder (checkpoint, grids, metrics).

Parses and validates only; the work is in plain functions (`dcgan.train.loop`) that tests call too. Importing
this module needs no torch, so a missing `train` extra gets a one-line answer instead of a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from dcgan.serve.signals import StopRequest, stop_on_signals

from .config import D_NORMS, GENERATORS, LOSSES, PRESETS, ModelConfig, TrainConfig
from .dependencies import require_torch

MODEL_DEFAULTS, TRAIN_DEFAULTS = ModelConfig(), TrainConfig()  # the single source of defaults
# The options --resume takes; every other one is a setting of the run, which its checkpoint holds.
ON_RESUME = ("resume", "data", "epochs", "device", "stop_on_collapse", "quiet")


def next_run_dir(root: Path = Path("runs")) -> Path:
    """runs/1, runs/2, ...: one past the highest numbered run, so an existing run is never reused."""
    taken = [int(p.name) for p in root.glob("*") if p.is_dir() and re.fullmatch(r"\d+", p.name)]
    return root / str(max(taken, default=0) + 1)


def check_new_run_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{path} is a file, not a folder", param_hint="--out")
    if path.is_dir() and any(path.iterdir()):
        hint = f"continue it with --resume {path}" if (path / "checkpoint.pt").exists() else "choose another --out"
        raise click.BadParameter(f"{path} already holds files and is never overwritten; {hint}", param_hint="--out")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="Sprite folder. Default: PokeAPI's, fetched.",
)
@click.option(
    "--all-frames",
    is_flag=True,
    help="Every frame of animated images.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="New run folder. Default: next free runs/N.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="Continue this run (or checkpoint).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    show_default=False,
    help=f"Default: {TRAIN_DEFAULTS.epochs}, or the resumed run's.",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=TRAIN_DEFAULTS.batch_size,
              help="Per process; torchrun: N x it.")  # fmt: skip
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=TRAIN_DEFAULTS.lr, help="Adam learning rate."
)
@click.option("--seed", type=int, default=TRAIN_DEFAULTS.seed, help="Random seed.")
@click.option("--nz", type=click.IntRange(min=1), default=MODEL_DEFAULTS.nz, help="Latent size.")
@click.option(
    "--generator",
    type=click.Choice(GENERATORS),
    default=MODEL_DEFAULTS.generator,
    help="paper: transposed convs; resize: x2 + conv; palette: 16 colours.",
)
@click.option("--ngf", type=click.IntRange(min=1), default=MODEL_DEFAULTS.ngf, help="Generator width.")
@click.option(
    "--palette-anneal",
    type=click.IntRange(min=0),
    default=TRAIN_DEFAULTS.palette_anneal,
    help="palette: images to a hard softmax.",
)
@click.option("--ndf", type=click.IntRange(min=1), default=MODEL_DEFAULTS.ndf, help="Discriminator width.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=TRAIN_DEFAULTS.amp, help="Mixed precision where fast.")
@click.option("--channels-last/--no-channels-last", default=TRAIN_DEFAULTS.channels_last, help="Memory format.")
@click.option("--flip/--no-flip", default=TRAIN_DEFAULTS.flip, help="Random left-right flips.")
@click.option(
    "--sample-every", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.sample_every, help="Epochs between grids."
)
@click.option(
    "--keep-every",
    type=click.IntRange(min=0),
    default=TRAIN_DEFAULTS.keep_every,
    help="Keep every N-th epoch.",
)
@click.option(
    "--loss",
    type=click.Choice(LOSSES),
    default=TRAIN_DEFAULTS.loss,
    help="bce: the DCGAN paper's.",
)
@click.option("--gp-weight", type=click.FloatRange(min=0), default=TRAIN_DEFAULTS.gp_weight, help="wgan-gp's penalty.")
@click.option(
    "--d-norm",
    type=click.Choice(D_NORMS),
    default=MODEL_DEFAULTS.d_norm,
    help="wgan-gp needs none.",
)
@click.option("--diffaugment", default=TRAIN_DEFAULTS.diffaugment, help="DiffAugment policy; '' for none.")
@click.option(
    "--ema-half-life",
    type=click.IntRange(min=0),
    default=TRAIN_DEFAULTS.ema_half_life,
    help="EMA half-life (images).",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="default",
    help="article: the article's plain DCGAN.",
)
@click.option("--stop-on-collapse", is_flag=True, help="End the run on a collapse alarm.")
@click.option("-q", "--quiet", is_flag=True, help="One line per epoch, no progress bars.")
@click.pass_context
def main(ctx: click.Context, resume, out, all_frames, data, epochs, device, stop_on_collapse, quiet, **settings):
    """Train a DCGAN on a folder of sprites, by default with the shipped model's recipe. Each epoch writes a
    checkpoint and a grid of 64 fixed seeds, watched for collapse.

    \b
    Examples:
      dcgan-train --data sprites/ --out runs/demo   # the shipped recipe
      dcgan-train --resume runs/demo --epochs 200   # continue to epoch 200
      dcgan-train --data sprites/ --preset article  # the article's DCGAN

    Ctrl-C saves a checkpoint and stops; --resume continues exactly there.
    """
    require_torch("dcgan-train")
    from . import runs

    if resume is not None:
        given = [f"--{name.replace('_', '-')}" for name in ("out", "all_frames", *settings) if given_on(ctx, name)]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} cannot change a resumed run: its settings come from the checkpoint"
            )
        job = runs.resume_job(resume, data=data, epochs=epochs, device=device)
    else:
        rank = int(os.environ.get("RANK", "0"))  # torchrun's; rank 0 alone writes the run folder
        if out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise click.UsageError("under torchrun, name the run folder with --out: every rank must train into it")
        run_dir = out if out is not None else next_run_dir()
        if rank == 0:
            check_new_run_dir(run_dir)
        # a preset fills in what the command line left at its default
        settings.update({k: v for k, v in PRESETS[settings["preset"]].items() if not given_on(ctx, k)})
        if epochs is not None:
            settings["epochs"] = epochs
        model = {k: settings.pop(k) for k in list(settings) if k in ModelConfig.__dataclass_fields__}
        job = runs.new_job(data=data, run_dir=run_dir, device=device, model=model, train=settings,
                           all_frames=all_frames)  # fmt: skip
    stop = StopRequest()
    with stop_on_signals(stop, "saving a checkpoint, then stopping"):
        runs.run(job, stop=stop, show_progress=not quiet, stop_on_collapse=stop_on_collapse)


def given_on(ctx: click.Context, name: str) -> bool:
    """Whether the command line set this option (a default or a preset did not)."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
