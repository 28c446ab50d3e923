"""DiffAugment (Zhao et al. 2020) for RGBA sprites: differentiable augmentations applied to real and fake
images alike, in both the discriminator and the generator step, so the discriminator cannot memorise a
thousand sprites while the generator still learns the unaugmented distribution.

Transparent pixels are -1 on all four channels (black RGB, alpha 0), so translation pads and cutout fills
with -1: what moves in or is cut out is simply transparent. Colour changes touch RGB only, and only where a
pixel is visible: alpha is never augmented, and invisible RGB stays clean.

Adaptive augmentation (ADA, Karras et al. 2020) adds geometric transforms on top, each applied to a sprite with a
probability p that training adjusts: up while the discriminator scores too many real sprites as real, down while
it scores too few. Each transform is skipped with probability 1 - p, which the ADA paper finds keeps transforms
like these from leaking into the generated images as long as p stays well below 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    parts = tuple(p for p in policy.replace(" ", "").split(",") if p)
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {', '.join(POLICIES)}")
    return parts


def _uniform(shape, rng: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=rng).to(device)


def color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    rgb, alpha = x[:, :3], x[:, 3:]
    out = rgb + (_uniform((b, 1, 1, 1), rng, x.device) - 0.5)  # brightness
    mean = out.mean(dim=1, keepdim=True)
    out = (out - mean) * (_uniform((b, 1, 1, 1), rng, x.device) * 2) + mean  # saturation
    mean = out.mean(dim=[1, 2, 3], keepdim=True)
    out = (out - mean) * (_uniform((b, 1, 1, 1), rng, x.device) + 0.5) + mean  # contrast
    visible = (alpha + 1) / 2  # 0 where transparent, 1 where opaque
    return torch.cat([rgb + visible * (out - rgb), alpha], dim=1)


def translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = (torch.randint(-sy, sy + 1, (b, 1, 1), generator=rng)).to(x.device)
    tx = (torch.randint(-sx, sx + 1, (b, 1, 1), generator=rng)).to(x.device)
    gb, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=-1.0)  # the border is transparent
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=rng).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=rng).to(x.device)
    gb, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    mask = mask[:, None]
    return x * mask - (1 - mask)  # cut pixels become transparent (-1)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    for name in policy:
        x = AUGMENTS[name](x, rng)
    return x


# ADA: p moves by at most (batch / ADA_SPEED_IMAGES) a step, so it can go from 0 to 1 in this many images (about
# 22 epochs of 921 sprites; the paper's 500,000 is 2% of its runs, this is about a sixth of ours)
ADA_SPEED_IMAGES = 20_000
ADA_SCALE_STD = 0.2  # log2 of the isotropic and the anisotropic scale: N(0, 0.2), as in the paper


def ada_adjust(p: float, r: float, target: float, images: int) -> float:
    """The next augmentation probability, from the overfitting heuristic r = E[sign D(x)] over the `images` real
    sprites D just scored: above `target` (the paper's 0.6), p rises by images / ADA_SPEED_IMAGES; below, it
    falls as much; it stays within [0, 1]."""
    if r == target:
        return p
    return min(1.0, max(0.0, p + math.copysign(images / ADA_SPEED_IMAGES, r - target)))


def ada_geometric(x: torch.Tensor, p: float, rng: torch.Generator) -> torch.Tensor:
    """Each sprite independently: with probability p each, an isotropic scale, a rotation by any angle and an
    anisotropic scale, resampled bilinearly with a transparent (-1) border. Differentiable in x. At p = 0 it
    returns x itself and draws nothing, so a run whose p never rises is the run without ADA."""
    if p <= 0:
        return x
    b = x.shape[0]
    on = torch.rand(b, 3, generator=rng) < p  # which of the three transforms each sprite gets
    iso = torch.exp2(torch.randn(b, generator=rng) * ADA_SCALE_STD * on[:, 0])
    angle = (torch.rand(b, generator=rng) * 2 - 1) * math.pi * on[:, 1]
    aniso = torch.exp2(torch.randn(b, generator=rng) * ADA_SCALE_STD * on[:, 2])
    cos, sin = torch.cos(angle), torch.sin(angle)
    # where each output pixel samples the input: rotation, then the two scales (the inverse map; every factor's
    # distribution is symmetric, so drawing the inverse is drawing the transform)
    sx, sy = iso * aniso, iso / aniso
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    moved = F.grid_sample(x.float() + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    return torch.where(on.any(dim=1).to(x.device)[:, None, None, None], moved.to(x.dtype), x)
