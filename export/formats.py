"""The export formats: one small function per format and a table that lists them.

Each entry says how to wrap the generator (float32 contract, fp16 inside, uint8 sprite head), how to write
the file, and how to load it back and run it, which the parity check uses.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dcgan.serve.contract import (
    DIGEST,
    FILES,
    INPUT,
    META_PREFIX,
    OUTPUT_IMAGE,
    OUTPUT_SPRITE,
    TORCHSCRIPT_EXTRA_FILE,
    stamp_digest,
)
from dcgan.serve.files import write_atomic

from .modules import HalfPrecision, SpriteHead

OPSET = 18  # pinned: onnxruntime >= 1.14 implements it
IR_VERSION = 9  # what onnxruntime 1.17, the oldest this package supports, can load


@dataclass(frozen=True)
class Format:
    variant: str  # key of dcgan.serve.contract.FILES
    family: str  # "onnx" | "torchscript"
    fp16: bool
    output: str  # output name: image (float32 NCHW) or sprite (uint8 NHWC)
    wrap: Callable[[nn.Module], nn.Module]
    description: str

    @property
    def filename(self) -> str:
        return FILES[self.variant]


def _as_is(generator: nn.Module) -> nn.Module:
    return generator


# Batch norm is folded into the transposed convolutions by the exporter's graph optimiser. (Re-expressing
# them as sub-pixel convolutions measured slower under onnxruntime's CPU provider: 233 against 277 sprites/s
# at batch 64, width 64, benchmarks/sample_speed.py.)
FORMATS: dict[str, Format] = {
    f.variant: f
    for f in [
        Format("fp32", "onnx", False, OUTPUT_IMAGE, _as_is, "ONNX, float32"),
        Format("fp16", "onnx", True, OUTPUT_IMAGE, HalfPrecision, "ONNX, fp16 weights and arithmetic, float32 I/O"),
        Format("rgba8", "onnx", False, OUTPUT_SPRITE, SpriteHead, "ONNX, finished uint8 RGBA sprites (NHWC)"),
        Format("torchscript", "torchscript", False, OUTPUT_IMAGE, _as_is, "TorchScript (traced, frozen), float32"),
        Format("torchscript-fp16", "torchscript", True, OUTPUT_IMAGE, HalfPrecision, "TorchScript, fp16 inside (CUDA)"),
    ]
}


def select(onnx: bool, torchscript: bool, fp16: bool) -> list[Format]:
    """The formats a command line asks for; neither family flag means both."""
    families = {name for name, wanted in (("onnx", onnx), ("torchscript", torchscript)) if wanted}
    families = families or {"onnx", "torchscript"}
    return [f for f in FORMATS.values() if f.family in families and (fp16 or not f.fp16)]


# -- writers --------------------------------------------------------------------------------------------


def write(fmt: Format, generator: nn.Module, nz: int, path: Path, metadata: dict[str, str]) -> None:
    """Wrap `generator` (eval mode, float32, CPU) for `fmt` and write it to `path`."""
    module = fmt.wrap(generator).eval()
    example = torch.zeros(2, nz)
    writer = _write_onnx if fmt.family == "onnx" else _write_torchscript
    writer(module, example, path, fmt.output, metadata)


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path, output: str, metadata: dict[str, str]) -> None:
    import onnx

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on dynamic_axes and deprecations
        raw = Path(tmp) / "raw.onnx"
        dynamo = _has_onnxscript()
        torch.onnx.export(
            module,
            (example,),
            raw,
            input_names=[INPUT],
            output_names=[output],
            dynamic_axes={INPUT: {0: "batch"}, output: {0: "batch"}},
            opset_version=OPSET,
            dynamo=dynamo,
            **({"external_data": False, "verbose": False} if dynamo else {}),  # one self-contained file
        )
        model = onnx.load(raw)
    model.ir_version = IR_VERSION
    model.producer_name = "dcgan-pokemon"
    model.producer_version = metadata.get(META_PREFIX + "package_version", "")
    model.doc_string = (
        f"DCGAN Pokémon sprite generator. Input {INPUT}: float32 [batch, nz], one latent per seed "
        f"({metadata.get(META_PREFIX + 'latent_recipe', '')}). Output {output}: see metadata_props."
    )
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key=DIGEST, value="0" * 64)  # stamped below, once the bytes are final
    onnx.checker.check_model(model, full_check=True)
    data = stamp_digest(model.SerializeToString())
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def _has_onnxscript() -> bool:
    """The torch.export-based exporter needs onnxscript; without it (a bare CUDA box, say) fall back to the
    TorchScript-based exporter, which gives an equivalent graph that keeps batch norm as separate nodes."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, output: str, metadata: dict) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the fixed z.dim() branch
        traced = torch.jit.freeze(torch.jit.trace(module, example))
    extra = {TORCHSCRIPT_EXTRA_FILE: json.dumps(metadata, indent=1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation: the README says so once
        write_atomic(path, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files=extra))


# -- runners (for the parity check) ---------------------------------------------------------------------


def onnx_session(path: Path, provider: str = "cpu", threads: int = 0):
    """The sampler's own kind of onnxruntime session (dcgan.serve.runtime) on exactly `provider`, float32 without TF32
    on CUDA; None where that provider does not come up."""
    from dcgan.serve.runtime import make_session

    return make_session(path, provider, threads or None)


def run_onnx(session, z: np.ndarray) -> np.ndarray:
    return session.run(None, {INPUT: z})[0]


def load_torchscript(path: Path, device: str = "cpu"):
    """A TorchScript file is code: load only files you made or trust (this one is ours, just written)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location=device).eval()


@contextlib.contextmanager
def full_fp32():
    """float32 on CUDA computed in float32: torch lets cuDNN convolutions use TF32 by default (onnxruntime's CUDA
    provider too, which dcgan.serve.runtime.CUDA_OPTIONS turns off)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def run_torchscript(module, z: np.ndarray, device: str = "cpu") -> np.ndarray:
    with torch.no_grad(), full_fp32():
        return module(torch.from_numpy(z).to(device)).float().cpu().numpy()
