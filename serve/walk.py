"""Latent walks: from seed to seed and back to the first, along great circles, as a looping GIF or a strip.

Gaussian latents of nz = 100 lie near a shell of radius about 10; a straight line between two of them cuts
inside it, where the generator has seen no latent, and its middle frames come out faint. Spherical interpolation
(Shoemake 1985, as White 2016 recommends for generative models) keeps every frame on the shell.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .files import write_atomic
from .latent import latents

MAX_FRAMES = 256  # frames in one walk, over all its legs
TRANSPARENT = 255  # the GIF palette index that stands for transparency


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from a to b (nz,) at fractions t (T,) -> (T, nz) float32; straight where a and b
    point the same way."""
    t = np.asarray(t, np.float64)[:, None]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)).astype(np.float32)


def walk_latents(seeds: list[int], frames: int, nz: int) -> np.ndarray:
    """The latents of a closed walk through `seeds` (s0 -> s1 -> ... -> s0), `frames` per leg, each leg starting
    on its seed's own latent: (len(seeds) * frames, nz). Two seeds walk there and back."""
    if len(seeds) < 2:
        raise ValueError("a walk needs at least two seeds")
    if frames < 1 or len(seeds) * frames > MAX_FRAMES:
        raise ValueError(f"a walk has 1 to {MAX_FRAMES} frames in all, not {len(seeds)} legs of {frames}")
    z = latents(seeds, nz)
    t = np.arange(frames) / frames
    return np.concatenate([slerp(z[i], z[(i + 1) % len(z)], t) for i in range(len(z))])


def _scaled(sprite: np.ndarray, scale: int) -> np.ndarray:
    return sprite.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else sprite


def gif_frame(sprite: np.ndarray, scale: int = 1) -> Image.Image:
    """A palette frame of a finished RGBA sprite: its colours in up to 255 entries, transparency as its own."""
    sprite = _scaled(sprite, scale)
    frame = Image.fromarray(np.ascontiguousarray(sprite[..., :3]), "RGB").quantize(
        colors=255,
        dither=Image.Dither.NONE,
        kmeans=2,  # two refinement passes: about a fifth closer, 2x the time
    )
    index = np.asarray(frame).copy()
    index[sprite[..., 3] == 0] = TRANSPARENT
    out = Image.fromarray(index, "P")
    palette = frame.getpalette()[: 255 * 3]
    out.putpalette(palette + [0] * (768 - len(palette)))
    out.info["transparency"] = TRANSPARENT
    return out


def encode_walk(sprites: np.ndarray, kind: str, scale: int = 1, ms: int = 80) -> bytes:
    """A walk's frames as file bytes: kind "gif" an animation that loops for ever, with alpha kept hard (each frame
    replaces the last); "png" one strip of the frames side by side, RGBA."""
    buf = io.BytesIO()
    if kind == "png":
        Image.fromarray(np.concatenate([_scaled(s, scale) for s in sprites], axis=1), "RGBA").save(buf, format="PNG")
    else:
        frames = [gif_frame(s, scale) for s in sprites]
        frames[0].save(
            buf, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0, disposal=2,
            transparency=TRANSPARENT, optimize=False,
        )  # fmt: skip
    return buf.getvalue()


def save_walk(sprites: np.ndarray, path: Path, scale: int = 1) -> None:
    """Write a walk to `path`, a .gif or a .png strip (encode_walk), whole or not at all."""
    path = Path(path)
    data = encode_walk(sprites, "png" if path.suffix.lower() == ".png" else "gif", scale)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
