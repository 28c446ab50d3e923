"""`dcgan-export`: checkpoint -> TorchScript / ONNX. The exporters themselves arrive with the export stage."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Export a trained generator to TorchScript and ONNX (fp32 and fp16).

    Not available in this version: the export stage is not built yet. Train with `dcgan-train`; its
    checkpoints (RUN_DIR/checkpoint.pt) carry everything the exporter will need.
    """
    raise click.ClickException("dcgan-export is not available in this version yet; see README.md, 'Export'")
