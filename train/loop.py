"""The training loop: DCGAN with the hinge, non-saturating BCE or WGAN-GP loss, resumable to the step.

Every random draw of training (epoch order, flips, noise) comes from one CPU torch.Generator whose state the
checkpoint carries, together with the epoch's order and the position in it, so a run that is interrupted
and resumed ends with the same weights as one that never stopped (on the CPU).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
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

from dcgan.serve.images import animate, save_atomic, sheet
from dcgan.serve.latent import latents

from . import watch
from .augment import ada_adjust, ada_geometric, diff_augment, parse_policy
from .checkpoint import CHECKPOINT_NAME, FORMAT, load_weights, package_version, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import SpriteSet
from .model import build_models, even_upsampling_phases, recompute_batch_norm

GRID_SEEDS = range(64)  # the fixed creatures every grid shows, through the shared latent convention
KEPT_DIR = "checkpoints"  # every --keep-every epochs' checkpoint, as epochNNNN.pt
BEST_NAME = "best.pt"  # the checkpoint with the most diverse samples that did not trip the collapse alarm
LECAM_DECAY = 0.99  # per step, of the LeCam anchors (Tseng et al. 2021's value)
REPLAY_SIZE = 512  # generated sprites kept for --replay, as uint8 like the real ones: 19 MB in the checkpoint


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


def discriminator_loss(
    loss: str, d_real: torch.Tensor, d_fake: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Discriminator loss on raw scores (logits) of real and generated sprites; lower is better for D.
    `label_smoothing` (bce only): real sprites' target is 1 - label_smoothing instead of 1 (one-sided)."""
    if loss == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if loss == "bce":
        real_target = torch.full_like(d_real, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(d_real, real_target) + F.binary_cross_entropy_with_logits(
            d_fake, torch.zeros_like(d_fake)
        )
    if loss == "wgan-gp":  # the critic's Wasserstein estimate, negated; the penalty is added by the caller
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown loss {loss!r}")


def lecam_penalty(d_real: torch.Tensor, d_fake: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """LeCam regularisation (Tseng et al. 2021) on raw scores: real scores above the moving average of fake scores,
    and fake scores below that of real ones, squared. anchors: (real average, fake average)."""
    real_anchor, fake_anchor = anchors
    return F.relu(d_real - fake_anchor).square().mean() + F.relu(real_anchor - d_fake).square().mean()


def generator_loss(loss: str, d_gen: torch.Tensor) -> torch.Tensor:
    """Generator loss on the discriminator's raw scores of generated sprites."""
    if loss == "bce":  # the non-saturating loss: fake -> 1
        return F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    if loss in ("hinge", "wgan-gp"):
        return -d_gen.mean()
    raise ValueError(f"unknown loss {loss!r}")


def to_levels(images: torch.Tensor) -> torch.Tensor:
    """Generator output (B, C, H, W) in [-1, 1] -> uint8 levels (B, C, H, W), as real sprites are stored."""
    return ((images.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C)."""
    return to_levels(images).permute(0, 2, 3, 1).cpu().numpy()


class Trainer:
    """Models, optimisers and the position in training; `state_dict` is the whole checkpoint."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device, data_info: dict):
        self.model_cfg, self.cfg, self.device, self.data_info = model_cfg, train_cfg, device, data_info
        torch.manual_seed(train_cfg.seed)  # weight init
        self.G, self.D = build_models(model_cfg, train_cfg.g_init)
        if train_cfg.even_upsampling:
            even_upsampling_phases(self.G)  # before the EMA copy, so that it starts even too
        memory_format = torch.channels_last if train_cfg.channels_last else torch.preserve_format
        self.G.to(device, memory_format=memory_format)
        self.D.to(device, memory_format=memory_format)
        self.policy = parse_policy(train_cfg.diffaugment)
        # the EMA generator averages G's weights; its batch-norm statistics are its own (refresh_ema_stats)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if train_cfg.ema_half_life > 0 else None
        self.ema_beta = 0.5 ** (train_cfg.batch_size / train_cfg.ema_half_life) if self.G_ema is not None else 0.0
        betas = (train_cfg.beta1, train_cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train_cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train_cfg.lr_d or train_cfg.lr, betas=betas)
        self.dtype = amp_dtype(device, train_cfg.amp)
        # loss scaling is only needed for fp16; bf16 has fp32's range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.rng = torch.Generator().manual_seed(train_cfg.seed)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps (one D + one G update)
        self.batch_in_epoch = 0
        self.perm: torch.Tensor | None = None  # order of the epoch in progress
        self.best: dict | None = None  # {"epoch", "diversity_ratio"} of best.pt
        self.modes: dict | None = None  # the collapse watch's history of modes and colours (watch.follow_modes)
        self.lecam_anchors: torch.Tensor | None = None  # moving averages of D's mean (real, fake) scores
        self.ada_p = 0.0  # the adaptive augmentation's probability (cfg.ada_target)
        self.replay_buffer: torch.Tensor | None = None  # uint8 (N, C, H, W) sprites of earlier steps (cfg.replay)

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
            "perm": self.perm,
            "best": self.best,
            "modes": self.modes,
            "lecam_anchors": None if self.lecam_anchors is None else self.lecam_anchors.cpu(),
            "ada_p": self.ada_p,
            "replay_buffer": None if self.replay_buffer is None else self.replay_buffer.cpu(),
        }

    @classmethod
    def from_state(cls, state: dict, device: torch.device, train_cfg: TrainConfig | None = None) -> Trainer:
        cfg = train_cfg or TrainConfig.from_dict(state["train_config"])
        trainer = cls(ModelConfig.from_dict(state["model_config"]), cfg, device, state["data"])
        load_weights(trainer.G, state["generator"], "generator")
        if trainer.G_ema is not None:
            load_weights(trainer.G_ema, state["generator_ema"], "EMA generator")
        load_weights(trainer.D, state["discriminator"], "discriminator")
        trainer.opt_g.load_state_dict(state["opt_g"])
        trainer.opt_d.load_state_dict(state["opt_d"])
        if state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        trainer.rng.set_state(state["rng"])
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        trainer.batch_in_epoch, trainer.perm = state["batch_in_epoch"], state["perm"]
        trainer.best = state.get("best")
        trainer.modes = state.get("modes")
        anchors = state.get("lecam_anchors")
        trainer.lecam_anchors = None if anchors is None else anchors.to(device)
        trainer.ada_p = state.get("ada_p", 0.0)
        kept = state.get("replay_buffer")
        trainer.replay_buffer = None if kept is None else kept.to(device)
        return trainer

    # -- one optimiser step -----------------------------------------------------------------------
    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def train_step(self, real_u8: torch.Tensor) -> dict[str, float]:
        """One discriminator and one generator update on a uint8 batch (B, C, H, W) already on the device."""
        b = real_u8.shape[0]
        real = real_u8.float().div_(127.5).sub_(1.0)
        if self.cfg.flip:
            flip = (torch.rand(b, generator=self.rng) < 0.5).to(self.device)[:, None, None, None]
            real = torch.where(flip, real.flip(3), real)
        if self.cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = torch.randn(b, self.model_cfg.nz, generator=self.rng).to(self.device)

        # this step's augmentation probability and instance noise, for real and fake alike
        ada_p, sigma = self.ada_p, self.instance_noise_sigma()

        def augment(x: torch.Tensor) -> torch.Tensor:  # the same policy for real and fake, in both steps
            x = ada_geometric(x, ada_p, self.rng)
            x = diff_augment(x, self.policy, self.rng) if self.policy else x
            if sigma:
                x = x + sigma * torch.randn(x.shape, generator=self.rng).to(x.device, x.dtype)
            return x

        # discriminator: score real sprites high and generated ones low
        with self.autocast():
            fake = self.G(z)
            real_in = augment(real)
            if self.cfg.r1:
                real_in = real_in.detach().requires_grad_(True)
            fake_in = augment(self.replayed(fake.detach()))
            d_real, d_fake = self.score(real_in, fake_in)
            loss_d = discriminator_loss(self.cfg.loss, d_real, d_fake, self.cfg.label_smoothing)
        if self.cfg.loss == "wgan-gp":
            loss_d = loss_d + self.cfg.gp_weight * self.gradient_penalty(real_in, fake_in)
        if self.cfg.r1:
            (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
            loss_d = loss_d + self.cfg.r1 / 2 * grad.float().flatten(1).square().sum(dim=1).mean()
        if self.cfg.lecam:
            means = torch.stack([d_real.detach().mean(), d_fake.detach().mean()])
            # the first step starts the averages at its own means: no bias towards an arbitrary start
            self.lecam_anchors = (
                means if self.lecam_anchors is None else self.lecam_anchors.lerp(means, 1 - LECAM_DECAY)
            )
            loss_d = loss_d + self.cfg.lecam * lecam_penalty(d_real, d_fake, self.lecam_anchors)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        # generator: make the discriminator score its sprites as real
        with self.autocast():
            # with a joint batch, the generated sprites are scored beside the same real ones as in D's step
            beside = (real_in.detach(),) if self.cfg.d_joint_batch else ()
            d_gen = self.score(*beside, augment(fake))[-1]
            loss_g = generator_loss(self.cfg.loss, d_gen)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        if self.cfg.even_upsampling:
            even_upsampling_phases(self.G)
        if self.G_ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                    p_ema.lerp_(p, 1.0 - self.ema_beta)
        stats = {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_x": d_real.mean().item(),  # mean raw scores: their gap is what every loss widens
            "d_g_z": d_fake.mean().item(),
        }
        if self.cfg.instance_noise:
            stats["noise"] = sigma
        if self.cfg.ada_target:
            stats["ada_r"] = torch.sign(d_real.detach()).mean().item()  # the overfitting heuristic
            stats["ada_p"] = ada_p
            self.ada_p = ada_adjust(ada_p, stats["ada_r"], self.cfg.ada_target, b)
        return stats

    def instance_noise_sigma(self) -> float:
        """The standard deviation of the instance noise in the coming step: cfg.instance_noise, falling linearly
        with the steps taken to 0 at cfg.instance_noise_epochs epochs (of full batches) of the run's data."""
        if not self.cfg.instance_noise:
            return 0.0
        steps = self.cfg.instance_noise_epochs * max(self.data_info["count"] // self.cfg.batch_size, 1)
        return self.cfg.instance_noise * max(0.0, 1.0 - self.step / steps)

    def replayed(self, fake: torch.Tensor) -> torch.Tensor:
        """The generated batch D scores: with cfg.replay, its last round(replay * B) sprites swapped for sprites
        drawn from the buffer of earlier steps, whose places the swapped-out ones take. The buffer first fills
        with whole batches, until REPLAY_SIZE; until then D sees this step's sprites only."""
        if not self.cfg.replay:
            return fake
        levels = to_levels(fake).contiguous()
        if self.replay_buffer is None or len(self.replay_buffer) < REPLAY_SIZE:
            kept = () if self.replay_buffer is None else (self.replay_buffer,)
            self.replay_buffer = torch.cat([*kept, levels])[:REPLAY_SIZE]
            return fake
        keep = len(fake) - round(self.cfg.replay * len(fake))
        slots = torch.randperm(REPLAY_SIZE, generator=self.rng)[: len(fake) - keep].to(self.device)
        old = self.replay_buffer[slots].to(fake.dtype).div_(127.5).sub_(1.0)
        self.replay_buffer[slots] = levels[keep:]
        mixed = torch.cat([fake[:keep], old])
        return mixed.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else mixed

    def score(self, *batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D's raw scores (float32) of each batch: one forward pass over all of them with `d_joint_batch`, else
        one pass per batch, each normalised by its own batch statistics."""
        if self.cfg.d_joint_batch:
            return self.D(torch.cat(batches)).float().split([len(x) for x in batches])
        return tuple(self.D(x).float() for x in batches)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP (Gulrajani et al. 2017): (|grad D| - 1)^2 at random points between real and fake sprites."""
        t = torch.rand(real.shape[0], 1, 1, 1, generator=self.rng).to(self.device)
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
        """uint8 RGBA (N, H, W, 4) of the generator that gets exported (the EMA one, if any), in eval mode."""
        g = self.G_ema if self.G_ema is not None else self.G
        was_training = g.training
        g.eval()
        try:
            z = torch.from_numpy(latents(seeds, self.model_cfg.nz)).to(self.device)
            return to_uint8(g(z))
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
    grids = run_dir / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CHECKPOINT_NAME
    images = torch.from_numpy(data.images).to(trainer.device)
    n, b = len(images), trainer.cfg.batch_size
    steps_per_epoch = n // b  # the last partial batch is dropped: batch norm needs full batches
    trainer.G.train()
    trainer.D.train()
    watcher = watch.CollapseWatch.from_images(data.images)

    while trainer.epoch < epochs:
        if trainer.perm is None:
            trainer.perm = torch.randperm(n, generator=trainer.rng)
            trainer.batch_in_epoch = 0
        epoch = trainer.epoch + 1
        totals = dict.fromkeys(("loss_d", "loss_g", "d_x", "d_g_z"), 0.0)  # and ADA's and the instance noise's, when on
        done, started = 0, time.perf_counter()
        label = f"epoch {epoch}/{epochs}"
        with click.progressbar(
            length=steps_per_epoch - trainer.batch_in_epoch,
            label=label,
            hidden=not show_progress,
            item_show_func=lambda s: s,
        ) as bar:
            while trainer.batch_in_epoch < steps_per_epoch:
                i = trainer.batch_in_epoch
                idx = trainer.perm[i * b : (i + 1) * b].to(trainer.device)
                stats = trainer.train_step(images[idx])
                trainer.batch_in_epoch += 1
                trainer.step += 1
                done += 1
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + v
                rate = done * b / (time.perf_counter() - started)
                bar.update(1, _describe(stats, rate))
                if not all(np.isfinite(v) for v in stats.values()):
                    raise FloatingPointError(f"non-finite loss at step {trainer.step}: {stats}")
                if stop is not None and stop.is_set():
                    save_checkpoint(trainer.state_dict(), ckpt)
                    return FitResult(trainer.epoch, trainer.step, True, ckpt)
        trainer.epoch += 1
        trainer.perm, trainer.batch_in_epoch = None, 0
        seconds = time.perf_counter() - started
        means = {k: v / max(done, 1) for k, v in totals.items()}
        record = {
            "epoch": trainer.epoch,
            "step": trainer.step,
            **means,
            "images_per_s": done * b / seconds,
            "seconds": seconds,
        }
        echo(f"{label}  {_describe(means, record['images_per_s'])}")
        collapse = False
        if trainer.G_ema is not None:
            trainer.refresh_ema_stats()
        if trainer.epoch % trainer.cfg.sample_every == 0 or trainer.epoch == epochs:
            samples = trainer.sample(watch.WATCH_SEEDS)
            save_atomic(sheet(samples[: len(GRID_SEEDS)], columns=8), grids / f"epoch{trainer.epoch:04d}.png")
            health = watcher.measure(samples)
            best_diversity = trainer.best["diversity_ratio"] if trainer.best else None
            trainer.modes = watch.follow_modes(trainer.modes, health, trainer.epoch)
            tripped = watch.alarms(health, best_diversity, trainer.epoch, trainer.modes)
            collapse = bool(tripped)
            since = {k: trainer.modes[k] for k in ("crowded_since", "one_colour_since")}
            record.update(health, **since, collapse=collapse)
            record["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if collapse:
                msg = f"MODE COLLAPSE at epoch {trainer.epoch}: {watch.describe(health, trainer.modes, tripped)}"
                echo(click.style(msg, fg="red", bold=True))
            elif watch.better(health, trainer.modes, trainer.best):
                trainer.best = {"epoch": trainer.epoch, "diversity_ratio": health["diversity_ratio"]}
        save_checkpoint(trainer.state_dict(), ckpt)
        if trainer.best is not None and trainer.best["epoch"] == trainer.epoch:
            _link(ckpt, run_dir / BEST_NAME)
        if trainer.cfg.keep_every and trainer.epoch % trainer.cfg.keep_every == 0:
            (run_dir / KEPT_DIR).mkdir(exist_ok=True)
            _link(ckpt, run_dir / KEPT_DIR / f"epoch{trainer.epoch:04d}.pt")
        if collapse and stop_on_collapse:
            return FitResult(trainer.epoch, trainer.step, True, ckpt, collapsed=True, best=trainer.best)
        if stop is not None and stop.is_set():
            return FitResult(trainer.epoch, trainer.step, True, ckpt, best=trainer.best)

    animate(sorted(grids.glob("epoch*.png")), run_dir / "progress.gif")
    return FitResult(trainer.epoch, trainer.step, False, ckpt, best=trainer.best)


def _link(src: Path, dest: Path) -> None:
    """dest becomes another name for src's current file (no copy: the next save of src is a new file)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _describe(stats: dict, rate: float) -> str:
    ada = f"  ADA p {stats['ada_p']:.2f}" if "ada_p" in stats else ""
    noise = f"  noise {stats['noise']:.3f}" if "noise" in stats else ""
    return (
        f"loss_D {stats['loss_d']:.3f}  loss_G {stats['loss_g']:.3f}  "
        f"D(x) {stats['d_x']:+.2f}  D(G(z)) {stats['d_g_z']:+.2f}{ada}{noise}  {rate:.0f} img/s"
    )
