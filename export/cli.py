"""`dcgan-export`: a training checkpoint -> TorchScript and ONNX generators, checked against PyTorch, and with
--triton a Triton model repository of the ONNX files (export/triton.py).

Importing this module needs no torch, so a missing `train` extra gets a one-line answer.
"""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.train.dependencies import require_torch

from .triton import DEVICES


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_", is_flag=True, help="ONNX files: generator.onnx, -fp16.onnx, -rgba8.onnx.")
@click.option("--torchscript", is_flag=True, help="TorchScript files: generator.torchscript, -fp16.torchscript.")
@click.option("--fp16/--no-fp16", default=True, help="Also write the fp16 variants.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder. Default: SOURCE/export.")
@click.option(
    "--overwrite", is_flag=True, help="Replace model files an earlier export left in --out, and model folders in REPO."
)
@click.option(
    "--triton",
    "triton_repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    metavar="REPO",
    help="Also write a Triton model repository: REPO/dcgan-rgba8/config.pbtxt and 1/model.onnx. Implies --onnx.",
)
@click.option("--triton-float", is_flag=True, help="Put generator.onnx in REPO too, as dcgan-fp32.")
@click.option(
    "--triton-device",
    type=click.Choice(list(DEVICES)),
    default="cpu",
    help="Where Triton runs the models: instance group KIND_CPU or KIND_GPU.",
)
@click.option("--shipped", is_flag=True, help="With --triton: package the shipped generator; no SOURCE.")
@click.option("-q", "--quiet", is_flag=True, help="Only the parity table and the result.")
def main(
    source: Path | None,
    onnx_: bool,
    torchscript: bool,
    fp16: bool,
    out: Path | None,
    overwrite: bool,
    triton_repo: Path | None,
    triton_float: bool,
    triton_device: str,
    shipped: bool,
    quiet: bool,
):
    """Export the generator of SOURCE (a run folder or checkpoint; default: the newest run under runs/).

    With neither --onnx nor --torchscript, both are written. Every file is loaded back and run against the
    PyTorch generator on fresh seeds; the files are published only if all agree within tolerance, and
    export.json records what was exported from what, the parity table, sizes and sha256s.

    With --triton, SOURCE may also be an export folder (one with no checkpoint): its ONNX files go into the
    repository as they are, with no new export. The repository serves on Triton's container or KServe
    (docs/scale.md).

    \b
    Examples:
      dcgan-export --onnx                       # newest run, ONNX fp32 / fp16 / rgba8
      dcgan-export runs/demo --onnx --torchscript --out models/
      dcgan-export runs/demo --triton repo/     # export, then repo/dcgan-rgba8/
      dcgan-export --shipped --triton repo/ --triton-device gpu

    A TorchScript file is code: torch.jit.load runs what it contains. Load only files you made or trust.
    """
    require_torch("dcgan-export")
    from dcgan.serve.contract import SERVED_NAMES
    from dcgan.serve.generator import SHIPPED
    from dcgan.train.checkpoint import CHECKPOINT_NAME, CheckpointError

    from . import formats, triton
    from .exporter import ExportError, export_checkpoint, newest_run
    from .parity import table
    from .triton import RepositoryError

    if shipped and triton_repo is None:
        raise click.UsageError("--shipped goes with --triton REPO: the shipped generator is already exported")
    if shipped and source is not None:
        raise click.UsageError("--shipped packages the shipped generator: give it no SOURCE")
    variants = ["rgba8", "fp32"] if triton_float else ["rgba8"]

    def repository(folder: Path) -> None:
        try:
            models = triton.repository_models(folder, variants)
            triton.write_repository(triton_repo, models, triton_device, overwrite=overwrite)
        except RepositoryError as err:
            raise click.ClickException(str(err)) from err
        wrote = ", ".join(f"{name} ({path})" for name, path in models.items())
        click.echo(f"Wrote the Triton model repository {triton_repo}, {DEVICES[triton_device]}: {wrote}")

    if triton_repo is not None:
        try:  # before a minute of export, not after it
            triton.check_free(triton_repo, [SERVED_NAMES[v] for v in variants], overwrite)
        except RepositoryError as err:
            raise click.ClickException(str(err)) from err
        if shipped:
            return repository(SHIPPED)
        if source is not None and source.is_dir() and not (source / CHECKPOINT_NAME).exists():
            return repository(source)  # an export folder: its files as they are

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
        chosen = formats.select(onnx_ or triton_repo is not None, torchscript, fp16)
        result = export_checkpoint(source, out, chosen, overwrite=overwrite, log=log)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="SOURCE") from err
    except ExportError as err:
        if err.rows:
            click.echo(table(err.rows), err=True)
        raise click.ClickException(str(err)) from err
    click.echo(table(result.parity))
    sizes = ", ".join(f"{name} {info['bytes'] / 1e6:.1f} MB" for name, info in result.files.items())
    click.echo(f"Wrote {sizes}, and {result.manifest.name}, to {result.out_dir}")
    if triton_repo is not None:
        repository(result.out_dir)
