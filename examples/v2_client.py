"""Sprites from any server that speaks the Open Inference Protocol (v2): dcgan-serve, or Triton and KServe serving the
repository that `dcgan-export --triton` writes. The standard library and numpy only.

    python examples/v2_client.py --url http://127.0.0.1:8000 --seeds 0-15 out/

Seeds become latents as every part of this project makes them, so seed 42 here is seed 42 in `dcgan-sample`:
    z = numpy.random.default_rng(seed).standard_normal(nz, dtype=numpy.float32)
and each sprite is written as out/seedNNNNNN.png.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np


def latents(seeds: list[int], nz: int) -> np.ndarray:
    """(len(seeds), nz) float32, row i the latent of seeds[i]."""
    return np.stack([np.random.default_rng(s).standard_normal(nz, dtype=np.float32) for s in seeds])


def finish(image: np.ndarray) -> np.ndarray:
    """A float model's output [n, 4, H, W] in [-1, 1] -> uint8 RGBA [n, H, W, 4], alpha 0 or 255 and no colour under
    transparent pixels: what the uint8 model does inside its graph."""
    levels = np.clip(np.round((image + 1.0) * 127.5), 0, 255)
    opaque = image[:, 3:4] > 0
    rgba = np.concatenate([levels[:, :3] * opaque, opaque * np.float32(255)], axis=1)
    return rgba.astype(np.uint8).transpose(0, 2, 3, 1)


def png(sprite: np.ndarray) -> bytes:
    """uint8 RGBA (H, W, 4) -> PNG bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = sprite.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), sprite.reshape(h, w * 4)], axis=1)  # filter None on each row
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + chunk(b"IEND", b"")
    )


def call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def sprites(url: str, model: str, seeds: list[int]) -> np.ndarray:
    """uint8 RGBA [n, H, W, 4] for `seeds` from the model `model` at `url`."""
    meta = call(f"{url}/v2/models/{model}")
    nz = meta["inputs"][0]["shape"][-1]
    z = latents(seeds, nz)
    request = {"inputs": [{"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.ravel().tolist()}]}
    (out,) = call(f"{url}/v2/models/{model}/infer", request)["outputs"]
    dtype = {"UINT8": np.uint8, "FP32": np.float32}[out["datatype"]]
    values = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
    return values if dtype is np.uint8 else finish(values)


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for seedNNNNNN.png")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server, without /v2")
    parser.add_argument("--model", default="dcgan-rgba8", help="dcgan-rgba8, or dcgan-fp32 for the float model")
    parser.add_argument("--seeds", default="0-15", help="e.g. 0-15,42")
    parser.add_argument("--batch", type=int, default=16, help="sprites per request")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(seeds), args.batch):
        chunk = seeds[i : i + args.batch]
        for seed, sprite in zip(chunk, sprites(args.url.rstrip("/"), args.model, chunk), strict=True):
            (args.out / f"seed{seed:06d}.png").write_bytes(png(sprite))
    print(f"{len(seeds)} sprites from {args.url} in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
