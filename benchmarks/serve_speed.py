"""dcgan-serve under load, side by side with the offline dcgan-sample rate, in one run on this machine.

    python benchmarks/serve_speed.py                            # the shipped model on the CPU
    python benchmarks/serve_speed.py --rounds 5 --requests 400  # steadier

1. `dcgan-sample -n 1024` (its own sprites/s line): "offline".
2. `dcgan-serve` with the shipped model: /sprite/SEED.png from 1, 8, 32 and 64 concurrent clients (threads in
   this process), each request a new seed, over keep-alive connections and with a new connection per request;
   requests/s and p50/p99 latency. And the same server code with each request run alone (batch 1, as before
   batching), at 1 and 32 clients.
   Each of these runs once a round, alternating, for --rounds rounds; the table has their medians.
3. Memory of the server process (VmRSS): after start and a few sprites; at its peak and right after a burst of
   sheets (the page's 64 sprites at scale 2, and sheets and walks at the cost budget) from 8 clients that retry
   a 503 at once; the same burst on the server without its memory settings; and the time and peak of one
   request at the budget, alone.
The table goes to benchmarks/results/serve_speed.md.
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import click
from report import cpu_name, publish  # benchmarks/ is on sys.path when run as a script

BIN = Path(sys.executable).parent
# The server's own code with each request run alone: what /sprite/N.png did before requests were joined.
UNBATCHED = """
import sys
from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.server import App, Server
gen = SpriteGenerator(provider="cpu")
server = Server(("127.0.0.1", 0), App(gen), quiet=True, max_connections=128)
print(f"Serving at http://127.0.0.1:{server.server_address[1]}/", flush=True)
server.serve_forever()
"""
# The server as it is, less its two memory settings: onnxruntime's CPU arena kept whole, glibc's malloc as it is.
KEEPS_MEMORY = """
from dcgan.serve.batcher import Batcher
from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.server import App, Server
gen = SpriteGenerator(provider="cpu")
server = Server(("127.0.0.1", 0), App(gen, batcher=Batcher(gen)), quiet=True, max_connections=128)
print(f"Serving at http://127.0.0.1:{server.server_address[1]}/", flush=True)
server.serve_forever()
"""


class Served:
    """A server process on a free port, stopped on the way out."""

    def __init__(self, cmd: list[str]):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("the server did not start")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def fetch(conn: http.client.HTTPConnection, path: str, keep_alive: bool) -> int:
    conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
    response = conn.getresponse()
    response.read()
    return response.status


def load(port: int, clients: int, requests: int, keep_alive: bool, first_seed: int) -> dict:
    """`requests` sprite requests from `clients` threads; requests/s and latency percentiles (ms)."""
    counter = iter(range(first_seed, first_seed + requests))
    lock = threading.Lock()
    latencies: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                seed = next(counter, None)
            if seed is None:
                break
            started = time.perf_counter()
            status = fetch(conn, f"/sprite/{seed}.png", keep_alive)
            latencies.append(time.perf_counter() - started)
            assert status == 200, status
            if not keep_alive:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    seconds = time.perf_counter() - started
    ms = sorted(x * 1e3 for x in latencies)
    return {"rate": len(ms) / seconds, "p50": ms[len(ms) // 2], "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))]}


def offline_rate(tmp: Path, n: int) -> float:
    out = tmp / f"offline-{time.monotonic_ns()}"
    result = subprocess.run([str(BIN / "dcgan-sample"), "-n", str(n), "--provider", "cpu", str(out)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return float(re.search(r"\((\d+) sprites/s\)", result.stdout).group(1))


def heavy_burst(served: Served, paths: list[str], clients: int = 8) -> float:
    """Fetch every path once from `clients` threads, retrying a 503 at once; the peak RSS seen (MB)."""
    todo, lock, peak, done = list(paths), threading.Lock(), [served.rss_mb()], threading.Event()

    def watch() -> None:
        while not done.wait(0.05):  # sampling the process's memory, not waiting for it
            peak[0] = max(peak[0], served.rss_mb())

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=300)
        while True:
            with lock:
                if not todo:
                    break
                path = todo.pop()
            while (status := fetch(conn, path, True)) == 503:
                pass
            assert status == 200, (path, status)
        conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(client) for _ in range(clients)]:
                f.result()
    finally:
        done.set()
        watcher.join()
    return peak[0]


def one_at_budget(served: Served, path: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one request alone."""
    before = served.rss_mb()
    started = time.perf_counter()
    peak = heavy_burst(served, [path], clients=1)
    return time.perf_counter() - started, peak - before


LEVELS = ((True, 1), (True, 8), (True, 32), (True, 64), (False, 1), (False, 8), (False, 32), (False, 64))


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=3, help="Rounds of every row, alternating; medians.")
@click.option("--requests", type=click.IntRange(min=32), default=192, help="Sprite requests per row (x2 at 32+).")
@click.option("--sheets", type=click.IntRange(min=1), default=200, help="Page-sized sheets in the memory burst.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(__file__).parent / "results" / "serve_speed.md")
def main(rounds: int, requests: int, sheets: int, out: Path) -> None:
    rows: dict[tuple, list[dict]] = {}
    offline, memory = [], []
    seed = 10_000
    cmd = [str(BIN / "dcgan-serve"), "--port", "0", "--provider", "cpu", "--max-connections", "128", "-q"]
    unbatched = [sys.executable, "-c", UNBATCHED]
    with tempfile.TemporaryDirectory() as tmp, Served(cmd) as served, Served(unbatched) as plain:
        for server in (served, plain):
            fetch(http.client.HTTPConnection("127.0.0.1", server.port), "/sprite/0.png", False)  # warm
        memory.append(("after start and one sprite", served.rss_mb()))
        for _ in range(rounds):  # every row once a round, so that a busy spell on the machine hits them all
            offline.append(offline_rate(Path(tmp), 1024))
            for keep_alive, clients in LEVELS:
                n = requests if clients < 32 else 2 * requests
                rows.setdefault(("batched", clients, keep_alive), []).append(
                    load(served.port, clients, n, keep_alive, seed)
                )
                seed += n
            for clients in (1, 32):
                n = requests if clients < 32 else 2 * requests
                rows.setdefault(("batch 1", clients, True), []).append(load(plain.port, clients, n, True, seed))
                seed += n
        health = json.loads(urlopen_text(served.port, "/health"))["batching"]
        memory.append(("after the sprite rows", served.rss_mb()))
        budget = [("sheet, 1,024 sprites", "/sheet.png?seeds=0-1023"),
                  ("sheet, 256 sprites at scale 2", "/sheet.png?seeds=0-255&scale=2"),
                  ("walk, 256 frames", "/walk.gif?from=3&to=17&frames=128")]  # fmt: skip
        alone = [(what, *one_at_budget(served, path)) for what, path in budget]
        paths = [f"/sheet.png?seeds={64 * i}-{64 * i + 63}&scale=2" for i in range(sheets)]
        paths += [path for _, path in budget] * 2
        peak = heavy_burst(served, paths)
        memory.append((f"peak during a burst of {len(paths)} sheets and walks", peak))
        memory.append(("right after the burst", served.rss_mb()))
    with Served([sys.executable, "-c", KEEPS_MEMORY]) as keeps:
        fetch(http.client.HTTPConnection("127.0.0.1", keeps.port), "/sprite/0.png", False)
        before = keeps.rss_mb()
        heavy_burst(keeps, paths)
        memory.append(("without the server's memory settings: after start", before))
        memory.append(("without them: right after the same burst", keeps.rss_mb()))
    rate = statistics.median(offline)
    lines = [
        f"# dcgan-serve under load, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"CPU: {cpu_name()}; the shipped model on the CPU provider; `python benchmarks/serve_speed.py --rounds "
        f"{rounds} --requests {requests} --sheets {sheets}`. Clients are threads of the benchmark, on the same cores "
        f"as the server. Every row ran once a round, {rounds} rounds; medians.",
        f"Offline: `dcgan-sample -n 1024` wrote {', '.join(f'{r:.0f}' for r in offline)} sprites/s, median {rate:.0f}.",
        "",
        "| server | clients | connections | requests/s | of offline | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for (kind, clients, keep_alive), results in rows.items():
        med = {k: statistics.median(r[k] for r in results) for k in ("rate", "p50", "p99")}
        lines.append(
            f"| {kind} | {clients} | {'keep-alive' if keep_alive else 'one per request'} | {med['rate']:.0f} | "
            f"{med['rate'] / rate:.0%} | {med['p50']:.1f} | {med['p99']:.1f} |"
        )
    lines += [
        "",
        f"Batched rows: {health['sprites']} sprites in {health['batches']} onnxruntime batches "
        f"(mean {health['sprites'] / health['batches']:.1f}, at most {health['max_batch']}).",
        "",
        "| one request at the cost budget (1,024), alone | seconds | memory above the server's, MB |",
        "|---|---:|---:|",
        *[f"| {what} | {seconds:.1f} | {mb:.0f} |" for what, seconds, mb in alone],
        "",
        "| server memory (VmRSS) | MB |",
        "|---|---:|",
        *[f"| {what} | {mb:.0f} |" for what, mb in memory],
    ]
    publish(lines, out)


def urlopen_text(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


if __name__ == "__main__":
    main()
