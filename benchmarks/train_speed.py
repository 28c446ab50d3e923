"""Training throughput on this machine: fp32 vs bf16 autocast, channels-last off and on, and the step of earlier
versions (per-tensor Adam and EMA updates) against today's (fused Adam, one EMA kernel), side by side.

Rounds alternate between the configurations so drift on a shared machine hits them all alike; the table
shows medians and each row's speed relative to plain fp32. The model and batch are dcgan-train's defaults unless
given. bf16 pays only where the CPU computes it natively (AVX-512 BF16 or AMX): the header names the CPU's features,
and elsewhere the bf16 rows are skipped, as dcgan-train skips bf16 there, unless --emulated-bf16 asks to time them.

    python benchmarks/train_speed.py                 # dcgan-train's model and batch
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

from dcgan.train.config import GENERATORS, ModelConfig, TrainConfig
from dcgan.train.loop import Trainer, amp_dtype, cpu_has_native_bf16

CONFIGS = [  # (name, amp, channels_last, fast)
    ("fp32", False, False, True),
    ("fp32 + channels-last", False, True, True),
    ("bf16 autocast", True, False, True),
    ("bf16 autocast + channels-last", True, True, True),
    ("fp32 + channels-last, earlier step", False, True, False),
    ("bf16 autocast + channels-last, earlier step", True, True, False),
]


def cpu_features() -> str:
    """The CPU features that decide training speed here, as /proc/cpuinfo lists them."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted)


def images_per_s(trainer: Trainer, batch: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps * len(batch) / (time.perf_counter() - start)


@click.command(context_settings={"show_default": True})
@click.option("--generator", type=click.Choice(GENERATORS), default=ModelConfig().generator)
@click.option("--ngf", type=click.IntRange(min=1), default=ModelConfig().ngf, help="generator width")
@click.option("--ndf", type=click.IntRange(min=1), default=ModelConfig().ndf, help="discriminator width")
@click.option("--batch-size", type=click.IntRange(min=2), default=TrainConfig().batch_size)
@click.option("--emulated-bf16", is_flag=True, help="time bf16 autocast even on a CPU without native bf16")
@click.option("--steps", type=click.IntRange(min=1), default=6, help="timed steps per round")
@click.option("--rounds", type=click.IntRange(min=1), default=3)
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "train_speed.md")
def main(generator, ngf, ndf, batch_size, emulated_bf16, steps, rounds, out):
    model_cfg = ModelConfig(ngf=ngf, ndf=ndf, generator=generator)
    device = torch.device("cpu")
    data = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch_size, 4, 96, 96), dtype=np.uint8))
    trainers = {}
    for name, amp, cl, fast in CONFIGS:
        if amp and amp_dtype(device, True) is None and not emulated_bf16:
            click.echo(f"skipping {name}: this CPU has no native bf16 (--emulated-bf16 times it anyway)")
            continue
        cfg = TrainConfig(batch_size=batch_size, amp=amp, channels_last=cl)
        trainers[name] = Trainer(model_cfg, cfg, device, data_info={}, fast=fast)
        if amp:
            trainers[name].dtype = torch.bfloat16  # what amp_dtype would refuse without native bf16
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
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, features {cpu_features()} (native bf16: "
        f"{'yes' if cpu_has_native_bf16() else 'no'}); torch {torch.__version__}; {generator} generator, "
        f"ngf {ngf}, ndf {ndf}, batch {batch_size}, 96x96x4; {rounds} alternating rounds of {steps} steps, medians.",
        "One image = one real and one fake sprite through D, plus the G update.",
        "",
        "| configuration | images/s | vs fp32 |",
        "|---|---:|---:|",
    ]
    default = TrainConfig()
    chosen_amp = default.amp and cpu_has_native_bf16() and "bf16 autocast + channels-last" in results
    for name, amp, cl, fast in CONFIGS:
        if name not in results:
            continue
        med = statistics.median(results[name])
        chosen = amp == (default.amp and cpu_has_native_bf16()) and cl == default.channels_last and fast
        mark = " (what dcgan-train uses here)" if chosen else ""
        lines.append(f"| {name}{mark} | {med:.1f} | {med / base:.2f}x |")
    now = "bf16 autocast + channels-last" if chosen_amp else "fp32 + channels-last"
    gain = statistics.median(results[now]) / statistics.median(results[now + ", earlier step"])
    lines += ["", f"dcgan-train's step against the earlier one, same recipe: {gain:.2f}x the images/s."]
    lines += [
        "",
        f"Reproduce: `python benchmarks/train_speed.py --generator {generator} --ngf {ngf} --ndf {ndf} "
        f"--batch-size {batch_size} --steps {steps} --rounds {rounds}{' --emulated-bf16' if emulated_bf16 else ''}`",
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
