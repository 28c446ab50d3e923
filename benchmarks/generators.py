"""Every generator side by side on this machine: sampling speed end to end, and training speed per epoch.

    python benchmarks/generators.py                                   # paper:54 resize:16 palette:16
    python benchmarks/generators.py --models paper:54,palette:16,palette:20 --rounds 5

Each model is a calibrated random generator of that kind and width (speed does not depend on the weights), exported
as dcgan-export exports it. Rounds alternate between the models so drift on a shared machine hits them all alike;
the table shows medians, and each row's rate against the first model's, measured in the same run:
- `dcgan-sample -n N` end to end (rgba8 file, PNGs written), the rate issue-level targets are set on;
- onnxruntime's raw rate on the rgba8 file at batch 64;
- a training step of dcgan-train's recipe (batch 32, the default discriminator, bf16 autocast where the CPU has
  native bf16), as images/s and seconds per epoch of 921 sprites.
"""

from __future__ import annotations

import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import onnxruntime as ort
import torch
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script
from sample_speed import end_to_end, rate
from train_speed import cpu_features, images_per_s

from dcgan.export import formats as F
from dcgan.export.demo import demo_checkpoint
from dcgan.export.exporter import export_checkpoint
from dcgan.serve.latent import latents
from dcgan.train.config import GENERATORS, ModelConfig, TrainConfig
from dcgan.train.loop import Trainer
from dcgan.train.model import Generator, generator_flops

EPOCH = 921  # sprites in the shared training set


def parse_models(text: str) -> list[tuple[str, int]]:
    models = []
    for part in text.split(","):
        kind, _, width = part.strip().partition(":")
        if kind not in GENERATORS or not width.isdigit() or int(width) < 1:
            raise click.BadParameter(f"{part!r} is not KIND:WIDTH with KIND one of {', '.join(GENERATORS)}")
        models.append((kind, int(width)))
    return models


@click.command(context_settings={"show_default": True})
@click.option("--models", default="paper:54,resize:16,palette:16", help="KIND:WIDTH,...; the first is the yardstick")
@click.option("--sprites", type=click.IntRange(min=64), default=2048, help="sprites per dcgan-sample run")
@click.option("--steps", type=click.IntRange(min=1), default=4, help="timed training steps per round")
@click.option("--rounds", type=click.IntRange(min=1), default=3)
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "generators.md")
def main(models, sprites, steps, rounds, out):
    specs = parse_models(models)
    work = Path(tempfile.mkdtemp(prefix="generators-"))
    exports, trainers = {}, {}
    data = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (32, 4, 96, 96), dtype=np.uint8))
    for kind, width in specs:
        cfg = ModelConfig(ngf=width, generator=kind)
        name = f"{kind}:{width}"
        ckpt = demo_checkpoint(work / name.replace(":", "-") / "checkpoint.pt", cfg)
        exports[name] = work / name.replace(":", "-") / "export"
        export_checkpoint(ckpt, exports[name], [F.FORMATS["rgba8"]], log=lambda _m: None)
        trainers[name] = Trainer(cfg, TrainConfig(), torch.device("cpu"), data_info={})
        images_per_s(trainers[name], data, 2)  # warm-up
    sessions = {
        name: ort.InferenceSession(str(path / F.FILES["rgba8"]), providers=["CPUExecutionProvider"])
        for name, path in exports.items()
    }
    z = latents(range(64), ModelConfig().nz)
    results = {name: {"e2e": [], "raw": [], "train": []} for name in exports}
    for r in range(rounds):
        for name in exports:
            session = sessions[name]
            results[name]["raw"].append(rate(lambda b, s=session: s.run(None, {"z": b}), z, 256))
            results[name]["e2e"].append(end_to_end(exports[name], sprites, work / "out"))
            results[name]["train"].append(images_per_s(trainers[name], data, steps))
        click.echo(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v['e2e'][-1]:.0f}" for n, v in results.items()))

    med = {name: {k: statistics.median(v) for k, v in row.items()} for name, row in results.items()}
    first = next(iter(med))
    lines = [
        f"# Generators side by side, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, features {cpu_features()}; onnxruntime "
        f"{ort.__version__}, torch {torch.__version__}; calibrated random weights; {rounds} alternating rounds, "
        "medians. Sampling: `dcgan-sample -n "
        f"{sprites}` (rgba8, PNGs written) and onnxruntime on the rgba8 file at batch 64. Training: a step of "
        f"dcgan-train's recipe (batch 32, ndf 64, {'bf16' if trainers[first].dtype == torch.bfloat16 else 'fp32'}), "
        f"an epoch being {EPOCH} sprites.",
        "",
        "| generator | GFLOP a sprite | parameters | dcgan-sample sprites/s | vs first | ORT rgba8 b64 sprites/s "
        "| training images/s | s per epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (kind, width), (name, m) in zip(specs, med.items(), strict=True):
        cfg = ModelConfig(ngf=width, generator=kind)
        params = sum(p.numel() for p in Generator(cfg).parameters())
        lines.append(
            f"| {name} | {generator_flops(cfg) / 1e9:.3f} | {params / 1e6:.2f} M | {m['e2e']:.0f} | "
            f"{m['e2e'] / med[first]['e2e']:.2f}x | {m['raw']:.0f} | {m['train']:.1f} | {EPOCH / m['train']:.0f} |"
        )
    lines += [
        "",
        f"Reproduce: `python benchmarks/generators.py --models {models} --sprites {sprites} --steps {steps} "
        f"--rounds {rounds}`",
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
