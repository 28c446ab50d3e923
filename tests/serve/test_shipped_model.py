"""The generator that ships in the package: self-describing, consistent, within its size budget."""

import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest

from dcgan.serve import SpriteGenerator
from dcgan.serve.contract import file_digest
from dcgan.serve.generator import SHIPPED
from dcgan.serve.latent import latents

NAMES = {"fp32": "generator.onnx", "fp16": "generator-fp16.onnx", "rgba8": "generator-rgba8.onnx"}
KEYS = ["variant", "nz", "image_size", "channels", "layout", "output_name", "output_dtype", "output_range",
        "latent_recipe", "model_config", "train_config", "checkpoint_sha256", "data_fingerprint",
        "package_version", "exported"]  # fmt: skip


def metadata(name):
    session = ort.InferenceSession(str(SHIPPED / name), providers=["CPUExecutionProvider"])
    return session, session.get_modelmeta().custom_metadata_map


def test_files_are_there_and_within_budget():
    sizes = {name: (SHIPPED / name).stat().st_size for name in NAMES.values()}
    assert sum(sizes.values()) <= 40e6, sizes
    assert sizes["generator-fp16.onnx"] <= 0.55 * sizes["generator.onnx"]


def test_manifest_describes_exactly_these_files():
    manifest = json.loads((SHIPPED / "export.json").read_text())
    for name in NAMES.values():
        assert manifest["files"][name]["sha256"] == hashlib.sha256((SHIPPED / name).read_bytes()).hexdigest()
    assert all(row["ok"] for row in manifest["parity"])


@pytest.mark.parametrize("name", NAMES.values())
def test_every_shipped_file_carries_its_own_digest(name):
    """Flipped bytes in the installed model are refused, not sampled from: each file records its sha256."""
    recorded = file_digest((SHIPPED / name).read_bytes())
    assert recorded is not None and recorded[0] == recorded[1]


@pytest.mark.parametrize("variant", NAMES)
def test_every_file_carries_the_export_metadata(variant):
    _, meta = metadata(NAMES[variant])
    assert all(f"dcgan.{key}" in meta for key in KEYS)
    assert meta["dcgan.variant"] == variant and meta["dcgan.nz"] == "100" and meta["dcgan.image_size"] == "96"
    model_config = json.loads(meta["dcgan.model_config"])
    assert model_config["nz"] == 100 and model_config["image_size"] == 96
    _, fp32 = metadata(NAMES["fp32"])
    for key in ("checkpoint_sha256", "data_fingerprint", "model_config", "train_config"):
        assert meta[f"dcgan.{key}"] == fp32[f"dcgan.{key}"]  # all three come from one checkpoint


def test_the_three_files_agree():
    z = latents(range(32), 100)
    image = metadata(NAMES["fp32"])[0].run(None, {"z": z})[0]
    half = metadata(NAMES["fp16"])[0].run(None, {"z": z})[0]
    sprite = metadata(NAMES["rgba8"])[0].run(None, {"z": z})[0]
    levels = np.clip(np.round((image + 1) * 127.5), 0, 255)
    half_levels = np.clip(np.round((half + 1) * 127.5), 0, 255)
    assert (np.abs(levels - half_levels) <= 2).mean() >= 0.999
    opaque = sprite[..., 3] == 255
    decided = np.abs(image[:, 3]) > 1e-3
    np.testing.assert_array_equal(opaque[decided], (image[:, 3] > 0)[decided])
    rgb = levels[:, :3].transpose(0, 2, 3, 1)
    assert np.abs(sprite[..., :3].astype(float) - rgb)[opaque].max() <= 1


def test_default_generator_is_the_shipped_model_and_makes_distinct_sprites():
    gen = SpriteGenerator(provider="cpu")
    assert gen.info.path == SHIPPED / "generator-rgba8.onnx"
    sprites = gen(range(64))
    assert len({s.tobytes() for s in sprites}) == 64
    opaque = (sprites[..., 3] == 255).mean(axis=(1, 2))
    assert ((opaque > 0.02) & (opaque < 0.9)).mean() > 0.9  # creatures on a transparent background
