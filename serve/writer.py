"""Sprites to PNG files, named by seed, encoded in a background thread while the next batch generates.

Every file appears complete or not at all: it is written under a temporary name and then linked (or, with
overwrite, renamed) into place. At most `max_pending` batches wait, so memory stays bounded for any count.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

SPRITE_NAME = re.compile(r"seed(\d+)\.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sprite_name(seed: int) -> str:
    return f"seed{seed:06d}.png"


def existing_seeds(out_dir: Path) -> set[int]:
    """Seeds that already have a sprite file in `out_dir`."""
    if not out_dir.is_dir():
        return set()
    found = set()
    with os.scandir(out_dir) as entries:
        for entry in entries:
            if m := SPRITE_NAME.fullmatch(entry.name):
                found.add(int(m.group(1)))
    return found


def publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a complete temporary file into place; without `overwrite`, never replace an existing file."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic and fails if `final` exists, even if another process just wrote it
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
    except OSError:  # a filesystem without hard links
        if final.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(sprite: np.ndarray, scale: int = 1) -> bytes:
    """uint8 RGBA (H, W, 4) -> PNG bytes, upscaled `scale` times by nearest neighbour.

    A minimal encoder: no row filters, zlib level 1, and zlib releases the GIL, so it overlaps with
    generation. On shipped-model sprites it takes 0.16 ms against Pillow's 0.37 ms (compress_level=1) and
    the files come out smaller (6.2 against 6.8 kB): flat transparent runs need no filter.
    """
    if scale > 1:
        sprite = sprite.repeat(scale, axis=0).repeat(scale, axis=1)
    h, w, _ = sprite.shape
    rows = np.empty((h, 1 + w * 4), np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    rows[:, 1:] = sprite.reshape(h, w * 4)
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, deflate, no interlace
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _chunk(b"IEND", b"")
    )


def save_png(data: bytes, final: Path, overwrite: bool) -> None:
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, final, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def save_sprites(sprites: np.ndarray, seeds, out_dir: Path, overwrite: bool = False, scale: int = 1) -> list[Path]:
    """Write uint8 RGBA sprites (N, H, W, 4) as out_dir/seedNNNNNN.png, one per seed; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, sprite in zip(seeds, sprites, strict=True):
        paths.append(out_dir / sprite_name(seed))
        save_png(encode_png(sprite, scale), paths[-1], overwrite)
    return paths


def _lower_priority() -> None:
    """Run this (writer) thread below the generator's: onnxruntime's threads keep the cores and the encoder
    fills the gaps, instead of stalling a parallel op. End to end 257 against 239 sprites/s (2 cores)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread
    except (AttributeError, OSError):
        pass


class SpriteWriter:
    """Write (seeds, sprites) batches as out_dir/seedNNNNNN.png in the background. Use as a context manager."""

    def __init__(self, out_dir: Path, overwrite: bool = False, scale: int = 1, max_pending: int = 2):
        self.out_dir, self.overwrite, self.scale = Path(out_dir), overwrite, scale
        self.written = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="png", initializer=_lower_priority)
        self._pending: deque[Future] = deque()
        self._max_pending = max_pending

    def _write(self, seeds: list[int], sprites: np.ndarray) -> None:
        for seed, sprite in zip(seeds, sprites, strict=True):
            save_png(encode_png(sprite, self.scale), self.out_dir / sprite_name(seed), self.overwrite)
            self.written += 1  # per file, so a failure mid-batch reports exactly what is complete

    def submit(self, seeds: list[int], sprites: np.ndarray) -> None:
        """Queue a batch; waits while `max_pending` batches are still being written. Raises their errors."""
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, seeds, sprites))

    def close(self, cancel: bool = False) -> int:
        """Finish (or, with `cancel`, drop) queued batches; the file being written completes. Returns the count."""
        try:
            while self._pending:
                future = self._pending.popleft()
                if cancel:
                    future.cancel()
                else:
                    future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.written

    def __enter__(self) -> SpriteWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
