"""ONNX files -> a Triton Inference Server model repository, which KServe's Triton runtime serves as it is.

    REPO/<name>/config.pbtxt     platform onnxruntime_onnx, max_batch_size, tensors, dynamic batching, instances
    REPO/<name>/1/model.onnx     the ONNX file, byte for byte

Every tensor's name, data type and dims come from the ONNX graph itself, so the config cannot drift from the file.
Nothing here runs Triton: its ONNX backend is not pip-installable, so the tests check the config against Triton's
own ModelConfig protobuf instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dcgan.serve.contract import FILES, SERVED_NAMES

MAX_BATCH_SIZE = 64  # like SpriteGenerator's batches: dynamic batching merges requests up to this many rows
VERSION = "1"
# KIND_CPU by default: it loads on any machine, a container started without GPUs included. KIND_AUTO would pick
# the GPU where Triton sees one, a choice made out of sight; here the device is asked for by name.
DEVICES = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
# ONNX TensorProto data type names -> Triton's (model_config.proto DataType)
TRITON_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FLOAT16": "TYPE_FP16",
    "FLOAT": "TYPE_FP32",
    "DOUBLE": "TYPE_FP64",
    "STRING": "TYPE_STRING",
    "BFLOAT16": "TYPE_BF16",
}


class RepositoryError(RuntimeError):
    """The repository could not be written; the message says why in one line."""


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str  # Triton's name: TYPE_FP32, TYPE_UINT8, ...
    dims: tuple[int, ...]  # without the batch dimension; -1 where the graph leaves a size open


def graph_tensors(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """The inputs and outputs of the ONNX graph in `path`, batch dimension first and dropped."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ... for a file it cannot read
        raise RepositoryError(f"{path} is not a readable ONNX file: {err}") from err
    graph = model.graph
    weights = {t.name for t in graph.initializer}  # older exporters list the weights among the inputs too

    def tensor(value) -> Tensor:
        kind = value.type.tensor_type
        dtype = onnx.TensorProto.DataType.Name(kind.elem_type)
        if dtype not in TRITON_TYPES:
            raise RepositoryError(f"{path.name}: tensor {value.name} is {dtype}, which Triton has no type for")
        dims = list(kind.shape.dim)
        if not dims or dims[0].HasField("dim_value"):
            raise RepositoryError(
                f"{path.name}: tensor {value.name} has no open batch dimension first, which max_batch_size needs"
            )
        sizes = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:])
        return Tensor(value.name, TRITON_TYPES[dtype], sizes)

    inputs = [tensor(v) for v in graph.input if v.name not in weights]
    return inputs, [tensor(v) for v in graph.output]


def config_text(
    name: str, inputs: list[Tensor], outputs: list[Tensor], max_batch_size: int = MAX_BATCH_SIZE, device: str = "cpu"
) -> str:
    """config.pbtxt for one ONNX model (protobuf text format of Triton's ModelConfig)."""

    def block(field: str, tensors: list[Tensor]) -> str:
        entries = [
            f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {", ".join(map(str, t.dims))} ]'
            for t in tensors
        ]
        return f"{field} [\n" + "\n  },\n".join(entries) + "\n  }\n]\n"

    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
        + block("input", inputs)
        + block("output", outputs)
        + "dynamic_batching { }\n"
        + f"instance_group [\n  {{\n    count: 1\n    kind: {DEVICES[device]}\n  }}\n]\n"
    )


def repository_models(folder: Path, variants: list[str]) -> dict[str, Path]:
    """{model name: ONNX file} for `variants` of an export folder; RepositoryError names a missing file."""
    models = {SERVED_NAMES[v]: folder / FILES[v] for v in variants}
    missing = [p.name for p in models.values() if not p.is_file()]
    if missing:
        raise RepositoryError(f"{folder} has no {' or '.join(missing)}; export it with dcgan-export RUN --onnx")
    return models


def check_free(repo: Path, names: list[str], overwrite: bool = False) -> None:
    """Refuse model folders that already exist in `repo`, unless `overwrite`."""
    taken = [n for n in names if (Path(repo) / n).exists()]
    if taken and not overwrite:
        raise RepositoryError(f"{repo} already has {', '.join(taken)}; pass --overwrite to replace them")


def write_repository(
    repo: Path,
    models: dict[str, Path],
    device: str = "cpu",
    max_batch_size: int = MAX_BATCH_SIZE,
    overwrite: bool = False,
) -> list[Path]:
    """Write REPO/<name>/config.pbtxt and REPO/<name>/1/model.onnx for each {name: ONNX file} in `models`.

    Each model folder is built beside its place and renamed into it, so it appears whole or not at all; an existing
    one is refused unless `overwrite`, and then replaced whole (no version folder of the old one stays behind).
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    repo = Path(repo)
    check_free(repo, list(models), overwrite)
    configs = {name: config_text(name, *graph_tensors(path), max_batch_size, device) for name, path in models.items()}
    written = []
    try:
        repo.mkdir(parents=True, exist_ok=True)
        for name, path in models.items():
            staging, old = repo / f".{name}.staging-{os.getpid()}", repo / f".{name}.old-{os.getpid()}"
            try:
                (staging / VERSION).mkdir(parents=True)
                shutil.copyfile(path, staging / VERSION / "model.onnx")
                (staging / "config.pbtxt").write_text(configs[name])
                target = repo / name
                if target.exists():  # overwrite: only now, with the new folder complete
                    os.replace(target, old)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
            written.append(target)
    except OSError as err:
        raise RepositoryError(f"writing the model repository {repo} failed: {err.strerror or err}") from err
    return written
