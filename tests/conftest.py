"""Shared fixtures: small synthetic sprites (never the real data), the shared data folder when present, one tiny
training run and a tiny exported generator (each built once per session), the tiny training arguments, and the
helpers that run a command as a user would and compare sprites that two computations drew."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The smallest networks and batch that train: for every test that trains, through the CLI or a subprocess
TINY = ["--ngf", "4", "--ndf", "4", "--batch-size", "2", "-q"]


def invoke(command, *args):
    """Run a click command in this process with `args` as a user's command line gives them (as text); the result
    holds exit_code and output (stdout and stderr)."""
    from click.testing import CliRunner

    return CliRunner().invoke(command, [str(a) for a in args])


def assert_within_a_level(got: np.ndarray, expected: np.ndarray, levels: int = 1, flipped: float = 1e-3) -> None:
    """Finished uint8 sprites (..., H, W, 4) that two computations (batches, kernels, runtimes) drew for the same
    seeds: colours within `levels` where both are opaque, and alpha equal but where the raw alpha sat on the
    threshold, which may round either way (at most a `flipped` share of pixels). Only tests/serve/test_generator.py's
    batch invariance test asks for more: the same sprite, bit for bit."""
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.uint8
    got, expected = got.astype(np.int16), expected.astype(np.int16)
    differ = got[..., 3] != expected[..., 3]
    assert differ.mean() <= flipped, f"alpha differs on {differ.mean():.2%} of pixels"
    both = ~differ & (got[..., 3] == 255)
    assert np.abs(got[..., :3] - expected[..., :3])[both].max(initial=0) <= levels


def crowd(pool: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """n sprites of `pool` (N, H, W, 4) from the two k-means bins (`centres`) that hold most of it: sprites unlike
    each other that all fall into two bins, a collapse without twins."""
    from dcgan.train.metrics import pixel_features, sq_distances

    bins = sq_distances(pixel_features(pool), centres).argmin(axis=1)
    return pool[np.isin(bins, np.bincount(bins).argsort()[-2:])][:n]


def read_until(stream, prefix: str) -> list[str]:
    """Lines of a subprocess's text pipe up to and including the first that starts with `prefix`: the process says
    when it got there, no polling. Fails if the pipe closes first (the process ended); pytest-timeout bounds it."""
    lines = []
    for line in stream:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"the process ended before printing {prefix!r}: {''.join(lines)}")


def synthetic_sprite(rng: np.random.Generator, size: tuple[int, int] = (96, 96)) -> Image.Image:
    """A palette sprite like the real ones: a coloured blob on a transparent background (tRNS index 0)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    rx, ry = rng.uniform(0.15, 0.3) * w, rng.uniform(0.15, 0.3) * h
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    idx = np.zeros((h, w), np.uint8)
    idx[inside] = 1 + (xx[inside] * 3 // w + yy[inside] * 2 // h).astype(np.uint8)  # a few colour patches
    img = Image.fromarray(idx, "P")
    palette = [0, 0, 0] + [int(v) for v in rng.integers(0, 256, 3 * 7)]
    img.putpalette(palette + [0] * (768 - len(palette)))
    img.info["transparency"] = 0
    return img


def write_sprites(folder: Path, n: int, size: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
    """n synthetic palette PNG sprites, 1.png .. n.png, into `folder` (made if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        synthetic_sprite(rng, size).save(folder / f"{i + 1}.png", transparency=0)
    return folder


@pytest.fixture
def make_sprites(tmp_path):
    """make_sprites(n, folder_name='sprites', size=(96, 96), seed=0) -> a folder of n palette PNG sprites."""

    def make(n: int, name: str = "sprites", size: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
        return write_sprites(tmp_path / name, n, size, seed)

    return make


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "pokemon").is_dir():
        pytest.skip(f"shared sprite data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder trained once per session with the default recipe (EMA, DiffAugment) at TINY size: 2 epochs on 8
    synthetic sprites (4 steps each), both epochs kept (checkpoints/epoch0001.pt, epoch0002.pt). Read it; copy it
    (`copy_run`) before anything writes into it. Its sprites are the folder beside it."""
    from dcgan.train.cli import main as train_main

    root = tmp_path_factory.mktemp("tiny-run")
    data = write_sprites(root / "sprites", 8)
    result = invoke(train_main, "--data", data, "--out", root / "run", "--epochs", 2, "--keep-every", 1, *TINY)
    assert result.exit_code == 0, result.output
    return root / "run"


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of the run folder `run` at `dest`, every file new (written now): a run of its own to resume, export or
    break. It still names the same sprites."""
    shutil.copytree(run, dest, copy_function=shutil.copy)
    return dest


@pytest.fixture
def no_training(monkeypatch) -> None:
    """dcgan-train sets the run up (data, config.json, the lock) and stops where training would start: for tests of
    what a command line sets up, not of training."""
    import dcgan.train.runs as runs

    monkeypatch.setattr(runs, "run", lambda job, **_options: job.lock.release())


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """An export folder (generator.onnx, -fp16.onnx, -rgba8.onnx) of a small calibrated random generator."""
    from dcgan.export import formats
    from dcgan.export.exporter import export_checkpoint
    from dcgan.train.config import ModelConfig
    from dcgan.train.demo import demo_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    ckpt = demo_checkpoint(root / "run" / "checkpoint.pt", ModelConfig(ngf=8, ndf=8))
    export_checkpoint(ckpt, None, formats.select(onnx=True, torchscript=False, fp16=True), log=lambda _m: None)
    return root / "run" / "export"


@pytest.fixture
def session_requests(monkeypatch) -> list:
    """Swap onnxruntime.InferenceSession for a recorder that reports CUDA as running, and return the list of
    provider requests it receives: what a CUDA session asks for, checked on machines without a GPU."""
    import onnxruntime as ort

    asked = []

    class Recorder:
        def __init__(self, path, options=None, providers=None):
            asked.append(providers)

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", Recorder)
    return asked
