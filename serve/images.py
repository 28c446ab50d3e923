"""Pictures of sprites with numpy and Pillow: contact sheets and their animation over training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .files import write_atomic

SHEET_BACKGROUND = (235, 235, 235)  # light grey: dark outlines and white bodies both stay visible


def composite(sprites: np.ndarray, background=SHEET_BACKGROUND) -> np.ndarray:
    """uint8 RGBA (N, H, W, 4) -> uint8 RGB (N, H, W, 3) over a flat background."""
    rgb = sprites[..., :3].astype(np.float32)
    alpha = sprites[..., 3:4].astype(np.float32) / 255.0
    out = rgb * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def reduce_colours(sprites: np.ndarray, colours: int) -> np.ndarray:
    """uint8 RGBA sprites (N, H, W, 4) with each sprite's visible pixels redrawn in at most `colours` colours of its
    own (Pillow's median cut, no dithering), as an indexed-colour sprite is drawn. Alpha is kept; a sprite that
    already has that few colours comes back unchanged. Post-processing, for users who want the look: never the
    generator's own pixels."""
    out = sprites.copy()
    for sprite in out:
        visible = sprite[..., 3] > 0
        if not visible.any():
            continue
        pixels = Image.fromarray(np.ascontiguousarray(sprite[visible][None, :, :3]), "RGB")
        indexed = pixels.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        sprite[visible, :3] = np.asarray(indexed.convert("RGB"))[0]
    return out


def sheet(
    sprites: np.ndarray, columns: int | None = None, padding: int = 2, background=SHEET_BACKGROUND
) -> Image.Image:
    """A grid of uint8 RGBA sprites (N, H, W, 4), composited over `background`, as one RGB image."""
    n, h, w, _ = sprites.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / columns))
    canvas = np.empty((rows * (h + padding) + padding, columns * (w + padding) + padding, 3), np.uint8)
    canvas[:] = 255  # white gutters separate the cells from the grey background
    for i in range(n):  # a tile at a time: float copies of a whole 1,024-sprite sheet would take 0.4 GB
        r, c = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        canvas[y : y + h, x : x + w] = composite(sprites[i : i + 1], background)[0]
    return Image.fromarray(canvas, "RGB")


def scaled_sheet(sprites: np.ndarray, scale: int = 1) -> Image.Image:
    """The sheet of `sprites` (sheet()), upscaled `scale` times by nearest neighbour, as dcgan-sample --sheet
    draws it."""
    grid = sheet(sprites)
    return grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST) if scale > 1 else grid


def save_atomic(img: Image.Image, path: Path, **save_args) -> None:
    """Save through a temporary name, so a reader never sees half a picture."""
    path = Path(path)
    fmt = save_args.pop("format", None) or path.suffix.lstrip(".").upper()
    write_atomic(path, lambda tmp: img.save(tmp, format=fmt, **save_args))


def animate(frames: Sequence[Path], path: Path, max_frames: int = 60, scale: float = 0.5, ms: int = 250) -> None:
    """An animated GIF of sheets (e.g. the same seeds over training), at most `max_frames`, evenly spaced."""
    if not frames:
        return
    step = max(1, math.ceil(len(frames) / max_frames))
    chosen = list(frames[::step])
    if chosen[-1] != frames[-1]:
        chosen.append(frames[-1])
    images = []
    for frame in chosen:
        with Image.open(frame) as img:
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            images.append(img.convert("RGB").resize(size, Image.Resampling.BOX))
    durations = [ms] * (len(images) - 1) + [ms * 8]  # linger on the final state
    save_atomic(images[0], path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
