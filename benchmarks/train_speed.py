"""Training throughput on this machine: fp32 vs bf16 autocast, channels-last off and on, side by side.

Rounds alternate between the configurations so drift on a shared machine hits them all alike; the table
shows medians and each row's speed relative to plain fp32.

    python benchmarks/train_speed.py                 # default width (ngf = ndf = 64), batch 64
    python benchmarks/train_speed.py --rounds 5 --steps 8
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import torch
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script

from dcgan.train.config import ModelConfig, TrainConfig
from dcgan.train.loop import Trainer, amp_dtype

CONFIGS = [  # (name, amp, channels_last)
    ("fp32", False, False),
    ("fp32 + channels-last", False, True),
    ("bf16 autocast", True, False),
    ("bf16 autocast + channels-last", True, True),
]


def images_per_s(trainer: Trainer, batch: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps * len(batch) / (time.perf_counter() - start)


@click.command(context_settings={"show_default": True})
@click.option("--width", type=click.IntRange(min=1), default=64, help="ngf = ndf")
@click.option("--batch-size", type=click.IntRange(min=2), default=64)
@click.option("--steps", type=click.IntRange(min=1), default=6, help="timed steps per round")
@click.option("--rounds", type=click.IntRange(min=1), default=3)
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "train_speed.md")
def main(width, batch_size, steps, rounds, out):
    model_cfg = ModelConfig(ngf=width, ndf=width)
    device = torch.device("cpu")
    data = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch_size, 4, 96, 96), dtype=np.uint8))
    trainers = {}
    for name, amp, cl in CONFIGS:
        if amp and amp_dtype(device, True) is None:
            click.echo(f"skipping {name}: this CPU has no native bf16")
            continue
        cfg = TrainConfig(batch_size=batch_size, amp=amp, channels_last=cl)
        trainers[name] = Trainer(model_cfg, cfg, device, data_info={})
        images_per_s(trainers[name], data, 2)  # warm-up: allocator, oneDNN kernel selection
    results = {name: [] for name in trainers}
    for r in range(rounds):
        for name, trainer in trainers.items():
            results[name].append(images_per_s(trainer, data, steps))
        click.echo(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in results.items()))

    base = statistics.median(results["fp32"])
    lines = [
        f"# Training speed, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
        f"width {width}, batch {batch_size}, 96x96x4; {rounds} alternating rounds of {steps} steps, medians.",
        "One image = one real and one fake sprite through D, plus the G update.",
        "",
        "| configuration | images/s | vs fp32 |",
        "|---|---:|---:|",
    ]
    default = TrainConfig()
    for name, amp, cl in CONFIGS:
        if name not in results:
            continue
        med = statistics.median(results[name])
        mark = " (dcgan-train's default)" if (amp, cl) == (default.amp, default.channels_last) else ""
        lines.append(f"| {name}{mark} | {med:.1f} | {med / base:.2f}x |")
    lines += [
        "",
        f"Reproduce: `python benchmarks/train_speed.py --width {width} --batch-size {batch_size} "
        f"--steps {steps} --rounds {rounds}`",
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
