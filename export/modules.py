"""Small wrappers that give an exported graph its input/output contract, instead of patching `forward`."""

from __future__ import annotations

import torch
from torch import nn


class HalfPrecision(nn.Module):
    """fp16 weights and arithmetic inside, float32 in and out: callers need no fp16 handling."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator.half()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z.half()).float()


class SpriteHead(nn.Module):
    """Generator + the finishing a sprite needs: uint8 RGBA, NHWC, hard alpha, RGB 0 where transparent.

    Mirrors dcgan.serve.contract.finish_sprites, so the app-ready file and the sampler agree.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        image = self.generator(z)  # (B, 4, H, W) in [-1, 1]
        levels = torch.round((image + 1.0) * 127.5).clamp(0, 255)
        opaque = (image[:, 3:4] > 0).to(image.dtype)
        sprite = torch.cat([levels[:, :3] * opaque, opaque * 255.0], dim=1)
        return sprite.permute(0, 2, 3, 1).to(torch.uint8)
