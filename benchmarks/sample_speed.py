"""Sampling throughput on this machine, every path side by side in one run, against the CPU's ceiling.

    python benchmarks/sample_speed.py                        # dcgan-train's default generator, untrained
    python benchmarks/sample_speed.py --generator resize --ngf 16
    python benchmarks/sample_speed.py --checkpoint runs/ship --rounds 7   # a trained run instead

Rows: PyTorch eager, TorchScript, onnxruntime fp32 / fp16 / rgba8 at batch 1 and 64, sprites/s as the median
of alternating rounds; then `dcgan-sample -n 4096` end to end with PNGs written; and `dcgan-sample -n 1`'s
own time (its wall time minus a bare interpreter's). The ceiling is the measured fp32 FLOP rate of a
2048 x 2048 MatMul through onnxruntime times the generator's FLOPs per sprite; each row shows its share.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import onnxruntime as ort
import torch
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script

from dcgan.export import formats
from dcgan.export.exporter import export_checkpoint
from dcgan.serve.latent import latents
from dcgan.train.checkpoint import load_checkpoint, load_generator
from dcgan.train.config import GENERATORS, ModelConfig
from dcgan.train.demo import demo_checkpoint
from dcgan.train.model import generator_flops

BIN = Path(sys.executable).parent


def matmul_gflops(n: int = 2048, rounds: int = 7) -> float:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {x: np.random.default_rng(0).random((n, n), dtype=np.float32) for x in "ab"}
    session.run(None, feeds)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def rate(fn, z: np.ndarray, min_sprites: int = 128) -> float:
    """Sprites/s of fn(z), over at least `min_sprites` sprites."""
    calls = max(1, -(-min_sprites // len(z)))
    start = time.perf_counter()
    for _ in range(calls):
        fn(z)
    return calls * len(z) / (time.perf_counter() - start)


def runners(export_dir: Path, generator) -> dict:
    def onnx_runner(path):
        # onnxruntime's defaults (threads spin between runs): the raw rate, the stricter yardstick for
        # dcgan-sample, whose sessions turn spinning off to leave the cores to its PNG encoder
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda z: session.run(None, {"z": z})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(export_dir / formats.FILES["torchscript"]))

    def torch_runner(module):
        def run(z):
            with torch.inference_mode():
                module(torch.from_numpy(z))

        return run

    return {
        "PyTorch eager": torch_runner(generator),
        "TorchScript": torch_runner(scripted),
        "ORT fp32": onnx_runner(export_dir / formats.FILES["fp32"]),
        "ORT fp16 (CPU computes fp32)": onnx_runner(export_dir / formats.FILES["fp16"]),
        "ORT rgba8": onnx_runner(export_dir / formats.FILES["rgba8"]),
    }


def end_to_end(export_dir: Path, n: int, out: Path) -> float:
    result = subprocess.run(
        [str(BIN / "dcgan-sample"), "-n", str(n), "--model", str(export_dir), "--overwrite", "-q", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(re.search(r"\(([\d.]+) sprites/s\)", result.stdout).group(1))


def wall(cmd: list[str], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@click.command(context_settings={"show_default": True})
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Model to measure. Default: a calibrated random generator of --generator and --ngf.",
)
@click.option("--generator", "kind", type=click.Choice(GENERATORS), default=ModelConfig().generator)
@click.option("--ngf", type=click.IntRange(min=1), default=ModelConfig().ngf)  # fmt: skip
@click.option("--rounds", type=click.IntRange(min=1), default=7)
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "sample_speed.md")
def main(checkpoint, kind, ngf, rounds, out):
    work = Path(tempfile.mkdtemp(prefix="sample-speed-"))
    ckpt = checkpoint or demo_checkpoint(work / "run" / "checkpoint.pt", ModelConfig(ngf=ngf, generator=kind))
    export_dir = work / "export"
    export_checkpoint(ckpt, export_dir, list(formats.FORMATS.values()), log=lambda _m: None)
    generator = load_generator(load_checkpoint(ckpt))
    flops = generator_flops(generator.cfg)

    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / flops
    click.echo(f"MatMul 2048^2 through onnxruntime: {gflops:.0f} GFLOP/s -> ceiling {ceiling:.0f} sprites/s")
    paths = runners(export_dir, generator)
    results = {(name, b): [] for name in paths for b in (1, 64)}
    zs = {b: latents(range(b), generator.cfg.nz) for b in (1, 64)}
    for fn in paths.values():  # warm-up
        for z in zs.values():
            fn(z)
    for r in range(rounds):
        for (name, b), values in results.items():
            values.append(rate(paths[name], zs[b]))
        click.echo(f"round {r + 1}/{rounds} done")
    e2e = [end_to_end(export_dir, 4096, work / "out") for _ in range(3)]
    own = wall(
        [str(BIN / "dcgan-sample"), "-n", "1", "--model", str(export_dir), "--overwrite", "-q", str(work / "one")]
    )
    bare = wall([sys.executable, "-c", "pass"])

    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [
        f"# Sampling speed, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads; onnxruntime {ort.__version__}, torch "
        f"{torch.__version__}; {generator.cfg.generator} generator, ngf {generator.cfg.ngf}, {flops / 1e9:.3f} "
        "GFLOP a sprite; "
        f"{rounds} alternating rounds, medians.",
        f"Ceiling: 2048^2 fp32 MatMul through onnxruntime at {gflops:.0f} GFLOP/s -> {ceiling:.0f} sprites/s.",
        "",
        "| path | batch | sprites/s | of ceiling |",
        "|---|---:|---:|---:|",
    ]
    for (name, b), v in med.items():
        lines.append(f"| {name} | {b} | {v:.0f} | {v / ceiling:.0%} |")
    e2e_med = statistics.median(e2e)
    lines.append(f"| `dcgan-sample -n 4096` (rgba8, PNGs written) | 64 | {e2e_med:.0f} | {e2e_med / ceiling:.0%} |")
    lines += [
        "",
        f"End to end is {e2e_med / med[('ORT rgba8', 64)]:.0%} of the raw rate of the same file (ORT rgba8, batch 64).",
        f"`dcgan-sample -n 1`: {own:.2f} s wall, {own - bare:.2f} s of its own "
        f"(a bare `python -c pass` takes {bare:.2f} s).",
        "",
        f"Reproduce: `python benchmarks/sample_speed.py --rounds {rounds}"
        + (f" --checkpoint {checkpoint}`" if checkpoint else f" --generator {kind} --ngf {ngf}`"),
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
