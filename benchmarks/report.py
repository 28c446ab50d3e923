"""What every benchmark here shares: naming the machine and publishing its table."""

from __future__ import annotations

import platform
from pathlib import Path

import click


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def publish(lines: list[str], out: Path) -> None:
    """Print the table and write it to `out`."""
    text = "\n".join(lines) + "\n"
    click.echo(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"written to {out}")
