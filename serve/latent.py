"""The latent convention every stage shares: sprite number `seed` is drawn from its own numpy generator.

Training (for its fixed-seed grids), export (for parity checks) and the sampler all call these, so seed 42
names the same creature in PyTorch, TorchScript and ONNX.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The recipe in words, for model metadata and for apps that do not use this package.
LATENT_RECIPE = "z = numpy.random.default_rng(seed).standard_normal(nz, dtype=numpy.float32)"


def latent(seed: int, nz: int) -> np.ndarray:
    """The latent vector (nz,) float32 of sprite number `seed`."""
    return np.random.default_rng(seed).standard_normal(nz, dtype=np.float32)


def latents(seeds: Iterable[int], nz: int) -> np.ndarray:
    """A batch (len(seeds), nz) float32, one row per seed, each row as `latent` gives it."""
    rows = [latent(seed, nz) for seed in seeds]
    return np.stack(rows) if rows else np.zeros((0, nz), dtype=np.float32)
