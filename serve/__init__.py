"""Sampling side of the project: numpy, Pillow and onnxruntime only, never torch.

from dcgan.serve import SpriteGenerator
sprites = SpriteGenerator()(seeds=range(64))     # uint8 (64, 96, 96, 4)
"""

from __future__ import annotations

__all__ = ["ModelError", "SpriteGenerator"]


def __getattr__(name: str):
    # lazy, so that `dcgan.serve.latent` (which training imports) does not pull in onnxruntime
    if name in __all__:
        from . import generator

        return getattr(generator, name)
    raise AttributeError(name)
