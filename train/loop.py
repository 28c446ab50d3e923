"""The training loop: DCGAN with the non-saturating BCE or the WGAN-GP loss, resumable to the step.

Every random draw of training (epoch order, flips, noise) comes from one CPU torch.Generator whose state the
checkpoint carries, together with the epoch's order and the position in it, so a run that is interrupted
and resumed ends with the same weights as one that never stopped (on the CPU).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from dcgan.serve.contract import finish_sprites
from dcgan.serve.files import link_atomic
from dcgan.serve.images import animate, save_atomic, sheet
from dcgan.serve.latent import latents

from . import distributed, watch
from .augment import diff_augment
from .checkpoint import (
    CHECKPOINT_NAME,
    FORMAT,
    CheckpointError,
    load_weights,
    package_version,
    retired_settings,
    save_checkpoint,
)
from .config import ModelConfig, TrainConfig, check_combination, parse_policy
from .data import SpriteSet
from .model import build_models, palette_temperature, recompute_batch_norm

GRID_SEEDS = range(64)  # the fixed creatures every grid shows, through the shared latent convention
GRIDS_DIR = "grids"  # every sampling epoch's grid, as epochNNNN.png
KEPT_DIR = "checkpoints"  # every --keep-every epochs' checkpoint, as epochNNNN.pt
BEST_NAME = "best.pt"  # the checkpoint with the most diverse samples that did not trip the collapse alarm


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere autocast would be slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(device: torch.device, wanted: bool) -> torch.dtype | None:
    """The autocast dtype to train with on `device`, or None for plain fp32."""
    if not wanted:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.ClickException(
            f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu"
        )
    return device


def discriminator_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on raw scores (logits) of real and generated sprites; lower is better for D."""
    if loss == "bce":
        real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        return real + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    if loss == "wgan-gp":  # the critic's Wasserstein estimate, negated; the penalty is added by the caller
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown loss {loss!r}")


def generator_loss(loss: str, d_gen: torch.Tensor) -> torch.Tensor:
    """Generator loss on the discriminator's raw scores of generated sprites."""
    if loss == "bce":  # the non-saturating loss: fake -> 1
        return F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    if loss == "wgan-gp":
        return -d_gen.mean()
    raise ValueError(f"unknown loss {loss!r}")


class Trainer:
    """Models, optimisers and the position in training; `state_dict` is the whole checkpoint."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        device: torch.device,
        data_info: dict,
        fast: bool = True,
        group: distributed.Group = distributed.SINGLE,
    ):
        """`fast=False` trains the same recipe with the per-tensor optimiser and EMA updates of earlier versions
        (benchmarks/train_speed.py times both). `group`: this process's place under torchrun (train/distributed.py);
        every rank then starts from rank 0's weights, and each step averages the gradients over the ranks."""
        check_combination(model_cfg, train_cfg)
        self.model_cfg, self.cfg, self.device, self.data_info = model_cfg, train_cfg, device, data_info
        torch.manual_seed(train_cfg.seed)  # weight init
        self.G, self.D = build_models(model_cfg)
        memory_format = torch.channels_last if train_cfg.channels_last else torch.preserve_format
        self.G.to(device, memory_format=memory_format)
        self.D.to(device, memory_format=memory_format)
        self.group = group
        distributed.broadcast_parameters(group, self.G, self.D)
        self.policy = parse_policy(train_cfg.diffaugment)
        # the EMA generator averages G's weights; its batch-norm statistics are its own (refresh_ema_stats)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if train_cfg.ema_half_life > 0 else None
        global_batch = train_cfg.batch_size * group.world
        self.ema_beta = 0.5 ** (global_batch / train_cfg.ema_half_life) if self.G_ema is not None else 0.0
        betas = (train_cfg.beta1, train_cfg.beta2)
        # one fused kernel per optimiser instead of a dozen elementwise passes: the same update, 1.1x the images/s
        # on a 2-core CPU (benchmarks/train_speed.py)
        fused = fast and device.type in ("cpu", "cuda")
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train_cfg.lr, betas=betas, fused=fused or None)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train_cfg.lr, betas=betas, fused=fused or None)
        self.fast = fast
        self.dtype = amp_dtype(device, train_cfg.amp)
        # loss scaling is only needed for fp16; bf16 has fp32's range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.rng = torch.Generator().manual_seed(train_cfg.seed)  # the run's stream: epoch orders, rank 0's noise
        self.noise = self.rng if group.main else distributed.rank_generator(train_cfg.seed, group.rank, 0)
        self.images = 0  # training images seen, over every rank
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps (one D + one G update)
        self.batch_in_epoch = 0
        self.perm: torch.Tensor | None = None  # order of the epoch in progress
        self.best: dict | None = None  # {"epoch", "diversity_ratio"} of best.pt
        self.modes: dict | None = None  # the collapse watch's history of modes and colours (watch.follow_modes)

    # -- checkpoint -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": FORMAT,
            "package_version": package_version(),
            "torch_version": str(torch.__version__),  # TorchVersion would not load with weights_only
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg),
            "data": dict(self.data_info),
            "device": str(self.device),
            "amp_dtype": str(self.dtype).removeprefix("torch.") if self.dtype else None,
            "generator": self.G.state_dict(),
            **({"generator_ema": self.G_ema.state_dict()} if self.G_ema is not None else {}),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self.rng.get_state(),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "images": self.images,
            "world": self.group.world,
            "perm": self.perm,
            "best": self.best,
            "modes": self.modes,
        }

    @classmethod
    def from_state(
        cls,
        state: dict,
        device: torch.device,
        train_cfg: TrainConfig | None = None,
        group: distributed.Group = distributed.SINGLE,
    ) -> Trainer:
        """The trainer a loaded checkpoint (load_checkpoint) holds, to go on training on `group`'s ranks: a run
        resumes on any number of processes; where that number differs from the checkpoint's, the epoch in progress
        goes on from the same share of its order. Refused (CheckpointError) for one trained with settings this
        version no longer has, whose configs only stand in for them."""
        if settings := retired_settings(state):
            raise CheckpointError(f"the checkpoint was trained with settings this version no longer has ({settings})")
        cfg = train_cfg or TrainConfig.from_dict(state["train_config"])
        trainer = cls(ModelConfig.from_dict(state["model_config"]), cfg, device, state["data"], group=group)
        load_weights(trainer.G, state["generator"], "generator")
        if trainer.G_ema is not None:
            load_weights(trainer.G_ema, state["generator_ema"], "EMA generator")
        load_weights(trainer.D, state["discriminator"], "discriminator")
        for opt, key in ((trainer.opt_g, "opt_g"), (trainer.opt_d, "opt_d")):
            fused = opt.param_groups[0]["fused"]
            opt.load_state_dict(state[key])
            for options in opt.param_groups:  # a checkpoint's optimiser options would replace this version's kernel
                options["fused"], options["foreach"] = fused, None
        if state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        trainer.rng.set_state(state["rng"])
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        trainer.batch_in_epoch, trainer.perm = state["batch_in_epoch"], state["perm"]
        trainer.batch_in_epoch = trainer.batch_in_epoch * state.get("world", 1) // group.world
        trainer.images = state.get("images", state["step"] * cfg.batch_size)
        if not group.main:
            trainer.noise = distributed.rank_generator(cfg.seed, group.rank, trainer.step)
        trainer.best = state.get("best")
        trainer.modes = state.get("modes")
        return trainer

    # -- one optimiser step -----------------------------------------------------------------------
    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def train_step(self, real_u8: torch.Tensor) -> dict[str, float]:
        """One discriminator and one generator update on a uint8 batch (B, C, H, W) already on the device."""
        b = real_u8.shape[0]
        if self.model_cfg.generator == "palette":
            self.G.main.head.temperature = palette_temperature(self.images, self.cfg.palette_anneal)
        real = real_u8.float().div_(127.5).sub_(1.0)
        if self.cfg.flip:
            flip = (torch.rand(b, generator=self.noise) < 0.5).to(self.device)[:, None, None, None]
            real = torch.where(flip, real.flip(3), real)
        if self.cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = torch.randn(b, self.model_cfg.nz, generator=self.noise).to(self.device)

        def augment(x: torch.Tensor) -> torch.Tensor:  # the same policy for real and fake, in both steps
            return diff_augment(x, self.policy, self.noise) if self.policy else x

        # discriminator: score real sprites high and generated ones low
        with self.autocast():
            fake = self.G(z)
            real_in = augment(real)
            fake_in = augment(fake.detach())
            d_real, d_fake = self.D(real_in).float(), self.D(fake_in).float()
            loss_d = discriminator_loss(self.cfg.loss, d_real, d_fake)
        if self.cfg.loss == "wgan-gp":
            loss_d = loss_d + self.cfg.gp_weight * self.gradient_penalty(real_in, fake_in)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        distributed.average_gradients(self.group, self.D)
        self.scaler.step(self.opt_d)

        # generator: make the discriminator score its sprites as real
        with self.autocast():
            loss_g = generator_loss(self.cfg.loss, self.D(augment(fake)).float())
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        distributed.average_gradients(self.group, self.G)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        if self.G_ema is not None:
            with torch.no_grad():
                if self.fast:
                    torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - self.ema_beta)
                else:
                    for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                        p_ema.lerp_(p, 1.0 - self.ema_beta)
        return {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_x": d_real.mean().item(),  # mean raw scores: their gap is what every loss widens
            "d_g_z": d_fake.mean().item(),
        }

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP (Gulrajani et al. 2017): (|grad D| - 1)^2 at random points between real and fake sprites."""
        t = torch.rand(real.shape[0], 1, 1, 1, generator=self.noise).to(self.device)
        mixed = (real.detach() + t * (fake.detach() - real.detach())).requires_grad_(True)
        with self.autocast():
            score = self.D(mixed).float()
        (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
        return (grad.float().flatten(1).norm(dim=1) - 1).square().mean()

    @torch.no_grad()
    def refresh_ema_stats(self, samples: int = 512) -> None:
        """Give the EMA generator batch-norm statistics of its own weights (copying G's, which belong to other
        weights, gives faint smudges): the average over fixed latents, in train mode."""
        b = self.cfg.batch_size
        batches = (  # seeds from 10**6 on: not the grid's
            torch.from_numpy(latents(range(10**6 + i, 10**6 + min(i + b, samples)), self.model_cfg.nz)).to(self.device)
            for i in range(0, samples, b)
        )
        recompute_batch_norm(self.G_ema, batches)

    @torch.no_grad()
    def sample(self, seeds) -> np.ndarray:
        """Finished uint8 RGBA sprites (N, H, W, 4), as dcgan-sample delivers them (hard alpha), of the generator that
        gets exported (the EMA one, if any), in eval mode."""
        g = self.G_ema if self.G_ema is not None else self.G
        was_training = g.training
        g.eval()
        try:
            z = torch.from_numpy(latents(seeds, self.model_cfg.nz)).to(self.device)
            return finish_sprites(g(z).float().cpu().numpy())
        finally:
            g.train(was_training)


@dataclass
class FitResult:
    epoch: int
    step: int
    interrupted: bool
    checkpoint: Path
    collapsed: bool = False  # stopped by the collapse alarm (stop_on_collapse)
    best: dict | None = None


def fit(
    trainer: Trainer,
    data: SpriteSet,
    run_dir: Path,
    epochs: int,
    stop: threading.Event | None = None,
    echo=click.echo,
    show_progress: bool = True,
    stop_on_collapse: bool = False,
) -> FitResult:
    """Train until `epochs` epochs are complete or `stop` is set; checkpoint after every epoch and on stop.

    Every `sample_every` epochs the fixed seeds are sampled: a grid of the first 64, and the collapse watch
    over all of them, logged to metrics.jsonl. When the alarm trips it is reported; with `stop_on_collapse`
    training ends there, and best.pt keeps the most diverse checkpoint that did not trip it."""
    run_dir = Path(run_dir)
    group = trainer.group  # rank 0 alone writes: checkpoints, grids, metrics
    ckpt = run_dir / CHECKPOINT_NAME
    images = torch.from_numpy(data.images).to(trainer.device)
    trainer.G.train()
    trainer.D.train()
    watcher = None
    if group.main:
        (run_dir / GRIDS_DIR).mkdir(parents=True, exist_ok=True)
        watcher = watch.CollapseWatch.from_images(data.images)

    while trainer.epoch < epochs:
        label = f"epoch {trainer.epoch + 1}/{epochs}"
        record = train_epoch(trainer, images, label, stop, show_progress and group.main)
        if record is None:  # stopped mid-epoch: the checkpoint keeps the position in it
            if group.main:
                save_checkpoint(trainer.state_dict(), ckpt)
            return FitResult(trainer.epoch, trainer.step, True, ckpt)
        collapse = False
        if group.main:
            echo(f"{label}  {_describe(record, record['images_per_s'])}")
            sampled = trainer.epoch % trainer.cfg.sample_every == 0 or trainer.epoch == epochs
            collapse = end_epoch(trainer, record, run_dir, watcher if sampled else None, echo)
        if distributed.any_rank(group, collapse, trainer.device) and stop_on_collapse:
            return FitResult(trainer.epoch, trainer.step, True, ckpt, collapsed=True, best=trainer.best)
        if distributed.any_rank(group, stop is not None and stop.is_set(), trainer.device):
            return FitResult(trainer.epoch, trainer.step, True, ckpt, best=trainer.best)

    if group.main:
        animate(sorted((run_dir / GRIDS_DIR).glob("epoch*.png")), run_dir / "progress.gif")
    return FitResult(trainer.epoch, trainer.step, False, ckpt, best=trainer.best)


def train_epoch(
    trainer: Trainer, images: torch.Tensor, label: str, stop: threading.Event | None = None, show_progress: bool = True
) -> dict | None:
    """Train the rest of the epoch in progress (a new one, in a new order, when none is) on `images`, uint8 (N, C, H,
    W) on the trainer's device, and count it: its record (epoch, step, mean losses, images/s, seconds). None when
    `stop` is set first: the trainer then holds the position within the epoch, for a checkpoint to keep."""
    group = trainer.group
    n, b = len(images), trainer.cfg.batch_size
    steps_per_epoch = n // (b * group.world)  # the last partial batch is dropped: batch norm needs full batches
    if trainer.perm is None:  # rank 0 draws the epoch's order; every rank takes its own slice of each step's share
        perm = torch.randperm(n, generator=trainer.rng) if group.main else torch.empty(n, dtype=torch.long)
        trainer.perm = distributed.broadcast_tensor(group, perm.to(trainer.device)).cpu()
        trainer.batch_in_epoch = 0
    totals = dict.fromkeys(("loss_d", "loss_g", "d_x", "d_g_z"), 0.0)
    done, started = 0, time.perf_counter()
    with click.progressbar(
        length=steps_per_epoch - trainer.batch_in_epoch,
        label=label,
        hidden=not show_progress,
        item_show_func=lambda s: s,
    ) as bar:
        while trainer.batch_in_epoch < steps_per_epoch:
            start = (trainer.batch_in_epoch * group.world + group.rank) * b
            idx = trainer.perm[start : start + b].to(trainer.device)
            stats = trainer.train_step(images[idx])
            trainer.batch_in_epoch += 1
            trainer.step += 1
            trainer.images += b * group.world
            done += 1
            for k, v in stats.items():
                totals[k] += v
            rate = done * b / (time.perf_counter() - started)
            bar.update(1, _describe(stats, rate))
            if not all(np.isfinite(v) for v in stats.values()):
                raise FloatingPointError(f"non-finite loss at step {trainer.step}: {stats}")
            if distributed.any_rank(group, stop is not None and stop.is_set(), trainer.device):
                return None
    trainer.epoch += 1
    trainer.perm, trainer.batch_in_epoch = None, 0
    seconds = time.perf_counter() - started
    means = {k: v / max(done, 1) for k, v in totals.items()}
    return {"epoch": trainer.epoch, "step": trainer.step, **means, "images_per_s": done * b * group.world / seconds,
            "seconds": seconds}  # fmt: skip


def end_epoch(
    trainer: Trainer, record: dict, run_dir: Path, watcher: watch.CollapseWatch | None, echo=click.echo
) -> bool:
    """What ends an epoch: the EMA generator's batch-norm statistics refreshed; with a `watcher` (an epoch that
    samples), the grid, the collapse watch and the metrics line (`watch_epoch`); then the checkpoint and its links
    (`save_epoch`). Whether the collapse alarm tripped."""
    if trainer.G_ema is not None:
        trainer.refresh_ema_stats()
    collapse = watch_epoch(trainer, record, run_dir, watcher, echo) if watcher is not None else False
    save_epoch(trainer, run_dir)
    return collapse


def watch_epoch(trainer: Trainer, record: dict, run_dir: Path, watcher: watch.CollapseWatch, echo=click.echo) -> bool:
    """Sample the watch's fixed seeds: the grid of the first 64, the collapse watch over all of them, the epoch's
    record with the watch's reading appended to metrics.jsonl, and the alarm reported. Moves best to this epoch
    when its samples qualify (watch.better). Whether the alarm tripped."""
    samples = trainer.sample(watch.WATCH_SEEDS)
    save_atomic(sheet(samples[: len(GRID_SEEDS)], columns=8), run_dir / GRIDS_DIR / f"epoch{trainer.epoch:04d}.png")
    health = watcher.measure(samples)
    best_diversity = trainer.best["diversity_ratio"] if trainer.best else None
    trainer.modes = watch.follow_modes(trainer.modes, health, trainer.epoch)
    tripped = watch.alarms(health, best_diversity, trainer.epoch, trainer.modes)
    collapse = bool(tripped)
    since = {k: trainer.modes[k] for k in ("crowded_since", "one_colour_since")}
    line = {**record, **health, **since, "collapse": collapse}
    line["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    if collapse:
        msg = f"MODE COLLAPSE at epoch {trainer.epoch}: {watch.describe(health, trainer.modes, tripped)}"
        echo(click.style(msg, fg="red", bold=True))
    elif watch.better(health, trainer.modes, trainer.best):
        trainer.best = {"epoch": trainer.epoch, "diversity_ratio": health["diversity_ratio"]}
    return collapse


def save_epoch(trainer: Trainer, run_dir: Path) -> None:
    """The checkpoint, and its other names: best.pt when this epoch is the best, checkpoints/epochNNNN.pt on a
    --keep-every epoch."""
    ckpt = run_dir / CHECKPOINT_NAME
    save_checkpoint(trainer.state_dict(), ckpt)
    if trainer.best is not None and trainer.best["epoch"] == trainer.epoch:
        _link(ckpt, run_dir / BEST_NAME)
    if trainer.cfg.keep_every and trainer.epoch % trainer.cfg.keep_every == 0:
        (run_dir / KEPT_DIR).mkdir(exist_ok=True)
        _link(ckpt, run_dir / KEPT_DIR / f"epoch{trainer.epoch:04d}.pt")


def _link(src: Path, dest: Path) -> None:
    """dest becomes another name for src's current file (no copy: the next save of src is a new file)."""
    link_atomic(src, dest)


def _describe(stats: dict, rate: float) -> str:
    return (
        f"loss_D {stats['loss_d']:.3f}  loss_G {stats['loss_g']:.3f}  "
        f"D(x) {stats['d_x']:+.2f}  D(G(z)) {stats['d_g_z']:+.2f}  {rate:.0f} img/s"
    )
