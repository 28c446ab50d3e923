"""Small wrappers that give an exported graph its input/output contract, instead of patching `forward`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


# Which kernel row (or column) of a stride-2, 4x4, padding-1 transposed convolution feeds output phase `a`
# from the two input rows a 2x2 convolution sees: y[2m + a] = x[m - 1 + a + d] * W[TAP[a][d]], d in {0, 1}.
TAP = ((3, 1), (2, 0))
# Padding (left, right, top, bottom) that lines the 2x2 window of phase (a, b) up with those input rows.
PHASE_PAD = {(0, 0): (1, 0, 1, 0), (0, 1): (0, 1, 1, 0), (1, 0): (1, 0, 0, 1), (1, 1): (0, 1, 0, 1)}


def fold_batch_norm(conv: nn.ConvTranspose2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of `conv` followed by `bn` in eval mode, as one transposed convolution."""
    weight = conv.weight.detach()  # (Cin, Cout, k, k)
    if bn is None:
        return weight.clone(), torch.zeros(weight.shape[1])
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    return weight * scale[None, :, None, None], (bn.bias - bn.running_mean * scale).detach()


class SubPixelUp(nn.Module):
    """A stride-2 4x4 transposed convolution (+ activation) as four 2x2 convolutions and an interleave.

    Each output phase (even/odd row, even/odd column) is an ordinary 2x2 convolution of the input, with the
    same multiply-adds as the transposed convolution; onnxruntime's CPU convolutions (blocked layout, fused
    activation) run them faster than its ConvTranspose. Same results to float rounding.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, activation: nn.Module):
        super().__init__()
        self.phases = nn.ModuleList()
        for a, b in PHASE_PAD:
            conv = nn.Conv2d(weight.shape[0], weight.shape[1], 2, bias=True)
            kernel = weight[:, :, [TAP[a][0], TAP[a][1]]][:, :, :, [TAP[b][0], TAP[b][1]]]  # (Cin, Cout, 2, 2)
            conv.weight.data = kernel.transpose(0, 1).contiguous()
            conv.bias.data = bias.clone()
            self.phases.append(conv)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        parts = [
            self.activation(conv(F.pad(x, pad))) for conv, pad in zip(self.phases, PHASE_PAD.values(), strict=True)
        ]
        c = parts[0].shape[1]
        # (B, 4 phases a b, C, H, W) -> (B, C, H, a, W, b) -> (B, C, 2H, 2W)
        y = torch.cat(parts, 1).view(n, 2, 2, c, h, w)
        return y.permute(0, 3, 4, 1, 5, 2).reshape(n, c, 2 * h, 2 * w)


class InferenceGenerator(nn.Module):
    """The eval-mode generator rewritten for inference: batch norm folded into the convolutions, and the
    stride-2 transposed convolutions as sub-pixel convolutions. Same function, faster under onnxruntime."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        layers = list(generator.main)
        convs = [i for i, m in enumerate(layers) if isinstance(m, nn.ConvTranspose2d)]
        stages: list[nn.Module] = []
        for n, i in enumerate(convs):
            bn = layers[i + 1] if isinstance(layers[i + 1], nn.BatchNorm2d) else None
            weight, bias = fold_batch_norm(layers[i], bn)
            activation = nn.Tanh() if n == len(convs) - 1 else nn.ReLU()
            if layers[i].stride == (1, 1):  # the projection of z to the first 6x6 map
                first = nn.ConvTranspose2d(weight.shape[0], weight.shape[1], layers[i].kernel_size, bias=True)
                first.weight.data, first.bias.data = weight, bias
                stages += [first, activation]
            else:
                stages.append(SubPixelUp(weight, bias, activation))
        self.main = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z[:, :, None, None])
