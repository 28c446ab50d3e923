"""Checkpoint -> model files: rebuild the generator from the checkpoint alone, write each format, run every
file back against the PyTorch model, and publish the files only when all of them pass."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from dcgan.serve.contract import EXPORT_MANIFEST, META_PREFIX, OUTPUT_SPRITE
from dcgan.serve.files import write_text_atomic
from dcgan.serve.latent import LATENT_RECIPE, latents
from dcgan.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_generator, package_version, retired_note
from dcgan.train.config import ModelConfig
from dcgan.train.model import Generator

from . import formats
from .parity import ParityRow, compare


class ExportError(RuntimeError):
    """Export could not finish; the message says why. Nothing was published."""

    def __init__(self, message: str, rows: list[ParityRow] | None = None):
        super().__init__(message)
        self.rows = rows or []


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, dict]
    parity: list[ParityRow] = field(default_factory=list)
    manifest: Path | None = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def newest_run(root: Path = Path("runs")) -> Path | None:
    """The run folder under `root` whose checkpoint was written last."""
    checkpoints = sorted(root.glob(f"*/{CHECKPOINT_NAME}"), key=lambda p: p.stat().st_mtime)
    return checkpoints[-1].parent if checkpoints else None


def metadata(state: dict, checkpoint_sha: str, fmt: formats.Format, exported: str) -> dict[str, str]:
    cfg = ModelConfig.from_dict(state["model_config"])
    sprite = fmt.output == OUTPUT_SPRITE
    values = {
        "variant": fmt.variant,
        "nz": cfg.nz,
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "layout": "NHWC RGBA" if sprite else "NCHW RGBA",
        "output_name": fmt.output,
        "output_dtype": "uint8" if sprite else "float32",
        "output_range": "[0, 255], alpha 0 or 255, RGB 0 where alpha is 0" if sprite else "[-1, 1]",
        "latent_recipe": LATENT_RECIPE,
        "model_config": json.dumps(state["model_config"], sort_keys=True),
        "train_config": json.dumps(state["train_config"], sort_keys=True),
        "checkpoint_sha256": checkpoint_sha,
        "data_fingerprint": state.get("data", {}).get("fingerprint", ""),
        "package_version": package_version(),
        "exported": exported,
    }
    return {META_PREFIX + k: str(v) for k, v in values.items()}


def parity_devices() -> tuple[str, ...]:
    # torch seeing a GPU is the cheap test; asking onnxruntime's CUDA provider on a machine without one
    # only fills the log with library errors
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def run_file(fmt: formats.Format, path: Path, z: np.ndarray, device: str) -> np.ndarray | None:
    """The file's output for `z` on `device` ("cpu" or "cuda"), or None when that device is not available."""
    if fmt.family == "onnx":
        session = formats.onnx_session(path, device)
        return None if session is None else formats.run_onnx(session, z)
    return formats.run_torchscript(formats.load_torchscript(path, device), z, device)


def parity_rows(
    fmt: formats.Format,
    path: Path,
    generator: Generator,
    seed_batches: list[list[int]],
    devices: tuple[str, ...] = ("cpu",),
) -> list[ParityRow]:
    """Rows for `path` on every available device, one per batch of seeds."""
    rows = []
    nz = generator.cfg.nz
    for seeds in seed_batches:
        z = latents(seeds, nz)
        with torch.no_grad():
            ref = generator(torch.from_numpy(z)).numpy()
        for device in devices:
            out = run_file(fmt, path, z, device)
            if out is not None:
                runtime = ("onnxruntime " if fmt.family == "onnx" else "torch.jit ") + device.upper()
                chosen = generator.cfg.generator == "palette"
                rows.append(compare(fmt.variant, out, ref, path.name, runtime, chosen=chosen))
    return rows


def export_checkpoint(
    source: Path,
    out_dir: Path | None,
    wanted: list[formats.Format],
    overwrite: bool = False,
    seed_batches: list[list[int]] | None = None,
    log=print,
) -> ExportResult:
    """Write the `wanted` formats for the checkpoint `source` (a file or a run folder) into `out_dir`."""
    ckpt = source / CHECKPOINT_NAME if source.is_dir() else source
    state = load_checkpoint(ckpt)
    if note := retired_note(state, ckpt):
        log(note)
    out_dir = Path(out_dir) if out_dir is not None else ckpt.parent / "export"
    targets = [out_dir / f.filename for f in wanted] + [out_dir / EXPORT_MANIFEST]
    existing = [p.name for p in targets if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{out_dir} already has {', '.join(existing)}; pass --overwrite to replace them")
    generator = load_generator(state)
    checkpoint_sha = sha256_file(ckpt)
    exported = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if seed_batches is None:  # fresh seeds each export: parity is not tuned to a fixed set
        fresh = np.random.default_rng().integers(0, 2**31 - 1, size=8).tolist()
        seed_batches = [fresh[:1], fresh[1:]]

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{os.getpid()}"
    staging.mkdir()
    try:
        files, rows = {}, []
        for fmt in wanted:
            log(f"writing {fmt.filename} ({fmt.description})")
            path = staging / fmt.filename
            formats.write(
                fmt, copy.deepcopy(generator), generator.cfg.nz, path, metadata(state, checkpoint_sha, fmt, exported)
            )
            rows += parity_rows(fmt, path, generator, seed_batches, parity_devices())
            files[fmt.filename] = {
                "variant": fmt.variant,
                "description": fmt.description,
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        failed = [r for r in rows if not r.ok]
        if failed:
            names = sorted({r.file for r in failed})
            raise ExportError(f"parity check failed for {', '.join(names)}; nothing was written", rows)
        for name in files:
            os.replace(staging / name, out_dir / name)
    except OSError as err:  # disk full, file-size limit, permission lost: the staged files go, none is published
        raise ExportError(f"writing to {out_dir} failed: {err.strerror or err}; nothing was published") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    manifest = {
        "source": {"checkpoint": str(ckpt), "sha256": checkpoint_sha, "epoch": state["epoch"],
                   "step": state["step"], "ema": "generator_ema" in state},
        "package_version": package_version(),
        "torch_version": str(torch.__version__),
        "exported": exported,
        "model_config": state["model_config"],
        "train_config": state["train_config"],
        **({"retired_settings": state["retired"]} if state["retired"] else {}),
        "data_fingerprint": state.get("data", {}).get("fingerprint", ""),
        "files": files,
        "parity_seeds": seed_batches,
        "parity": [r.to_dict() for r in rows],
    }  # fmt: skip
    path = out_dir / EXPORT_MANIFEST
    try:
        write_text_atomic(path, json.dumps(manifest, indent=2))
    except OSError as err:
        raise ExportError(
            f"the model files are in {out_dir}, but {EXPORT_MANIFEST} could not be written: {err.strerror or err}"
        ) from err
    return ExportResult(out_dir, files, rows, path)
