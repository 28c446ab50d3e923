"""SpriteGenerator: seeds in, finished uint8 RGBA sprites out, from any ONNX file dcgan-export writes.

from dcgan.serve import SpriteGenerator
gen = SpriteGenerator()                  # the shipped model, CUDA when it can run, else the CPU
sprites = gen(seeds=range(64))           # uint8 (64, 96, 96, 4)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from .contract import DIGEST, FILES, INPUT, META_PREFIX, OUTPUT_IMAGE, OUTPUT_SPRITE, file_digest, finish_sprites
from .latent import latents
from .runtime import ORT_ERRORS, Session, open_session, shrink_arena

SHIPPED = Path(__file__).parent / "models"  # the default model, installed with the package


class ModelError(ValueError):
    """The model argument does not name a usable generator: missing, unreadable, damaged (its digest does not match),
    not ONNX, or not a generator. The message is one line, names the file and says what was expected."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    nz: int
    output: str  # OUTPUT_IMAGE (float32 NCHW in [-1, 1]) or OUTPUT_SPRITE (finished uint8 NHWC)
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    notice: str | None = None  # set when the file has no dcgan metadata and its shapes were used instead


def resolve_model(model: str | Path | None, fp16: bool = False, soft_alpha: bool = False) -> Path:
    """The ONNX file meant by `model`: a file, an export folder, a run folder (its export/), or None for the
    shipped model. In a folder: generator-rgba8.onnx by default (finished in its graph), generator.onnx for
    soft alpha, generator-fp16.onnx with fp16."""
    path = SHIPPED if model is None else Path(model)
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    if path.is_file():
        if fp16:
            raise ModelError("--fp16 picks generator-fp16.onnx from a folder; to use a file, pass that file")
        return path
    folder = path / "export" if (path / "export").is_dir() and not (path / FILES["fp32"]).exists() else path
    wanted = ["fp16"] if fp16 else ["fp32"] if soft_alpha else ["rgba8", "fp32"]
    for variant in wanted:
        if (folder / FILES[variant]).is_file():
            return folder / FILES[variant]
    names = " or ".join(FILES[v] for v in wanted)
    raise ModelError(f"{folder} has no {names}; export one with dcgan-export RUN_DIR --onnx")


def read_model(path: Path) -> bytes:
    """The bytes of the ONNX file at `path`, checked against the digest the exporter recorded in it (files from before
    there was one carry none and are taken as they are); ModelError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelError(f"{path} cannot be read: {err.strerror or err}") from err
    if not data:
        raise ModelError(f"{path} is empty, not an ONNX model")
    digest = file_digest(data)
    if digest is not None and digest[0] != digest[1]:
        raise ModelError(
            f"{path} is damaged: its bytes do not match the {DIGEST} recorded in it (a partial download or a bad "
            "copy?); export or copy it again"
        )
    return data


def inspect(session: Session, path: Path) -> ModelInfo:
    """Check that `session` runs a generator and read what it is; ModelError says what was expected."""
    inputs, outputs = session.session.get_inputs(), session.session.get_outputs()
    expected = (
        f"expected one input {INPUT} float32 [batch, nz] and one output, {OUTPUT_IMAGE} float32 [batch, 4, H, W] "
        f"or {OUTPUT_SPRITE} uint8 [batch, H, W, 4]"
    )
    described = [(x.name, x.type, x.shape) for x in (*inputs, *outputs)]
    got = f"got {len(inputs)} input(s) and {len(outputs)} output(s): {described}"
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{path} is not a sprite generator: {expected}; {got}")
    (inp,), (out,) = inputs, outputs
    shape = out.shape
    if inp.type != "tensor(float)" or len(inp.shape) != 2 or not isinstance(inp.shape[1], int):
        raise ModelError(f"{path} is not a sprite generator: {expected}; {got}")
    if out.type == "tensor(float)" and len(shape) == 4 and shape[1] == 4 and shape[2] == shape[3]:
        kind, size = OUTPUT_IMAGE, shape[2]
    elif out.type == "tensor(uint8)" and len(shape) == 4 and shape[3] == 4 and shape[1] == shape[2]:
        kind, size = OUTPUT_SPRITE, shape[1]
    else:
        raise ModelError(f"{path} is not a sprite generator: {expected}; {got}")
    try:
        found = session.session.get_modelmeta().custom_metadata_map
    except UnicodeDecodeError as err:  # text fields that are not UTF-8: damaged on the way
        raise ModelError(f"{path} is damaged: its metadata is not valid text; export or copy it again") from err
    meta = {k: v for k, v in found.items() if k.startswith(META_PREFIX)}
    notice = None
    if not meta:
        notice = (
            f"{path.name} carries no dcgan metadata; going by its shapes (nz {inp.shape[1]}, {size} px) "
            "and the standard latent recipe"
        )
    return ModelInfo(path, int(inp.shape[1]), kind, int(size), meta, notice)


def batched(seeds: Iterable[int], size: int) -> Iterator[list[int]]:
    it = iter(seeds)
    while chunk := list(islice(it, size)):
        yield chunk


class SpriteGenerator:
    """Sprites from an exported generator on onnxruntime. See the module docstring for an example.

    model: an ONNX file, an export folder or a run folder; None for the shipped model.
    provider: "auto" (CUDA when it can run, else the CPU, with `notice` saying why), "cuda" or "cpu".
    fp16: use generator-fp16.onnx from the folder. soft_alpha: keep the raw alpha instead of 0/255.
    threads: onnxruntime intra-op threads (None: one per physical core). arena: onnxruntime's CPU memory arena, quick,
    but it keeps its largest run's memory. arena_keep: with the arena, a run of more latents than this gives the
    arena's unused memory back when it ends (a server: small batches stay quick, sheets do not stay resident).
    """

    def __init__(self, model=None, provider: str = "auto", fp16: bool = False, soft_alpha: bool = False,
                 threads: int | None = None, batch_size: int = 64, arena: bool = True,
                 arena_keep: int | None = None):  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if arena_keep is not None and not arena:
            raise ValueError("arena_keep needs the arena")
        path = resolve_model(model, fp16=fp16, soft_alpha=soft_alpha)
        data = read_model(path)
        try:
            self.session = open_session(data, provider, threads, arena)
        except (*ORT_ERRORS, UnicodeDecodeError) as err:  # a file onnxruntime cannot parse or run
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{path} is not a loadable ONNX model ({first[:200]})") from err
        del data
        self.info = inspect(self.session, path)
        if soft_alpha and self.info.output == OUTPUT_SPRITE:
            raise ModelError(f"{path.name} has hard alpha built in; use generator.onnx for soft alpha")
        self.soft_alpha, self.batch_size = soft_alpha, batch_size
        self._device = "cuda" if self.session.on_cuda else "cpu"
        self.arena_keep = arena_keep
        self._shrink = shrink_arena() if arena_keep is not None else None

    @property
    def provider(self) -> str:
        return self.session.provider

    @property
    def notice(self) -> str | None:
        """Why the provider or model is not what was asked for, if it is not; None otherwise."""
        notes = [n for n in (self.session.notice, self.info.notice) if n]
        return "; ".join(notes) or None

    def generate(self, seeds: Iterable[int]) -> np.ndarray:
        """One batch: uint8 RGBA (len(seeds), H, W, 4), one sprite per seed, in order."""
        return self.from_latents(latents(seeds, self.info.nz))

    def from_latents(self, z: np.ndarray) -> np.ndarray:
        """One batch from latents float32 (B, nz) of one's own (a walk between seeds' latents, say)."""
        out = self.run(z)
        return out if self.info.output == OUTPUT_SPRITE else finish_sprites(out, hard_alpha=not self.soft_alpha)

    def run(self, z: np.ndarray) -> np.ndarray:
        """The model's own output for latents float32 (B, nz): `info.output`, unfinished."""
        binding = self.session.session.io_binding()  # on CUDA, z goes to and sprites come from the device
        binding.bind_cpu_input(INPUT, z)
        binding.bind_output(self.info.output, self._device)
        big = self.arena_keep is not None and len(z) > self.arena_keep
        self.session.session.run_with_iobinding(binding, self._shrink if big else None)
        return binding.copy_outputs_to_cpu()[0]

    def batches(self, seeds: Iterable[int]) -> Iterator[tuple[list[int], np.ndarray]]:
        """(seeds, sprites) per batch of `batch_size`; memory stays bounded for any number of seeds."""
        for chunk in batched(seeds, self.batch_size):
            yield chunk, self.generate(chunk)

    def __call__(self, seeds: Iterable[int]) -> np.ndarray:
        """All sprites for `seeds` at once: uint8 RGBA (N, H, W, 4)."""
        parts = [sprites for _, sprites in self.batches(seeds)]
        size = self.info.size
        return np.concatenate(parts) if parts else np.zeros((0, size, size, 4), np.uint8)
