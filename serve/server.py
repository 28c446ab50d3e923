"""`dcgan-serve`: the sampler over HTTP, on the standard library's ThreadingHTTPServer; never torch.

GET routes: /sprite/{seed}.png, /sheet.png?seeds=0-63&scale=2, /walk.gif?from=3&to=17&frames=24, /health and /, a
page that needs no JavaScript; with --browser, the browser example under /browser/. A request carries numbers only:
the server answers from the one model it opened at start, and the browser page's few files are read into memory
then too (serve/browser.py), so nothing in a request names a file or reaches a shell. Concurrent requests share one
onnxruntime session.
The standard library's server adds nothing to the install; Starlette with uvicorn would add about 6 MB, FastAPI
about 19 MB, for routes this small.
"""

from __future__ import annotations

import html
import io
import json
import re
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click
import numpy as np

from .contract import package_version
from .images import scaled_sheet
from .seeds import parse_seeds
from .walk import MAX_FRAMES, encode_walk, walk_latents
from .writer import encode_png

MAX_SCALE = 8  # a sheet of 1,024 sprites at scale 8 is already 25,000 px wide
PAGE_SPRITES = 64


class BadRequest(ValueError):
    """A request the server refuses with 400 and this one-line reason."""


def number(query: dict, name: str, default: int | None = None, low: int = 0, high: int = 2**63 - 1) -> int:
    """The query's integer `name` within [low, high], or BadRequest."""
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"{name} is missing")
        return default
    if len(values) > 1 or not re.fullmatch(r"\d{1,18}", values[0]):
        raise BadRequest(f"{name} must be one whole number, not {', '.join(values)!r}")
    value = int(values[0])
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, not {value}")
    return value


class App:
    """What each route answers, as (status, content type, body); the HTTP side is in Handler."""

    def __init__(self, generator, max_batch: int = 1024, browser: dict[str, tuple[str, bytes]] | None = None):
        self.gen, self.max_batch = generator, max_batch
        self.browser = browser  # the page at /browser/, as serve/browser.py loads it; None: not served

    def route(self, target: str) -> tuple[int, str, bytes]:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if m := re.fullmatch(r"/sprite/(\d{1,18})\.png", url.path):
                return 200, "image/png", encode_png(self.gen([int(m.group(1))])[0])
            if url.path.startswith("/sprite/"):
                raise BadRequest(f"{url.path} is not /sprite/SEED.png with a whole-number seed")
            if url.path == "/sheet.png":
                return 200, "image/png", self.sheet(query)
            if url.path == "/walk.gif":
                return 200, "image/gif", self.walk(query)
            if url.path == "/health":
                return 200, "application/json", json.dumps(self.health(), indent=2).encode()
            if url.path == "/":
                return 200, "text/html; charset=utf-8", self.page(query).encode()
            if url.path.startswith("/browser/") and self.browser is not None:
                name = url.path.removeprefix("/browser/") or "index.html"
                if name in self.browser:
                    return 200, *self.browser[name]
        except BadRequest as err:
            return 400, "application/json", json.dumps({"error": str(err)}).encode()
        if url.path.startswith("/browser") and self.browser is None:
            reason = "the browser page is served with dcgan-serve --browser examples/browser"
            return 404, "application/json", json.dumps({"error": reason}).encode()
        return 404, "application/json", json.dumps({"error": f"no route {url.path}"}).encode()

    def sheet(self, query: dict) -> bytes:
        try:
            seeds = parse_seeds(query.get("seeds", ["0-63"])[-1])
        except ValueError as err:
            raise BadRequest(f"seeds: {err}") from err
        if len(seeds) > self.max_batch:
            raise BadRequest(f"{len(seeds)} seeds is more than this server's --max-batch {self.max_batch}")
        scale = number(query, "scale", 1, 1, MAX_SCALE)
        grid = scaled_sheet(self.gen(seeds), scale)
        return png_bytes(grid)

    def walk(self, query: dict) -> bytes:
        start, end = number(query, "from"), number(query, "to")
        frames = number(query, "frames", 24, 1, MAX_FRAMES // 2)  # there and back: two legs
        z = walk_latents([start, end], frames, self.gen.info.nz)
        step = self.gen.batch_size
        sprites = [self.gen.from_latents(z[i : i + step]) for i in range(0, len(z), step)]
        return encode_walk(np.concatenate(sprites), "gif", number(query, "scale", 1, 1, MAX_SCALE))

    def health(self) -> dict:
        info = self.gen.info
        return {
            "status": "ok",
            "model": str(info.path),
            "metadata": info.metadata,
            "provider": self.gen.provider,
            "notice": self.gen.notice,
            "package_version": package_version(),
        }

    def page(self, query: dict) -> str:
        start = number(query, "start", 0)
        seeds = f"{start}-{start + PAGE_SPRITES - 1}"
        return PAGE.format(
            seeds=html.escape(seeds),
            start=start,
            next=start + PAGE_SPRITES,
            model=html.escape(self.gen.info.path.name),
            provider=html.escape(self.gen.provider),
            browser='<a href="/browser/">The same sprites drawn in your browser.</a>' if self.browser else "",
        )


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # as dcgan-sample --sheet saves it: the same bytes for the same sheet
    return buf.getvalue()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dcgan-serve</title>
<style>body{{font-family:sans-serif;margin:2em;background:#f4f4f4}} img{{image-rendering:pixelated}}</style>
</head><body>
<h1>Sprites {seeds}</h1>
<p><img src="/sheet.png?seeds={seeds}&amp;scale=2" alt="sprites of seeds {seeds}" width="1572" height="1572"></p>
<form action="/" method="get"><label>First seed <input type="number" name="start" min="0" value="{start}"></label>
<button type="submit">Show</button> <a href="/?start={next}">next 64</a></form>
<p>A seed always names the same creature: <code>/sprite/SEED.png</code>;
a walk: <code>/walk.gif?from=3&amp;to=17</code>; model {model} on {provider} (<a href="/health">health</a>).
{browser}</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "dcgan-serve"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        status, ctype, body = self.server.app.route(self.path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up the shutdown

    def __init__(self, address, app: App, quiet: bool = False):
        super().__init__(address, Handler)
        self.app, self.quiet = app, quiet


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--model",
    default=None,
    show_default=False,
    help="ONNX file, export folder or run folder, as dcgan-sample takes it. Default: the shipped model.",
)
@click.option(
    "--provider",
    type=click.Choice(["auto", "cuda", "cpu"]),
    default="auto",
    help="auto: CUDA when onnxruntime can run it (else the CPU, saying why).",
)
@click.option("--host", default="127.0.0.1", help="Address to listen on; 0.0.0.0 for every interface.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="0: any free port (printed).")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="onnxruntime threads; 0: one per core.")
@click.option("--max-batch", type=click.IntRange(min=1), default=1024, help="Most sprites one request may ask for.")
@click.option(
    "--browser",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also serve this browser example at /browser/ (examples/browser, after npm ci there).",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per request.")  # fmt: skip
def main(model, provider, host, port, threads, max_batch, browser, quiet) -> None:
    """Serve sprites over HTTP: /sprite/SEED.png, /sheet.png?seeds=0-63&scale=2, /walk.gif?from=3&to=17,
    /health, and a page at /.

    \b
    Examples:
      dcgan-serve                                  # the shipped model at http://127.0.0.1:8000/
      dcgan-serve --model runs/demo --port 0       # any free port, printed
      dcgan-serve --browser examples/browser       # and the page that draws in the browser
    """
    from .browser import PageError, load_page
    from .generator import ModelError, SpriteGenerator
    from .runtime import ProviderError

    try:
        gen = SpriteGenerator(model, provider=provider, threads=threads or None)
        page = load_page(browser, gen.info.path) if browser is not None else None
    except (ModelError, ProviderError, PageError) as err:
        raise click.ClickException(str(err)) from err
    if gen.notice:
        click.echo(f"note: {gen.notice}", err=True)
    try:
        server = Server((host, port), App(gen, max_batch, page), quiet)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err

    def stop(signum, _frame):  # SIGTERM ends the loop as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    bound_host, bound_port = server.server_address[:2]
    try:  # a signal from the moment the address is printed ends here, cleanly
        click.echo(
            f"Serving {gen.info.path.name} on {gen.provider} at http://{bound_host}:{bound_port}/ (Ctrl-C stops)"
        )
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
