"""The model contract: what an exported generator file takes, returns and says about itself.

Export writes files that follow it, the sampler reads them by it, and apps that use neither can rely on it
(README, "Embed the generator"). numpy only.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np

INPUT = "z"  # float32 [batch, nz], one row per seed (see dcgan.serve.latent)
OUTPUT_IMAGE = "image"  # float32 [batch, 4, 96, 96], RGBA, channels first, in [-1, 1]
OUTPUT_SPRITE = "sprite"  # uint8 [batch, 96, 96, 4], RGBA, channels last, finished (see finish_sprites)

# File names inside an export folder, by variant.
FILES = {
    "fp32": "generator.onnx",
    "fp16": "generator-fp16.onnx",
    "rgba8": "generator-rgba8.onnx",
    "torchscript": "generator.torchscript",
    "torchscript-fp16": "generator-fp16.torchscript",
}
EXPORT_MANIFEST = "export.json"
# The name a variant goes by on an inference server: its model folder in a Triton model repository
# (dcgan-export --triton), and so the <name> in the Open Inference Protocol's /v2/models/<name>.
SERVED_NAMES = {"rgba8": "dcgan-rgba8", "fp32": "dcgan-fp32"}

# ONNX metadata_props keys (TorchScript files carry the same dict as JSON in _extra_files["dcgan.json"]).
META_PREFIX = "dcgan."
META_KEYS = (
    "variant",  # fp32 | fp16 | rgba8 | torchscript | torchscript-fp16
    "nz",  # latent size
    "image_size",
    "channels",
    "layout",  # NCHW for `image`, NHWC for `sprite`
    "output_name",
    "output_dtype",
    "output_range",  # "[-1, 1]" or "[0, 255]"
    "latent_recipe",  # the numpy line that turns a seed into z
    "model_config",  # JSON
    "train_config",  # JSON
    "checkpoint_sha256",
    "data_fingerprint",
    "package_version",
    "exported",  # ISO 8601, UTC
    "sha256",  # DIGEST: the file's own digest, checked by the loader
)
# sha256 of the ONNX file as written with this value set to 64 zeros: it covers every byte but itself (weights, graph
# and the other metadata), so the loader checks a file in one pass over it, before onnxruntime parses anything.
DIGEST = META_PREFIX + "sha256"
# The digest's metadata entry as the protobuf encoder writes it: the key (field 1) and then a 64-byte value (field 2).
_DIGEST_ENTRY = b"\x0a" + bytes([len(DIGEST)]) + DIGEST.encode() + b"\x12\x40"
_ZEROS = b"0" * 64
TORCHSCRIPT_EXTRA_FILE = "dcgan.json"


def finish_sprites(image: np.ndarray, hard_alpha: bool = True) -> np.ndarray:
    """float [-1, 1] (B, 4, H, W) -> uint8 RGBA (B, H, W, 4), finished like a real sprite.

    Levels are round((x + 1) * 127.5) clipped to 0..255 (numpy, torch and ONNX all round half to even).
    Alpha is made hard like the real sprites' (every real sprite's alpha is exactly 0 or 255): opaque where
    the raw alpha is above the midpoint 0. RGB is 0 where alpha is 0, so transparent pixels carry no stray
    colour. generator-rgba8.onnx does the same inside its graph. `hard_alpha=False` keeps the raw alpha and
    only clears the colour of pixels whose alpha rounds to 0.
    """
    levels = np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255)
    if not hard_alpha:
        levels[:, :3] *= levels[:, 3:4] > 0
        return levels.astype(np.uint8).transpose(0, 2, 3, 1)
    opaque = image[:, 3:4] > 0
    rgb = levels[:, :3] * opaque
    alpha = opaque * np.float32(255)
    return np.concatenate([rgb, alpha], axis=1).astype(np.uint8).transpose(0, 2, 3, 1)


def file_digest(data: bytes) -> tuple[str, str] | None:
    """(recorded, actual) sha256 of an ONNX file's bytes, or None where it records no digest (files exported before
    there was one)."""
    at = data.rfind(_DIGEST_ENTRY)
    if at < 0:
        return None
    start = at + len(_DIGEST_ENTRY)
    view = memoryview(data)
    h = hashlib.sha256(view[:start])
    h.update(_ZEROS)
    h.update(view[start + 64 :])
    return bytes(view[start : start + 64]).decode("ascii", "replace"), h.hexdigest()


def stamp_digest(data: bytes) -> bytes:
    """An ONNX file's bytes, serialised with DIGEST set to 64 zeros, with the digest written in its place."""
    placeholder = _DIGEST_ENTRY + _ZEROS
    if data.count(placeholder) != 1:
        raise ValueError(f"the model must hold {DIGEST} = 64 zeros exactly once to be stamped")
    digest = hashlib.sha256(data).hexdigest().encode()
    return data.replace(placeholder, _DIGEST_ENTRY + digest)


def package_version() -> str:
    """This package's installed version, as model files and checkpoints record it ("unknown" from a bare checkout)."""
    try:
        return metadata.version("dcgan-pokemon")
    except metadata.PackageNotFoundError:
        return "unknown"
