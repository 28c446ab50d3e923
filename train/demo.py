"""A checkpoint without training one: random weights, batch norm calibrated so outputs use [-1, 1].

For tests and benchmarks that need a realistic model file (piper's generated test voice is the model). A
freshly initialised generator in eval mode outputs values within 1e-3 of 0, since its running batch-norm
statistics still hold their initial values; on those, every parity tolerance passes trivially.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dcgan.serve.latent import latents

from .checkpoint import save_checkpoint
from .config import ModelConfig, TrainConfig
from .loop import Trainer
from .model import Generator, PaletteGenerator, recompute_batch_norm


def output_layer(generator: Generator) -> nn.Module:
    """The layer that draws the sprite from the last features: the convolution whose output tanh squashes (paper:
    the last transposed convolution; resize: the stride-1 convolution after the last stage), or, in the palette
    generator, which has no output convolution, the one that scores each pixel's palette entries."""
    if isinstance(generator.main, PaletteGenerator):
        return generator.main.head.choose
    return generator.main[-2]  # main[-1] is the tanh


@torch.no_grad()
def calibrate(generator: Generator, nz: int, samples: int = 256) -> Generator:
    """Set every batch norm's running statistics to those of `samples` latents, and scale the output layer
    (`output_layer`) to unit-variance outputs: tanh's inputs, like a trained model's, or the palette's scores
    (which entry wins does not change with their scale; how soft the training softmax is does). No batch norm
    follows that layer, so the statistics stay true. Returns the generator in eval mode."""
    last = output_layer(generator)
    seen = []
    hook = last.register_forward_hook(lambda _m, _i, out: seen.append(out.std()))
    recompute_batch_norm(generator, [torch.from_numpy(latents(range(samples), nz))])
    hook.remove()
    last.weight.div_(seen[0])
    return generator


def demo_checkpoint(path: Path, model_cfg: ModelConfig | None = None, seed: int = 0) -> Path:
    """Write a checkpoint of a calibrated random generator to `path` (same format as training writes)."""
    model_cfg = model_cfg or ModelConfig()
    trainer = Trainer(
        model_cfg, TrainConfig(seed=seed, amp=False), torch.device("cpu"), {"path": "", "fingerprint": "demo"}
    )
    calibrate(trainer.G_ema if trainer.G_ema is not None else trainer.G, model_cfg.nz)  # the one exported
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(trainer.state_dict(), path)
    return path
