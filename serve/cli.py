"""`dcgan-sample`: sprites from an ONNX generator on onnxruntime. The sampler arrives with the serve stage."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Generate sprites with an exported ONNX generator on onnxruntime (CUDA when present, else CPU).

    Not available in this version: the sampler is not built yet. `dcgan-train` writes sample grids of
    the generator as it trains (RUN_DIR/grids/).
    """
    raise click.ClickException("dcgan-sample is not available in this version yet; see README.md, 'Sample'")
