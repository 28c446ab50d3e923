"""FID and KID in Inception-v3's feature space, from a weights file the user already has (never a download).

The network is torchvision's Inception-v3 and the file its ImageNet state dict (`inception_v3_google-*.pth`),
loaded with `weights_only=True`. Features are the 2048 pooled activations of 299 px inputs. FID values from
this network are comparable with each other, not with papers that use the TensorFlow Inception graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan.serve.images import composite

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InceptionError(Exception):
    """The weights file is missing or not an Inception-v3 state dict."""


class Inception:
    """Callable: uint8 RGBA sprites (N, H, W, 4) -> (N, 2048) float64 features."""

    def __init__(self, path: Path, batch_size: int = 50):
        from torchvision.models import inception_v3

        self.path, self.batch_size = Path(path), batch_size
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except FileNotFoundError as err:
            raise InceptionError(f"{self.path}: no such file") from err
        except Exception as err:  # pickle, zip and unpickler errors all mean the same to the user
            raise InceptionError(f"{self.path} is not a PyTorch weights file ({type(err).__name__})") from err
        if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
            raise InceptionError(f"{self.path} is not torchvision's Inception-v3 state dict")
        net = inception_v3(weights=None, aux_logits="AuxLogits.fc.weight" in state, init_weights=False,
                           transform_input=True)  # fmt: skip
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise InceptionError(f"{self.path} does not fit torchvision's Inception-v3: {str(err)[:200]}") from err
        net.fc = nn.Identity()  # the 2048 pooled features instead of ImageNet logits
        self.net = net.eval()

    def describe(self) -> str:
        return f"torchvision Inception-v3 pool features (2048) at 299 px from {self.path.name}"

    @torch.no_grad()
    def __call__(self, sprites: np.ndarray) -> np.ndarray:
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        rgb = composite(sprites)
        out = []
        for i in range(0, len(rgb), self.batch_size):
            x = torch.from_numpy(rgb[i : i + self.batch_size].astype(np.float32) / 255.0).permute(0, 3, 1, 2)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((x - mean) / std))
        return torch.cat(out).double().numpy()


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2), the trace through the symmetric
    S_a^1/2 S_b S_a^1/2, which has the same eigenvalues and needs no general matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ s_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)
