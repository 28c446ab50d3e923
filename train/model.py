"""The DCGAN generator and discriminator, following Radford et al. (2016) at 96x96 RGBA.

Strided (transposed) convolutions only, no pooling, no dense layers; batch norm everywhere except the
generator's output and the discriminator's input; ReLU + tanh in the generator; LeakyReLU(0.2) in the
discriminator, which returns logits (scores, for the Wasserstein loss too). The discriminator's batch norm can be
left out for WGAN-GP (`ModelConfig.d_norm`); the shipped recipe keeps the paper's batch norm. The spatial path is
1 -> 6 -> 12 -> 24 -> 48 -> 96: one 6x6 projection then a doubling per stage, so 96 px comes out natively.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import BASE_SIZE, ModelConfig


class Generator(nn.Module):
    """z (B, nz) or (B, nz, 1, 1) -> image (B, channels, size, size) in [-1, 1]; `cfg.generator` chooses how it
    upsamples (paper_layers, resize_layers)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.generator == "paper":
            self.main = nn.Sequential(*paper_layers(cfg))
        elif cfg.generator == "resize":
            self.main = nn.Sequential(*resize_layers(cfg))
        else:
            self.main = PaletteGenerator(cfg)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.main(z)


def projection(nz: int, width: int) -> list[nn.Module]:
    """z -> the first feature map, width x 6 x 6: a transposed convolution over a 1x1 input, batch norm, ReLU."""
    return [nn.ConvTranspose2d(nz, width, BASE_SIZE, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]


def resize_stage(w_in: int, w_out: int) -> list[nn.Module]:
    """One resize-convolution stage: nearest x2, a stride-1 3x3 convolution, batch norm, ReLU."""
    return [
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(w_in, w_out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(w_out),
        nn.ReLU(True),
    ]


def paper_layers(cfg: ModelConfig) -> list[nn.Module]:
    """The DCGAN paper's generator: transposed convolutions, 4x4 with stride 2 after the projection."""
    width = cfg.ngf * 2 ** (cfg.stages - 1)  # 512 at ngf=64, 96 px
    layers = projection(cfg.nz, width)  # (ngf*8) x 6 x 6 at 96 px
    # each stage doubles the side and halves the width:
    # (ngf*4) x 12 x 12 -> (ngf*2) x 24 x 24 -> ngf x 48 x 48
    for _ in range(cfg.stages - 1):
        layers += [
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(True),
        ]
        width //= 2
    # channels x 96 x 96; no batch norm on the output layer
    return layers + [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]


def resize_layers(cfg: ModelConfig) -> list[nn.Module]:
    """Resize-convolution upsampling (Odena et al. 2016): every stage resizes by nearest neighbour, then a stride-1
    3x3 convolution, so each output pixel sees the kernel as its neighbours do; a stride-1 3x3 convolution draws
    the sprite. Still the paper's DCGAN otherwise: all convolutional, batch norm, ReLU, tanh."""
    width = cfg.ngf * 2**cfg.stages  # 256 at ngf=16, 96 px
    layers = projection(cfg.nz, width)  # (ngf*16) x 6 x 6 at 96 px
    # (ngf*8) x 12 x 12 -> (ngf*4) x 24 x 24 -> (ngf*2) x 48 x 48 -> ngf x 96 x 96
    for _ in range(cfg.stages):
        layers += resize_stage(width, width // 2)
        width //= 2
    # channels x 96 x 96; no batch norm on the output layer
    return layers + [nn.Conv2d(width, cfg.channels, 3, 1, 1, bias=False), nn.Tanh()]


PALETTE_SIZE = 16  # opaque colours a "palette" sprite is drawn in, besides transparency (real sprites: 13 at 4 bits)
TEMPERATURE_END = 0.05  # the palette softmax's temperature once annealed: nearly the hard choice


class PaletteGenerator(nn.Module):
    """The resize generator drawing like an indexed-colour sprite: instead of a convolution and tanh, each pixel
    takes one of PALETTE_SIZE colours that the sprite chooses from its 6x6 map, or transparency (PaletteHead)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers = resize_layers(cfg)[:-2]  # the resize generator without its output convolution and tanh
        self.project = nn.Sequential(*layers[:3])  # (ngf*16) x 6 x 6
        self.stages = nn.Sequential(*layers[3:])  # ngf x 96 x 96
        self.head = PaletteHead(cfg.ngf, cfg.ngf * 2**cfg.stages, PALETTE_SIZE)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        coarse = self.project(z)
        return self.head(self.stages(coarse), coarse)


class PaletteHead(nn.Module):
    """Final features -> RGBA drawn from a per-sprite palette, as an indexed-colour sprite is drawn.

    The sprite's `size` opaque colours come from the mean of its 6x6 map (a linear layer, tanh); a 3x3 convolution
    scores them and transparency at each pixel. Training mixes the entries by a softmax of the scores divided by
    `temperature`, which the trainer anneals from 1 towards TEMPERATURE_END, so the mix hardens into a choice while
    the gradient still flows; in eval mode (grids, export, sampling) each pixel takes the highest-scoring entry, so
    every pixel is exactly one of the sprite's colours or transparent (-1 on all four channels, as sprites load)."""

    def __init__(self, width: int, coarse: int, size: int):
        super().__init__()
        self.size = size
        self.temperature = 1.0  # set by the trainer at each step; not a weight, not in the state dict
        self.colours = nn.Linear(coarse, 3 * size)
        self.choose = nn.Conv2d(width, size + 1, 3, 1, 1, bias=False)  # entry 0: transparent

    def forward(self, features: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        rgb = torch.tanh(self.colours(coarse.mean(dim=(2, 3)))).reshape(n, 3, self.size)  # in [-1, 1]
        # (B, 4, 1 + size): entry 0 transparent, then the opaque colours
        opaque = torch.cat([rgb, torch.ones_like(rgb[:, :1])], dim=1)
        entries = torch.cat([torch.full_like(opaque[:, :, :1], -1.0), opaque], dim=2)
        scores = self.choose(features).flatten(2)  # (B, 1 + size, H*W)
        if self.training:
            weights = (scores.float() / self.temperature).softmax(1).to(entries.dtype)
            return torch.bmm(entries, weights).reshape(n, 4, h, w)
        index = scores.argmax(1, keepdim=True).expand(n, 4, h * w)
        return torch.gather(entries, 2, index).reshape(n, 4, h, w)


def palette_temperature(images: int, anneal: int) -> float:
    """The palette softmax's temperature after `images` training images: log-linear from 1 to TEMPERATURE_END over
    `anneal` images, then held (0: the hard end from the start)."""
    progress = min(images / anneal, 1.0) if anneal > 0 else 1.0
    return TEMPERATURE_END**progress


class Discriminator(nn.Module):
    """image (B, channels, size, size) -> logits (B,)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.ndf
        layers: list[nn.Module] = [
            # ndf x 48 x 48; no batch norm on the input layer
            nn.Conv2d(cfg.channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        # (ndf*2) x 24 x 24 -> (ndf*4) x 12 x 12 -> (ndf*8) x 6 x 6
        for _ in range(cfg.stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False)]
            if cfg.d_norm == "batch":
                layers += [nn.BatchNorm2d(width * 2)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        # 1 x 1 x 1: a convolution over the whole 6x6 map instead of a dense layer; logits, no sigmoid
        layers.append(nn.Conv2d(width, 1, BASE_SIZE, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


INIT_STD = 0.02  # the DCGAN paper's init: weights ~ N(0, 0.02)


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); batch-norm gains ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def build_models(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """A freshly initialised generator and discriminator (uses torch's global RNG: seed it first)."""
    g, d = Generator(cfg), Discriminator(cfg)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


def generator_flops(cfg: ModelConfig) -> int:
    """Multiply-adds x 2 of one generator forward pass per sprite, counted on the layers one sprite passes through
    (convolutions and linear layers; batch norm, activations and the palette's pick are left out). The pass runs on
    the meta device: shapes only, no arithmetic."""
    with torch.device("meta"):
        generator = Generator(cfg).eval()
    macs = []

    def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(layer, nn.ConvTranspose2d):  # each input value spreads over its kernel into every output map
            kernel = layer.out_channels // layer.groups * math.prod(layer.kernel_size)
            macs.append(inputs[0][0].numel() * kernel)
        elif isinstance(layer, nn.Conv2d):  # each output value gathers its kernel from every input map
            kernel = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            macs.append(output[0].numel() * kernel)
        elif isinstance(layer, nn.Linear):
            macs.append(layer.in_features * layer.out_features)

    hooks = [m.register_forward_hook(count) for m in generator.modules()]
    try:
        with torch.no_grad():
            generator(torch.zeros(1, cfg.nz, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * sum(macs)


@torch.no_grad()
def recompute_batch_norm(generator: nn.Module, batches) -> nn.Module:
    """Set every batch norm's running statistics to the average over `batches` of latents (train-mode
    forward passes), so they belong to these weights. Returns the generator in eval mode."""
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: exactly these batches' statistics
    generator.train()
    for z in batches:
        generator(z)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return generator.eval()
