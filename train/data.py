"""Sprites from a folder of images -> one uint8 array (N, 4, 96, 96), held in memory.

Every image becomes RGBA at the model's size: palette images with a transparency entry become real RGBA,
images of another size are padded to a square centred on their content and resized with nearest-neighbour
(pixel art stays crisp), and fully transparent pixels get one fixed colour so the model never has to learn
invisible RGB.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".gif", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".tga"}
TRANSPARENT_RGB = (0, 0, 0)  # the one colour every fully transparent pixel gets
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class NoImagesError(ValueError):
    """The folder holds no image that could be decoded."""


@dataclass
class SpriteSet:
    """Decoded sprites and what happened on the way."""

    images: np.ndarray  # uint8 (N, 4, size, size), RGBA, channels first
    names: list[str]  # file names relative to the folder, in the order of `images`
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    repaired: list[str] = field(default_factory=list)  # PNGs loaded after dropping a corrupt ancillary chunk

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """sha256 over names and decoded pixels: same pixels under the same names, same fingerprint."""
        h = hashlib.sha256()
        for name in self.names:
            h.update(name.encode() + b"\0")
        h.update(np.ascontiguousarray(self.images).tobytes())
        return h.hexdigest()


def repair_png(data: bytes) -> bytes | None:
    """The PNG without ancillary chunks whose CRC is wrong, or None if it has none.

    Real sprite collections carry PNGs whose iCCP or zTXt chunk fails its checksum while the pixels are
    intact; Pillow refuses those. Dropping just the broken ancillary chunks (or re-checksumming tRNS, which
    carries transparency) keeps them loadable while a damaged critical chunk or truncated pixel data still
    fails, unlike Pillow's LOAD_TRUNCATED_IMAGES, which would also accept half an image.
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    out, pos, changed = [PNG_SIGNATURE], len(PNG_SIGNATURE), False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if end > len(data):
            return None  # truncated: nothing to repair
        ctype, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        good = zlib.crc32(ctype + body) == crc
        ancillary = bool(ctype[0] & 0x20)
        if good or not ancillary:
            out.append(data[pos:end])
        elif ctype == b"tRNS":
            out.append(data[pos : pos + 8 + length] + struct.pack(">I", zlib.crc32(ctype + body)))
            changed = True
        else:
            changed = True
        pos = end
    return b"".join(out) if changed else None


class TooLargeError(ValueError):
    """An image past Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS): never decoded."""


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a sprite is never that large either way
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            raise TooLargeError(f"too large to be a sprite ({err})") from err
    img.load()
    return img


def frames(img: Image.Image, every: bool) -> list[Image.Image]:
    """The first frame of an animation, or every frame; a still image is its one frame."""
    if not every or getattr(img, "n_frames", 1) == 1:
        return [img]
    return [frame.copy() for frame in ImageSequence.Iterator(img)]


def to_rgba(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGBA, keeping transparency (palette tRNS, LA, colour keys)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale: scale to 8 bits instead of letting convert() clip at 255
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr * 255.0 / peak + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("PA")
    return img.convert("RGBA")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Pad to a square centred on the visible content, then nearest-neighbour resize to size x size."""
    if img.size == (size, size):
        return img
    w, h = img.size
    side = max(w, h)
    box = img.getchannel("A").getbbox() or (0, 0, w, h)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # centre the content in the square, but keep the whole image inside it (side >= w and side >= h)
    left = min(max(round(side / 2 - cx), 0), side - w)
    top = min(max(round(side / 2 - cy), 0), side - h)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(img, (left, top))
    return canvas.resize((size, size), Image.Resampling.NEAREST)


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """RGBA image -> uint8 (4, size, size) with a fixed colour under fully transparent pixels."""
    arr = np.array(fit_square(to_rgba(img), size), dtype=np.uint8)  # (H, W, 4)
    arr[arr[..., 3] == 0, :3] = TRANSPARENT_RGB
    return arr.transpose(2, 0, 1)


def load_image(path: Path, size: int, all_frames: bool = False) -> tuple[list[np.ndarray], bool]:
    """One file -> ([uint8 (4, size, size) per frame], repaired?): the first frame, or with `all_frames` every
    frame of an animation. Raises OSError/ValueError when it cannot be decoded."""
    data = path.read_bytes()
    try:
        return [to_array(f, size) for f in frames(_open(data), all_frames)], False
    except TooLargeError:
        raise
    except (OSError, SyntaxError, UnidentifiedImageError, ValueError) as first:
        fixed = repair_png(data)
        if fixed is None:
            raise ValueError(str(first) or type(first).__name__) from first
        return [to_array(f, size) for f in frames(_open(fixed), all_frames)], True


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder` and below, sorted by relative path for a stable order."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def load_folder(folder: str | Path, size: int = 96, warn=print, all_frames: bool = False) -> SpriteSet:
    """Decode every image under `folder` (every frame of animations with `all_frames`). Undecodable,
    unreadable and oversized files are skipped with one `warn` line each."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"--data must be a folder of images, but {folder} is a file")
    arrays, names, skipped, repaired = [], [], [], []
    for path in image_files(folder):
        name = path.relative_to(folder).as_posix()
        try:
            decoded, was_repaired = load_image(path, size, all_frames)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            reason = (err.strerror if isinstance(err, OSError) and err.strerror else None) or str(err)
            reason = reason.replace(str(path), "").strip(" :'") or type(err).__name__
            skipped.append((name, reason))
            warn(f"skipped {path}: {reason}")
            continue
        arrays += decoded
        names += [name] if len(decoded) == 1 else [f"{name}#{i}" for i in range(len(decoded))]
        if was_repaired:
            repaired.append(name)
    if not arrays:
        found = f"{len(skipped)} image file(s), none decodable" if skipped else "no image files"
        raise NoImagesError(f"no usable images in {folder}: {found} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return SpriteSet(np.stack(arrays), names, skipped, repaired)
