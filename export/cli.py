"""`dcgan-export`: a training checkpoint -> TorchScript and ONNX generators, checked against PyTorch.

Importing this module needs no torch, so a missing `train` extra gets a one-line answer.
"""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.train.dependencies import require_torch


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_", is_flag=True, help="ONNX files: generator.onnx, -fp16.onnx, -rgba8.onnx.")
@click.option("--torchscript", is_flag=True, help="TorchScript files: generator.torchscript, -fp16.torchscript.")
@click.option("--fp16/--no-fp16", default=True, help="Also write the fp16 variants.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder. Default: SOURCE/export.")
@click.option("--overwrite", is_flag=True, help="Replace model files an earlier export left in --out.")
@click.option("-q", "--quiet", is_flag=True, help="Only the parity table and the result.")
def main(
    source: Path | None, onnx_: bool, torchscript: bool, fp16: bool, out: Path | None, overwrite: bool, quiet: bool
):
    """Export the generator of SOURCE (a run folder or checkpoint; default: the newest run under runs/).

    With neither --onnx nor --torchscript, both are written. Every file is loaded back and run against the
    PyTorch generator on fresh seeds; the files are published only if all agree within tolerance, and
    export.json records what was exported from what, the parity table, sizes and sha256s.

    \b
    Examples:
      dcgan-export --onnx                       # newest run, ONNX fp32 / fp16 / rgba8
      dcgan-export runs/demo --onnx --torchscript --out models/

    A TorchScript file is code: torch.jit.load runs what it contains. Load only files you made or trust.
    """
    require_torch("dcgan-export")
    from dcgan.train.checkpoint import CheckpointError

    from . import formats
    from .exporter import ExportError, export_checkpoint, newest_run
    from .parity import table

    if source is None:
        source = newest_run()
        if source is None:
            raise click.UsageError(
                "no SOURCE given and no run with a checkpoint under runs/; train one with dcgan-train"
            )
        click.echo(f"Exporting {source} (the newest run under runs/)")
    elif not source.exists():
        raise click.BadParameter(f"{source} does not exist", param_hint="SOURCE")
    log = (lambda _msg: None) if quiet else click.echo
    try:
        result = export_checkpoint(source, out, formats.select(onnx_, torchscript, fp16), overwrite=overwrite, log=log)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="SOURCE") from err
    except ExportError as err:
        if err.rows:
            click.echo(table(err.rows), err=True)
        raise click.ClickException(str(err)) from err
    click.echo(table(result.parity))
    sizes = ", ".join(f"{name} {info['bytes'] / 1e6:.1f} MB" for name, info in result.files.items())
    click.echo(f"Wrote {sizes}, and {result.manifest.name}, to {result.out_dir}")
