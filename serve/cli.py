"""`dcgan-sample`: sprites from an ONNX generator on onnxruntime, never torch. A thin layer over
dcgan.serve.SpriteGenerator and dcgan.serve.writer."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click
import numpy as np

from .seeds import MAX_SEED, Seeds, parse_seeds, parse_shard, parse_walk, seed_range
from .signals import StopRequest, stop_on_signals
from .writer import FolderError, SampleError, existing_seeds, sample_to_folder

MAX_SHEET = 1024  # sprites in one --sheet picture (32 x 32 of them is already 3,000 px wide)


class SeedList(click.ParamType):
    name = "SEEDS"

    def convert(self, value, param, ctx) -> Seeds:
        if isinstance(value, Seeds):
            return value
        try:
            return parse_seeds(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


class WalkSeeds(click.ParamType):
    name = "S1,S2,..."

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            return parse_walk(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("-n", "count", type=click.IntRange(min=1), default=None, help="How many sprites: seeds S .. S+N-1.")
@click.option("--seed", "first_seed", type=click.IntRange(0, MAX_SEED), default=0, help="First seed, with -n.")
@click.option(
    "--seeds", type=SeedList(), default=None, help="Exactly these seeds, e.g. 0-63,100,200-209 (instead of -n)."
)
@click.option("--shard", default=None, metavar="I/K",
              help="Write only part I of K (I from 0) of these seeds; auto: from a Slurm array or, as auto/K, an "
                   "Indexed Job. The K parts together are exactly the whole run.")  # fmt: skip
@click.option("--missing", is_flag=True,
              help="Write nothing: print the seeds (of this shard) that have no file in OUT_DIR, as a --seeds list; "
                   "exit 1 when there are any.")  # fmt: skip
@click.option("--model", type=click.Path(path_type=Path), default=None, show_default=False,
              help="ONNX file from dcgan-export, export folder or run folder. Default: the shipped model.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=64)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto",
              help="auto: CUDA when onnxruntime can run it (else the CPU, saying why).")  # fmt: skip
@click.option("--threads", type=click.IntRange(min=0), default=0, help="onnxruntime threads; 0: one per physical core.")
@click.option("--fp16", is_flag=True, help="Use generator-fp16.onnx (fast on CUDA; the CPU computes it in fp32).")
@click.option("--soft-alpha", is_flag=True, help="Keep the generator's raw alpha instead of making it 0 or 255.")
@click.option(
    "--colours",
    type=click.IntRange(min=2, max=256),
    default=None,
    help="Post-process: redraw each sprite in at most N colours of its own (median cut). Off: the model's pixels.",
)
@click.option("--sheet", is_flag=True, help=f"Also write sheet.png, a grid of every sprite made (up to {MAX_SHEET}).")
@click.option("--scale", type=click.IntRange(min=1, max=16), default=1,
              help="Nearest-neighbour upscaling of the sheet and the walk; sprite files stay 96x96.")  # fmt: skip
@click.option("--overwrite", is_flag=True,
              help="Replace existing files (otherwise only ones that hold the same sprite are accepted).")  # fmt: skip
@click.option(
    "--walk",
    type=WalkSeeds(),
    default=None,
    help="Walk through these seeds' latents and back to the first; OUT_DIR is then a .gif or .png file.",
)
@click.option("--frames", type=click.IntRange(min=1), default=24, help="Frames per step of a --walk.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something goes wrong.")
def main(out_dir, count, first_seed, seeds, shard, missing, model, batch_size, provider, threads, fp16, soft_alpha,
         colours, sheet, scale, overwrite, walk, frames, quiet) -> None:  # fmt: skip
    """Write sprites as 96x96 RGBA PNGs named by seed (seed000042.png) into OUT_DIR.

    A seed always names the same creature: z = numpy.random.default_rng(seed).standard_normal(nz, float32).
    Sprites are finished like real ones: alpha exactly 0 or 255, no colour under transparent pixels.

    \b
    Examples:
      dcgan-sample -n 64 out/                        # seeds 0-63 with the shipped model
      dcgan-sample --seeds 0-15,42 --sheet --scale 4 look/
      dcgan-sample -n 100000 --seed 1000 --model runs/demo big/
      dcgan-sample --walk 3,17,42 --frames 24 walk.gif   # a looping latent walk (or walk.png, a strip)
      dcgan-sample -n 64 --colours 16 --sheet indexed/   # post-processed to 16 colours a sprite
      dcgan-sample -n 1000000 --shard 3/16 /shared/sprites/   # part 3 of 16 (auto: from Slurm or Kubernetes)
      dcgan-sample -n 1000000 --missing /shared/sprites/      # which seeds have no file yet
    """
    from .generator import ModelError, SpriteGenerator  # onnxruntime: imported here to keep --help quick
    from .runtime import ProviderError

    def open_generator(**kw) -> SpriteGenerator:
        try:
            gen = SpriteGenerator(model, provider=provider, fp16=fp16, threads=threads or None, **kw)
        except (ModelError, ProviderError) as err:
            raise click.ClickException(str(err)) from err
        if gen.notice and not quiet:
            click.echo(f"note: {gen.notice}", err=True)
        return gen

    if walk is not None:
        given = [name for name, on in (("-n", count), ("--seeds", seeds), ("--sheet", sheet), ("--shard", shard),
                                       ("--missing", missing),
                                       ("--soft-alpha", soft_alpha), ("--colours", colours)) if on]  # fmt: skip
        if given:
            raise click.UsageError(f"--walk makes one picture from its own seeds; {', '.join(given)} cannot go with it")
        write_walk(walk, frames, out_dir, scale, overwrite, open_generator, batch_size, quiet)
        return
    if seeds is not None and count is not None:
        raise click.UsageError("give either -n (with --seed) or --seeds, not both")
    if seeds is None:
        if count is None:
            raise click.UsageError("say how many sprites: -n N (seeds from --seed), or --seeds 0-63,100")
        try:
            seeds = seed_range(first_seed, count)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="-n") from err
    if shard is not None:
        try:
            seeds = seeds.shard(*parse_shard(shard, os.environ))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--shard") from err
    if missing:
        if out_dir.exists() and not out_dir.is_dir():
            raise click.BadParameter(f"{out_dir} is a file, not a folder", param_hint="OUT_DIR")
        absent = seeds.without(existing_seeds(out_dir))
        if not quiet:
            click.echo(f"{len(absent)} of {len(seeds)} sprites missing in {out_dir}", err=True)
        if len(absent):
            click.echo(str(absent))
            raise click.exceptions.Exit(1)
        return
    if sheet and len(seeds) > MAX_SHEET:
        raise click.BadParameter(f"a sheet holds at most {MAX_SHEET} sprites, not {len(seeds)}", param_hint="--sheet")
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} is a file, not a folder", param_hint="OUT_DIR")

    gen = open_generator(soft_alpha=soft_alpha, batch_size=batch_size)  # a bad model: before any folder is made
    show_bar = not quiet and len(seeds) > batch_size and sys.stderr.isatty()
    bar = click.progressbar(length=len(seeds), label="sprites", hidden=not show_bar, file=sys.stderr)
    stop = StopRequest()
    try:
        with stop_on_signals(stop, "finishing the sprites in hand, then stopping"), bar:
            done = sample_to_folder(gen, seeds, out_dir, overwrite=overwrite, colours=colours, sheet=sheet,
                                    sheet_scale=scale, stop=stop, progress=bar.update)  # fmt: skip
    except FolderError as err:
        raise click.BadParameter(str(err), param_hint="OUT_DIR") from err
    except SampleError as err:
        raise click.ClickException(str(err)) from err
    if done.interrupted:
        click.echo(
            f"Interrupted: {done.written} complete sprites in {out_dir}, no partial file. To finish, run the "
            "same command again (a seed always makes the same sprite; files already there are kept).",
            err=True,
        )
        raise click.exceptions.Exit(stop.exit_code)
    if not quiet:
        model_name = gen.info.path.name if model is not None else f"shipped {gen.info.path.name}"
        kept = f", {done.kept} already there" if done.kept else ""
        click.echo(
            f"{done.written} sprites in {out_dir}{kept} ({len(seeds) / done.seconds:.0f} sprites/s) on "
            f"{gen.provider}, model {model_name}" + (", and sheet.png" if sheet else "")
        )


def write_walk(seeds: list[int], frames: int, out: Path, scale: int, overwrite: bool, open_generator, batch_size: int,
               quiet: bool = False):  # fmt: skip
    """dcgan-sample --walk: the frames of a closed walk through `seeds`, as one GIF or PNG strip at `out`."""
    from .walk import MAX_FRAMES, save_walk, walk_latents

    if out.suffix.lower() not in (".gif", ".png"):
        raise click.BadParameter(f"a walk is written as a .gif or a .png strip, not {out.name}", param_hint="OUT_DIR")
    if len(seeds) * frames > MAX_FRAMES:
        raise click.BadParameter(
            f"{len(seeds)} steps of {frames} frames is {len(seeds) * frames}; a walk has at most {MAX_FRAMES}",
            param_hint="--frames",
        )
    if out.is_dir():
        raise click.BadParameter(f"{out} is a folder; a walk is one file", param_hint="OUT_DIR")
    if out.exists() and not overwrite:
        raise click.ClickException(f"{out} exists and is never overwritten; pass --overwrite to replace it")
    gen = open_generator(batch_size=batch_size)
    z = walk_latents(seeds, frames, gen.info.nz)
    sprites = np.concatenate([gen.from_latents(z[i : i + batch_size]) for i in range(0, len(z), batch_size)])
    created = not out.parent.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_walk(sprites, out, scale=scale)
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                out.parent.rmdir()  # no new empty folder left behind
        raise click.ClickException(f"writing {out} failed: {err.strerror or err}; nothing was written") from err
    if not quiet:
        click.echo(f"{len(sprites)} frames through seeds {', '.join(map(str, seeds))} and back, in {out}")
