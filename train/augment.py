"""DiffAugment (Zhao et al. 2020) for RGBA sprites: differentiable augmentations applied to real and fake
images alike, in both the discriminator and the generator step, so the discriminator cannot memorise a
thousand sprites while the generator still learns the unaugmented distribution.

Transparent pixels are -1 on all four channels (black RGB, alpha 0), so translation pads and cutout fills
with -1: what moves in or is cut out is simply transparent. Colour changes touch RGB only, and only where a
pixel is visible: alpha is never augmented, and invisible RGB stays clean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
