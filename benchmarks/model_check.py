"""What checking a model file's digest costs, against a cold `dcgan-sample -n 1`, side by side in one run.

    python benchmarks/model_check.py --rounds 7

The shipped generator-rgba8.onnx is copied twice into a temporary folder: as it is, and stamped with the digest
that dcgan-export records (dcgan.sha256; the same graph and weights). Rows: the check alone (read the file, hash
it; median of 20), then `dcgan-sample -n 1` as a fresh process on each copy, alternating, median wall time. The
table goes to benchmarks/results/model_check.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import onnx
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script

from dcgan.serve.contract import DIGEST, stamp_digest
from dcgan.serve.generator import SHIPPED, read_model

BIN = Path(sys.executable).parent


def stamped_copy(source: Path, dest: Path) -> Path:
    model = onnx.load(str(source))
    model.metadata_props.add(key=DIGEST, value="0" * 64)
    dest.write_bytes(stamp_digest(model.SerializeToString()))
    return dest


def cold_sample(model: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "dcgan-sample"), "-n", "1", "--overwrite", "-q", "--provider", "cpu",
                    "--model", str(model), str(out)], check=True)  # fmt: skip
    return time.perf_counter() - started


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=7, help="Cold runs of each copy, alternating.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "model_check.md")
def main(rounds: int, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain = tmp / "plain" / "generator-rgba8.onnx"
        plain.parent.mkdir()
        plain.write_bytes((SHIPPED / "generator-rgba8.onnx").read_bytes())
        (tmp / "stamped").mkdir()
        stamped = stamped_copy(plain, tmp / "stamped" / "generator-rgba8.onnx")
        checks = []
        for _ in range(20):
            started = time.perf_counter()
            read_model(stamped)
            checks.append(time.perf_counter() - started)
        times = {"plain": [], "stamped": []}
        for _ in range(rounds):
            for name, path in (("plain", plain), ("stamped", stamped)):
                times[name].append(cold_sample(path, tmp / f"out-{name}"))
        size = stamped.stat().st_size
    check = statistics.median(checks)
    cold = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"# Model digest check, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"CPU: {cpu_name()}; the shipped generator-rgba8.onnx, {size / 1e6:.1f} MB; `python benchmarks/model_check.py "
        f"--rounds {rounds}`; medians.",
        "",
        "| what | ms | of a cold `dcgan-sample -n 1` |",
        "|---|---:|---:|",
        f"| read and check the digest (sha256 of the file) | {check * 1e3:.1f} | {check / cold['stamped']:.1%} |",
        f"| cold `dcgan-sample -n 1`, file with a digest | {cold['stamped'] * 1e3:.0f} | 100% |",
        f"| cold `dcgan-sample -n 1`, the same file without | {cold['plain'] * 1e3:.0f} | "
        f"{cold['plain'] / cold['stamped']:.1%} |",
    ]
    publish(lines, out)


if __name__ == "__main__":
    main()
