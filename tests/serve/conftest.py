"""A tiny exported generator for the serve tests (built once per session; the export side needs torch)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """An export folder (generator.onnx, -fp16.onnx, -rgba8.onnx) of a small calibrated random generator."""
    from dcgan.export import formats
    from dcgan.export.demo import demo_checkpoint
    from dcgan.export.exporter import export_checkpoint
    from dcgan.train.config import ModelConfig

    root = tmp_path_factory.mktemp("tiny")
    ckpt = demo_checkpoint(root / "run" / "checkpoint.pt", ModelConfig(ngf=8, ndf=8))
    export_checkpoint(ckpt, None, formats.select(onnx=True, torchscript=False, fp16=True), log=lambda _m: None)
    return root / "run" / "export"
