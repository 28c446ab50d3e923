"""Shard throughput of dcgan-sample and the v2 protocol's infer route against the PNG route, in one run.

    python benchmarks/scale_speed.py                   # the shipped model on the CPU
    python benchmarks/scale_speed.py -n 4096 --requests 400

1. `dcgan-sample -n N` as one process (--threads 2), against `--shard 0/2` and `--shard 1/2` run at once
   (--threads 1 each) into one folder: sprites/s from start to the last exit.
2. A dcgan-serve (the same Server and App, in this process, shipped model) and one keep-alive client:
   /sprite/SEED.png, POST /v2/models/dcgan-rgba8/infer with 1 sprite, and with 16 (the default budget's largest):
   requests/s and sprites/s, each request new seeds.
3. Training, the shipped recipe: one process (all cores) against two gloo ranks (the cores shared out), each rank
   batch 32, the ranks meeting as under torchrun (gpu_check.py's point 5, with gloo on the CPU): images/s.
The table goes to benchmarks/results/scale_speed.md.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
from gpu_check import distributed_check
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script

from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.latent import latents
from dcgan.serve.server import App, Server

BIN = Path(sys.executable).parent


def shard_rates(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([BIN / "dcgan-sample", "-n", str(n), "-q", "--threads", "2", f"{tmp}/one"], check=True)
        one = n / (time.perf_counter() - started)
        started = time.perf_counter()
        procs = [subprocess.Popen([BIN / "dcgan-sample", "-n", str(n), "-q", "--threads", "1", "--shard", f"{i}/2",
                                   f"{tmp}/two"]) for i in range(2)]  # fmt: skip
        assert all(p.wait() == 0 for p in procs)
        two = n / (time.perf_counter() - started)
        assert len(list(Path(f"{tmp}/two").iterdir())) == n
    return one, two


def http_rate(port: int, requests: int, batch: int | None) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    for i in range(requests):
        if batch is None:
            conn.request("GET", f"/sprite/{10_000 + i}.png")
        else:
            z = latents(range(20_000 + i * batch, 20_000 + (i + 1) * batch), 100)
            body = {"inputs": [{"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.ravel().tolist()}]}
            conn.request("POST", "/v2/models/dcgan-rgba8/infer", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, data[:200]
        if batch is not None:
            np.asarray(json.loads(data)["outputs"][0]["data"], np.uint8)  # what a client does with the answer
    conn.close()
    return requests / (time.perf_counter() - started)


@click.command()
@click.option("-n", "count", default=2048, show_default=True, help="Sprites for the shard comparison.")
@click.option("--requests", default=200, show_default=True, help="Requests per HTTP row.")
def main(count: int, requests: int) -> None:
    one, two = shard_rates(count)
    server = Server(("127.0.0.1", 0), App(SpriteGenerator(None, threads=2), 1024), quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    http_rate(port, 5, None)  # warm up
    rows = [(name, http_rate(port, requests if batch in (None, 1) else requests // 4, batch), batch or 1)
            for name, batch in (("GET /sprite/SEED.png", None), ("POST v2 infer, 1 sprite", 1),
                                ("POST v2 infer, 16 sprites", 16))]  # fmt: skip
    server.shutdown()
    with tempfile.TemporaryDirectory() as tmp:
        trained, problems = distributed_check(Path(tmp), "gloo")
    if problems:
        raise SystemExit("; ".join(problems))
    lines = [
        f"# scale_speed ({datetime.now(timezone.utc):%Y-%m-%d}, {cpu_name()}, shipped model, CPU)",
        "",
        f"`python benchmarks/scale_speed.py -n {count} --requests {requests}`",
        "",
        "| run | sprites/s |",
        "|---|---:|",
        f"| dcgan-sample -n {count}, one process, 2 threads | {one:.0f} |",
        f"| --shard 0/2 and 1/2 at once, 1 thread each | {two:.0f} |",
        "",
        "| route (one keep-alive client) | requests/s | sprites/s |",
        "|---|---:|---:|",
        *(f"| {name} | {rate:.1f} | {rate * k:.0f} |" for name, rate, k in rows),
        "",
        "| training (bf16 where the CPU has it natively) | images/s |",
        "|---|---:|",
        *(f"| {name.split(' (')[0]} | {rate:.1f} |" for name, _, rate in trained),
    ]
    publish(lines, Path(__file__).parent / "results" / "scale_speed.md")


if __name__ == "__main__":
    main()
