"""The DCGAN generator and discriminator, following Radford et al. (2016) at 96x96 RGBA.

Strided (transposed) convolutions only, no pooling, no dense layers; batch norm everywhere except the
generator's output and the discriminator's input; ReLU + tanh in the generator; LeakyReLU(0.2) in the
discriminator, which returns logits (scores, for the hinge and Wasserstein losses). The discriminator's
batch norm can be swapped for spectral norm (`ModelConfig.d_norm`), the small-data recipe's choice. The spatial
path is 1 -> 6 -> 12 -> 24 -> 48 -> 96: one 6x6 projection then a doubling per stage, so 96 px comes out
natively.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import BASE_SIZE, ModelConfig


class Generator(nn.Module):
    """z (B, nz) or (B, nz, 1, 1) -> image (B, channels, size, size) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.ngf * 2 ** (cfg.stages - 1)  # 512 at ngf=64, 96 px
        layers: list[nn.Module] = [
            # project z to the first feature map: (ngf*8) x 6 x 6 at 96 px
            nn.ConvTranspose2d(cfg.nz, width, BASE_SIZE, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
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
        layers += [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.main(z)


class MinibatchStd(nn.Module):
    """Append one feature map: the standard deviation of the features across each group of `group` samples,
    averaged over channels and pixels (Karras et al. 2018). No parameters. Sample i is in group i mod (B / g)."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = math.gcd(self.group, b)  # a batch that the group size does not divide uses smaller groups
        y = x.float().reshape(g, -1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # (B / g, C, H, W)
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # (B, 1, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class Discriminator(nn.Module):
    """image (B, channels, size, size) -> logits (B,)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        spectral = cfg.d_norm.startswith("spectral")

        def conv(c_in: int, c_out: int, *args) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, *args, bias=False)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer

        width = cfg.ndf
        layers: list[nn.Module] = [
            # ndf x 48 x 48; no batch norm on the input layer
            conv(cfg.channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        # (ndf*2) x 24 x 24 -> (ndf*4) x 12 x 12 -> (ndf*8) x 6 x 6
        for _ in range(cfg.stages - 1):
            layers += [conv(width, width * 2, 4, 2, 1)]
            if cfg.d_norm.endswith("batch"):
                layers += [nn.BatchNorm2d(width * 2)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        if cfg.mbstd_group:
            layers.append(MinibatchStd(cfg.mbstd_group))
        # 1 x 1 x 1: a convolution over the whole 6x6 map instead of a dense layer; logits, no sigmoid
        layers.append(conv(width + (1 if cfg.mbstd_group else 0), 1, BASE_SIZE, 1, 0))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


INIT_STD = 0.02  # the DCGAN paper's init: weights ~ N(0, 0.02)


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); batch-norm gains ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        # under spectral norm the parametrised weight is `parametrizations.weight.original`
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, INIT_STD)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def init_upsampling_evenly(generator: nn.Module) -> None:
    """Start each stride-2 transposed convolution as nearest-neighbour upsampling followed by a 3x3 convolution
    drawn from N(0, 0.02) (ICNR, Aitken et al. 2017): the 4x4 kernel is the 3x3 one spread over 2x2 pixels
    and halved, so the four output pixels of each input pixel start with the same response. A kernel drawn
    directly from N(0, 0.02) gives them independent responses: the checkerboard of Odena et al. (2016)."""
    for layer in upsampling_layers(generator):
        c_in, c_out = layer.weight.shape[:2]
        small = torch.randn(c_in * c_out, 1, 3, 3) * INIT_STD
        spread = nn.functional.conv_transpose2d(small, torch.ones(1, 1, 2, 2)) / 2  # -> 4 x 4
        layer.weight.copy_(spread.reshape(c_in, c_out, 4, 4))


def upsampling_layers(generator: nn.Module) -> list[nn.ConvTranspose2d]:
    """The generator's stride-2, 4x4 transposed convolutions: the layers that double the side."""
    return [
        m for m in generator.modules()
        if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) and m.kernel_size == (4, 4)
    ]  # fmt: skip


@torch.no_grad()
def even_upsampling_phases(generator: nn.Module) -> None:
    """Project each upsampling kernel, in place, onto the nearest one (least squares) whose four output phases
    have the same gain: a flat feature map then comes out flat, the condition for checkerboard-free upsampling
    (Sugawara et al. 2019). In a stride-2 transposed convolution, output pixels of one parity in y and x (a
    phase) are fed by the kernel taps of one parity, 4 of the 16; for each input-output channel pair the
    phases' tap sums are set to their mean by moving each tap by a quarter of its phase's excess. Projected
    kernels, and averages of them (the EMA), are left unchanged."""
    for layer in upsampling_layers(generator):
        w = layer.weight.unflatten(2, (2, 2)).unflatten(4, (2, 2))  # (in, out, ky // 2, ky % 2, kx // 2, kx % 2)
        sums = w.sum(dim=(2, 4), keepdim=True)  # each phase's tap sum
        excess = (sums - sums.mean(dim=(3, 5), keepdim=True)) / 4
        layer.weight.sub_(excess.expand(w.shape).flatten(4, 5).flatten(2, 3))


def build_models(cfg: ModelConfig, g_init: str = "normal") -> tuple[Generator, Discriminator]:
    """A freshly initialised generator and discriminator (uses torch's global RNG: seed it first). `g_init`:
    G_INITS; "icnr" starts G's upsampling kernels with even phases (init_upsampling_evenly)."""
    g, d = Generator(cfg), Discriminator(cfg)
    g.apply(init_weights)
    d.apply(init_weights)
    if g_init == "icnr":
        init_upsampling_evenly(g)
    return g, d


def generator_flops(cfg: ModelConfig) -> int:
    """Multiply-adds x 2 of one generator forward pass per sprite (convolutions only)."""
    width, side = cfg.ngf * 2 ** (cfg.stages - 1), BASE_SIZE
    flops = 2 * cfg.nz * width * side * side
    for _ in range(cfg.stages - 1):
        flops += 2 * side * side * width * (width // 2) * 16
        side, width = side * 2, width // 2
    flops += 2 * side * side * width * cfg.channels * 16
    return flops


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
