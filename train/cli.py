"""`dcgan-train`: a folder of sprites -> a DCGAN run folder (checkpoint, grids, metrics).

Parses and validates only; the work is in plain functions (`dcgan.train.loop`) that tests call too. Importing
this module needs no torch, so a missing `train` extra gets a one-line answer instead of a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from dcgan.serve.signals import StopRequest, stop_on_signals

from .config import D_NORMS, G_INITS, LOSSES, PRESETS, ModelConfig, TrainConfig

M, T = ModelConfig(), TrainConfig()  # the single source of defaults
TRAIN_EXTRA = "pip install 'dcgan-pokemon[train]'  (from a checkout: pip install '.[train]')"
RUN_OPTIONS = (
    "batch_size", "seed", "lr", "lr_d", "nz", "ngf", "ndf", "amp", "channels_last", "flip", "sample_every", "preset",
    "keep_every", "diffaugment", "ema_half_life", "loss", "gp_weight", "r1", "lecam", "label_smoothing", "ada_target",
    "replay", "instance_noise", "instance_noise_epochs", "g_init", "d_norm", "mbstd_group", "even_upsampling",
    "d_joint_batch",
)  # fmt: skip


def require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise click.ClickException(f"{command} needs PyTorch, which is not installed here: {TRAIN_EXTRA}") from err


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
    help="Folder of sprites (PNG, GIF, JPEG, WebP, ...). Default: PokeAPI's sprites, downloaded once to a cache.",
)
@click.option(
    "--all-frames",
    is_flag=True,
    help="Train on every frame of animated images (GIF, WebP, APNG) instead of the first.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="New run folder. Default: the next free runs/N.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="Continue the run in this folder (or checkpoint) to --epochs in total.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    show_default=False,
    help=f"Total epochs to reach. Default: {T.epochs}, or the resumed run's own target.",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=T.batch_size)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=T.lr, help="Adam learning rate.")
@click.option("--lr-d", type=click.FloatRange(min=0), default=T.lr_d, help="The discriminator's, if not --lr; 0: --lr.")
@click.option("--seed", type=int, default=T.seed, help="Seeds weight init, data order, flips and noise.")
@click.option("--nz", type=click.IntRange(min=1), default=M.nz, help="Latent size.")
@click.option("--ngf", type=click.IntRange(min=1), default=M.ngf, help="Generator width.")
@click.option("--ndf", type=click.IntRange(min=1), default=M.ndf, help="Discriminator width.")
@click.option("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=T.amp, help="bf16 autocast on CPUs with native bf16; mixed precision on CUDA.")
@click.option(
    "--channels-last/--no-channels-last",
    default=T.channels_last,
    help="channels-last memory format (see the README's training-speed table).",
)
@click.option("--flip/--no-flip", default=T.flip, help="Random horizontal flips of the real sprites.")
@click.option(
    "--sample-every",
    type=click.IntRange(min=1),
    default=T.sample_every,
    help="Epochs between grid PNGs and metrics lines.",
)
@click.option(
    "--keep-every",
    type=click.IntRange(min=0),
    default=T.keep_every,
    help="Keep the checkpoint of every N-th epoch as checkpoints/epochNNNN.pt (80 MB each at --ngf 48), to "
    "evaluate or export later; 0: keep only the latest and best.pt.",
)
@click.option(
    "--loss",
    type=click.Choice(LOSSES),
    default=T.loss,
    help="hinge; bce: the non-saturating loss of the DCGAN paper; wgan-gp: Wasserstein with gradient penalty.",
)
@click.option("--gp-weight", type=click.FloatRange(min=0), default=T.gp_weight, help="Penalty weight of wgan-gp.")
@click.option(
    "--r1",
    type=click.FloatRange(min=0),
    default=T.r1,
    help="R1 penalty weight: (r1 / 2)·|grad D|² at the real sprites, added to D's loss; 0: off.",
)
@click.option(
    "--lecam",
    type=click.FloatRange(min=0),
    default=T.lecam,
    help="LeCam regularisation weight: pulls D's scores of real sprites towards the moving average of its scores "
    "of generated ones, and vice versa, against a discriminator that overfits few images (Tseng et al. 2021); 0: off.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(min=0, max=0.5, max_open=True),
    default=T.label_smoothing,
    help="One-sided label smoothing with --loss bce: D's target for real sprites is 1 minus this (Salimans et al. "
    "2016, who use 0.1), which caps D's confidence about them; 0: off.",
)
@click.option(
    "--replay",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=T.replay,
    help="Experience replay: this share of the generated sprites D sees in each step is drawn from a buffer of "
    "sprites G drew in earlier steps (Shrivastava et al. 2017, who use 0.5), so D keeps rejecting them; 0: off.",
)
@click.option(
    "--instance-noise",
    type=click.FloatRange(min=0),
    default=T.instance_noise,
    help="Instance noise: Gaussian noise of this standard deviation (sprites span -1 to 1) added to every sprite D "
    "sees, real and generated, falling linearly to 0 over --instance-noise-epochs (Sønderby et al. 2016); 0: off.",
)
@click.option(
    "--instance-noise-epochs",
    type=click.IntRange(min=1),
    default=T.instance_noise_epochs,
    help="Epochs over which --instance-noise falls to 0.",
)
@click.option(
    "--ada-target",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=T.ada_target,
    help="Adaptive augmentation (ADA): rotate and scale the sprites D sees with a probability that rises while "
    "the mean sign of D's scores of real sprites is above this target, and falls while it is below (the paper's 0.6: "
    "80% of them scored as real); 0: off.",
)
@click.option(
    "--g-init",
    type=click.Choice(G_INITS),
    default=T.g_init,
    help="normal: N(0, 0.02) everywhere (the paper); icnr: G's upsampling kernels start as nearest-neighbour "
    "upsampling then a 3x3 N(0, 0.02) convolution, without a checkerboard.",
)
@click.option(
    "--even-upsampling",
    is_flag=True,
    help="After every G step, keep each upsampling kernel's four output phases at the same gain, so a flat "
    "feature map comes out flat: no checkerboard from the upsampling itself (Sugawara et al. 2019).",
)
@click.option(
    "--d-norm",
    type=click.Choice(D_NORMS),
    default=M.d_norm,
    help="Discriminator normalisation: spectral norm, the paper's batch norm, or none (with wgan-gp, "
    "whose per-sample penalty batch norm breaks).",
)
@click.option(
    "--d-joint-batch",
    is_flag=True,
    help="Score real and generated sprites in one batch of D, so its batch norm normalises them together "
    "(the paper: a batch of each). Measured worse: every creature took one colour (docs/experiments.md).",
)
@click.option(
    "--mbstd-group",
    type=click.IntRange(min=0),
    default=M.mbstd_group,
    help="Minibatch standard deviation in D over groups of this many samples (look-alike batches show); 0: off.",
)
@click.option(
    "--diffaugment",
    default=T.diffaugment,
    help="DiffAugment policy for real and fake sprites (colour never touches alpha); '' for none.",
)
@click.option(
    "--ema-half-life",
    type=click.IntRange(min=0),
    default=T.ema_half_life,
    help="Keep an EMA generator (exported instead of G) whose lag halves over this many images; 0: none.",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="default",
    help="article: the original article's setup (BCE, batch norm in D, no augmentation, no EMA, batch 32, "
    "no flips, 100 epochs), for comparison.",
)
@click.option(
    "--stop-on-collapse", is_flag=True, help="End the run when the mode-collapse alarm trips (best.pt stays)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, only one line per epoch.")
@click.pass_context
def main(
    ctx: click.Context,
    data,
    all_frames,
    out,
    resume,
    epochs,
    batch_size,
    lr,
    lr_d,
    seed,
    nz,
    ngf,
    ndf,
    device,
    amp,
    channels_last,
    flip,
    sample_every,
    keep_every,
    loss,
    gp_weight,
    r1,
    lecam,
    label_smoothing,
    replay,
    instance_noise,
    instance_noise_epochs,
    ada_target,
    g_init,
    even_upsampling,
    d_norm,
    d_joint_batch,
    mbstd_group,
    diffaugment,
    ema_half_life,
    preset,
    stop_on_collapse,
    quiet,
) -> None:
    """Train a DCGAN on a folder of sprites; every epoch writes a checkpoint and a grid of the same 64 seeds.

    \b
    Examples:
      dcgan-train                          # PokeAPI sprites, 100 epochs, runs/N
      dcgan-train --data sprites/ --out runs/demo --epochs 2
      dcgan-train --resume runs/demo --epochs 3   # continue to epoch 3

    Ctrl-C (or SIGTERM) saves a checkpoint and stops; --resume continues exactly where it stopped.
    Every --sample-every epochs the samples are checked for mode collapse, loudly.
    """
    require_torch("dcgan-train")
    from . import jobs

    if resume is not None:
        given = [
            f"--{n.replace('_', '-')}"
            for n in RUN_OPTIONS
            if ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT
        ]
        if out is not None:
            given.append("--out")
        if all_frames:
            given.append("--all-frames")
        if given:
            raise click.UsageError(
                f"{', '.join(given)} cannot change a resumed run: its settings come from the checkpoint"
            )
        job = jobs.resume_job(resume, data=data, epochs=epochs, device=device)
    else:
        run_dir = out if out is not None else next_run_dir()
        check_new_run_dir(run_dir)
        model = dict(nz=nz, ngf=ngf, ndf=ndf, d_norm=d_norm, mbstd_group=mbstd_group)
        train = dict(batch_size=batch_size, lr=lr, lr_d=lr_d, seed=seed, amp=amp, channels_last=channels_last,
                     flip=flip, sample_every=sample_every, keep_every=keep_every, loss=loss, gp_weight=gp_weight,
                     r1=r1, lecam=lecam, label_smoothing=label_smoothing, ada_target=ada_target, replay=replay,
                     instance_noise=instance_noise, instance_noise_epochs=instance_noise_epochs,
                     g_init=g_init,
                     even_upsampling=even_upsampling, d_joint_batch=d_joint_batch, diffaugment=diffaugment,
                     ema_half_life=ema_half_life,
                     epochs=epochs or T.epochs)  # fmt: skip
        for key, value in PRESETS[preset].items():  # a preset fills in what the command line left at default
            if ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT:
                (model if key in model else train)[key] = value
        if train["loss"] == "wgan-gp" and model["d_norm"].endswith("batch"):
            raise click.UsageError("--loss wgan-gp penalises each sample's gradient, which batch norm mixes; "
                                   "use --d-norm none or spectral")  # fmt: skip
        if train["label_smoothing"] and train["loss"] != "bce":
            raise click.UsageError("--label-smoothing sets the target of --loss bce; hinge and wgan-gp have none")
        if train["d_joint_batch"] and model["mbstd_group"]:
            raise click.UsageError("--mbstd-group with --d-joint-batch puts real and generated sprites in the same "
                                   "groups, so their spread cannot tell them apart; use one or the other")  # fmt: skip
        epochs = train.pop("epochs")
        job = jobs.new_job(data=data, run_dir=run_dir, epochs=epochs, device=device,
                           model=model, train=dict(train, preset=preset), all_frames=all_frames)  # fmt: skip
    stop = StopRequest()
    with stop_on_signals(stop, "saving a checkpoint, then stopping"):
        jobs.run(job, stop=stop, show_progress=not quiet, stop_on_collapse=stop_on_collapse)
