"""`dcgan-serve`: the sampler over HTTP, on the standard library's HTTP server; never torch.

GET (and HEAD) routes: /sprite/{seed}.png, /sheet.png?seeds=0-63&scale=2, /walk.gif?from=3&to=17&frames=24, /health
and /, a page that needs no JavaScript; the Open Inference Protocol's /v2 routes, with POST /v2/models/<name>/infer
(serve/v2.py); with --browser, the browser example under /browser/. A request carries numbers only: the server answers
from the one model it opened at start, and the browser page's few files are read into memory then too
(serve/browser.py), so nothing in a request names a file or reaches a shell.

What one request or client can hold is bounded: a sheet or walk has a cost budget (--max-batch), at most HEAVY of them
run at once (more get 503 with Retry-After), a connection that sends no complete request within --timeout is closed,
and at most --max-connections are open, each with its own thread (more get 503). Single sprites that arrive together
run as one onnxruntime batch (serve/batcher.py). The standard library's server adds nothing to the install;
Starlette with uvicorn would add about 6 MB, FastAPI about 19 MB, for routes this small.
"""

from __future__ import annotations

import ctypes
import html
import io
import json
import math
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click
import numpy as np

from .contract import package_version
from .images import scaled_sheet
from .seeds import MAX_SEED, SEED, parse_seeds
from .v2 import V2Error, infer_response, max_body, metadata, parse_infer, served_name, server_metadata
from .walk import MAX_FRAMES, encode_walk, walk_latents
from .writer import encode_png

MAX_SCALE = 8
MAX_COST = 1024  # default budget of a sheet or walk: 1,024 sprites at scale 1, 256 at 2, 16 at 8
WALK_FRAME_COST = 4  # a GIF frame costs about four sheet sprites: each is quantised to its own palette
HEAVY = 2  # sheets and walks at once; more get 503: two at the budget stay within about 0.5 GB (docs/sampling.md)
RETRY_AFTER = 2  # seconds, for a 503
PAGE_SPRITES = 64
METHODS = "GET, HEAD"  # and POST at the v2 protocol's infer route


class BadRequest(ValueError):
    """A request the server refuses with 400 and this one-line reason."""


class Busy(RuntimeError):
    """The server is at its bound of concurrent heavy work; 503 with Retry-After."""


@dataclass
class Response:
    status: int
    type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def return_freed_memory() -> None:
    """Have glibc's malloc give freed blocks back to the system (elsewhere: nothing to do).

    By default glibc raises its mmap threshold to the size of the largest block freed (up to 32 MB), so after one
    sheet every later sheet's buffers come from the heap, and a heap keeps its top: a burst of sheets left the
    server at 386 MB against 108 at start. A fixed threshold keeps large buffers in their own mappings, given back
    when freed: 106 MB after the same burst (benchmarks/serve_speed.py has the numbers).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        libc.mallopt(m_mmap_threshold, 128 * 1024)
        libc.mallopt(m_trim_threshold, 128 * 1024)
    except (OSError, AttributeError):  # not glibc
        pass


def error(status: int, message: str, **headers: str) -> Response:
    return Response(status, "application/json", json.dumps({"error": message}).encode(), headers)


def number(query: dict, name: str, default: int | None = None, low: int = 0, high: int = MAX_SEED) -> int:
    """The query's integer `name` within [low, high], or BadRequest."""
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"{name} is missing")
        return default
    if not re.fullmatch(SEED, values[0]):
        raise BadRequest(f"{name} must be one whole number, not {values[0]!r}")
    value = int(values[0])
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, not {value}")
    return value


class App:
    """What each route answers, as a Response; the HTTP side is in Handler."""

    def __init__(self, generator, max_cost: int = MAX_COST, browser: dict[str, tuple[str, bytes]] | None = None,
                 heavy: int = HEAVY, batcher=None):  # fmt: skip
        self.gen, self.max_cost = generator, max_cost
        self.browser = browser  # the page at /browser/, as serve/browser.py loads it; None: not served
        self.batcher = batcher  # joins concurrent single-sprite requests into batches; None: each runs alone
        self._heavy = threading.BoundedSemaphore(heavy)

    def route(self, target: str) -> Response:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if twice := [name for name, values in query.items() if len(values) > 1]:
                raise BadRequest(f"{twice[0]} is given {len(query[twice[0]])} times; give it once")
            if m := re.fullmatch(rf"/sprite/({SEED})\.png", url.path):
                return Response(200, "image/png", encode_png(self.sprite(int(m.group(1)))))
            if url.path.startswith("/sprite/"):
                raise BadRequest(f"{url.path} is not /sprite/SEED.png with a whole-number seed from 0 to {MAX_SEED}")
            if url.path == "/sheet.png":
                return Response(200, "image/png", self.heavy(self.sheet, query))
            if url.path == "/walk.gif":
                return Response(200, "image/gif", self.heavy(self.walk, query))
            if url.path == "/v2" or url.path.startswith("/v2/"):
                return self.v2_get(url.path)
            if url.path == "/health":
                return Response(200, "application/json", json.dumps(self.health(), indent=2).encode())
            if url.path == "/":
                return Response(200, "text/html; charset=utf-8", self.page(query).encode())
            if url.path == "/browser" and self.browser is not None:
                location = "/browser/" + (f"?{url.query}" if url.query else "")
                return Response(301, "application/json", json.dumps({"location": location}).encode(),
                                {"Location": location})  # fmt: skip
            if url.path.startswith("/browser/") and self.browser is not None:
                name = url.path.removeprefix("/browser/") or "index.html"
                if name in self.browser:
                    return Response(200, *self.browser[name])
        except BadRequest as err:
            return error(400, str(err))
        except Busy as err:
            return error(503, str(err), **{"Retry-After": str(RETRY_AFTER)})
        if url.path.startswith("/browser") and self.browser is None:
            return error(404, "the browser page is served with dcgan-serve --browser examples/browser")
        return error(404, f"no route {url.path}")

    def v2_get(self, path: str) -> Response:
        """The Open Inference Protocol's GET routes (serve/v2.py)."""
        name = served_name(self.gen.info)
        answers = {
            "/v2": server_metadata(),
            "/v2/health/live": {"live": True},
            "/v2/health/ready": {"ready": True},
            f"/v2/models/{name}": metadata(self.gen.info),
            f"/v2/models/{name}/versions/1": metadata(self.gen.info),
            f"/v2/models/{name}/ready": {"name": name, "ready": True},
            f"/v2/models/{name}/versions/1/ready": {"name": name, "ready": True},
        }
        if path not in answers:
            return error(404, f"no route {path}; this server serves the model {name}")
        return Response(200, "application/json", json.dumps(answers[path]).encode())

    def post(self, path: str, body: bytes) -> Response:
        """POST /v2/models/<name>/infer, the one route that takes a body."""
        name = served_name(self.gen.info)
        if path not in (f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/1/infer"):
            return error(404, f"no POST route {path}; this server infers at /v2/models/{name}/infer")
        try:
            z, echo = parse_infer(body, self.gen.info, self.max_cost)
            return Response(200, "application/json", self.heavy(lambda _: self.v2_infer(z, echo), {}))
        except V2Error as err:
            return error(err.status, str(err))
        except Busy as err:
            return error(503, str(err), **{"Retry-After": str(RETRY_AFTER)})

    def v2_infer(self, z: np.ndarray, echo: dict) -> bytes:
        step = self.gen.batch_size
        out = np.concatenate([self.gen.run(z[i : i + step]) for i in range(0, len(z), step)])
        return infer_response(out, self.gen.info, echo)

    def sprite(self, seed: int) -> np.ndarray:
        return self.batcher.sprite(seed) if self.batcher is not None else self.gen([seed])[0]

    def heavy(self, work, query: dict) -> bytes:
        """Run `work(query)` if fewer than HEAVY sheets and walks are running; Busy otherwise."""
        if not self._heavy.acquire(blocking=False):
            raise Busy(f"{HEAVY} sheets or walks are being drawn; try again in {RETRY_AFTER} s")
        try:
            return work(query)
        finally:
            self._heavy.release()

    def check_cost(self, what: str, cost: int) -> None:
        if cost > self.max_cost:
            raise BadRequest(f"{what} costs {cost}; this server's limit is {self.max_cost} (--max-batch)")

    def sheet(self, query: dict) -> bytes:
        try:
            seeds = parse_seeds(query.get("seeds", ["0-63"])[0])
        except ValueError as err:
            raise BadRequest(f"seeds: {err}") from err
        scale = number(query, "scale", 1, 1, MAX_SCALE)
        self.check_cost(f"a sheet of {len(seeds)} sprites at scale {scale} (sprites x scale^2)", len(seeds) * scale**2)
        return png_bytes(scaled_sheet(self.gen(seeds), scale))

    def walk(self, query: dict) -> bytes:
        start, end = number(query, "from"), number(query, "to")
        frames = number(query, "frames", 24, 1, MAX_FRAMES // 2)  # there and back: two legs
        scale = number(query, "scale", 1, 1, MAX_SCALE)
        cost = WALK_FRAME_COST * 2 * frames * scale**2
        self.check_cost(f"a walk of {2 * frames} frames at scale {scale} ({WALK_FRAME_COST} x frames x scale^2)", cost)
        z = walk_latents([start, end], frames, self.gen.info.nz)
        step = self.gen.batch_size
        sprites = [self.gen.from_latents(z[i : i + step]) for i in range(0, len(z), step)]
        return encode_walk(np.concatenate(sprites), "gif", scale)

    def health(self) -> dict:
        info = self.gen.info
        return {
            "status": "ok",
            "model": info.path.name,  # never the path: where the server is installed is nobody's business
            "metadata": info.metadata,
            "provider": self.gen.provider,
            "notice": self.gen.notice,
            "package_version": package_version(),
            "max_cost": self.max_cost,
            "batching": {  # single-sprite requests joined into onnxruntime batches
                "max_batch": self.batcher.max_batch if self.batcher else 1,
                "sprites": self.batcher.sprites if self.batcher else 0,
                "batches": self.batcher.batches if self.batcher else 0,
            },
        }

    def page(self, query: dict) -> str:
        count = min(PAGE_SPRITES, self.max_cost)
        scale = 2 if count * 4 <= self.max_cost else 1  # the sheet it shows fits this server's budget
        start = number(query, "start", 0, 0, MAX_SEED - count + 1)
        seeds = f"{start}-{start + count - 1}"
        side = math.ceil(math.sqrt(count))
        return PAGE.format(
            seeds=html.escape(seeds),
            scale=scale,
            size=scale * (side * 98 + 2),
            count=count,
            start=start,
            next=start + count,
            max_start=MAX_SEED - count + 1,
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
<p><img src="/sheet.png?seeds={seeds}&amp;scale={scale}" alt="sprites of seeds {seeds}" width="{size}"></p>
<form action="/" method="get"><label>First seed <input type="number" name="start" min="0" max="{max_start}"
value="{start}"></label> <button type="submit">Show</button> <a href="/?start={next}">next {count}</a></form>
<p>A seed always names the same creature: <code>/sprite/SEED.png</code>;
a walk: <code>/walk.gif?from=3&amp;to=17</code>; model {model} on {provider} (<a href="/health">health</a>).
{browser}</p>
</body></html>
"""


class DeadlineReader(io.RawIOBase):
    """The connection's reading side, bound by the handler's deadline for the whole request (not per read, so a
    client that trickles a byte at a time is cut off too)."""

    def __init__(self, sock: socket.socket, handler: Handler):
        self.sock, self.handler = sock, handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete request in time")
        self.sock.settimeout(left)
        n = self.sock.recv_into(buffer)
        self.handler.received += n
        return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, within --timeout and --max-connections
    default_request_version = "HTTP/1.1"  # so that an answer to a garbled request line has its status and headers
    # headers and body leave in two writes; with Nagle's algorithm the body would wait for the client's delayed ACK
    # of the headers, 40 ms a request on a keep-alive connection
    disable_nagle_algorithm = True
    server_version = f"dcgan-serve/{package_version()}"
    deadline = 0.0
    received = 0

    def version_string(self) -> str:
        return self.server_version  # the package, not Python's version

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        """http.server's own, with a deadline for the whole request, 405 for any other method, and no traceback for
        a client that goes away."""
        self.deadline, self.received = time.monotonic() + self.server.timeout_s, 0
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return  # it answered with send_error
            getattr(self, f"do_{self.command}", self.not_allowed)()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True
            if self.received:  # part of a request came: say why it ends (an idle connection just closes)
                try:
                    self.respond(error(408, f"no complete request within {self.server.timeout_s:g} s"), close=True)
                except OSError:
                    pass
        except OSError:  # the client reset or closed the connection
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        try:
            response = self.server.app.route(self.path)
        except Exception as err:  # noqa: BLE001 - one request's failure is its 500, not the server's end
            self.log_message("error in %s: %r", self.path, err)
            response = error(500, f"the server failed on this request ({type(err).__name__})")
        self.respond(response)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802
        app = self.server.app
        if not self.path.startswith("/v2/"):
            self.not_allowed()
            return
        limit = max_body(app.gen.info.nz, app.max_cost)
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.respond(error(411, "a POST needs a Content-Length (chunked bodies are not read)"), close=True)
            return
        if int(length) > limit:  # refused unread, so the connection closes
            self.respond(error(413, f"the body is {length} bytes; this server reads at most {limit}"), close=True)
            return
        body = self.rfile.read(int(length))  # within the request's deadline, as the headers were
        if len(body) < int(length):
            self.respond(error(400, "the body ended before its Content-Length"), close=True)
            return
        try:
            response = app.post(urlsplit(self.path).path, body)
        except Exception as err:  # noqa: BLE001 - one request's failure is its 500, not the server's end
            self.log_message("error in %s: %r", self.path, err)
            response = error(500, f"the server failed on this request ({type(err).__name__})")
        self.respond(response)

    def not_allowed(self) -> None:
        message = f"{self.command} is not allowed; this server answers {METHODS}"
        self.respond(error(405, message, Allow=METHODS), close=True)  # a body it may have sent is never read

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's protocol errors (a bad request line, headers too long, a bad version) as JSON too."""
        self.log_error("code %d, message %s", code, message)
        reason = message or HTTPStatus(code).phrase
        self.respond(error(code, reason[:200]), close=True)

    def respond(self, response: Response, close: bool = False) -> None:
        self.connection.settimeout(self.server.timeout_s)  # writing has its own bound: a client that never reads
        self.send_response(response.status)
        self.send_header("Content-Type", response.type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if close or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: %d\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a thread per connection, at most `max_connections` of them; a connection beyond that
    is answered 503 (by one of a few short-lived threads) and closed."""

    daemon_threads = True  # a slow client never holds up the shutdown
    request_queue_size = 128

    def __init__(self, address, app: App, quiet: bool = False, timeout_s: float = 10.0, max_connections: int = 64):
        super().__init__(address, Handler)
        self.app, self.quiet, self.timeout_s = app, quiet, timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusers = threading.BoundedSemaphore(8)
        self.max_connections = max_connections

    def process_request(self, request, client_address) -> None:
        if self._slots.acquire(blocking=False):
            threading.Thread(target=self._serve, args=(request, client_address), daemon=True).start()
        elif self._refusers.acquire(blocking=False):
            threading.Thread(target=self._refuse, args=(request,), daemon=True).start()
        else:  # a flood: no answer at all, and no thread
            self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        if not self.quiet:
            sys.stderr.write(f"{client_address[0]} connection failed: {sys.exc_info()[1]!r}\n")

    def _serve(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps({"error": f"{self.max_connections} connections are open; try again in {RETRY_AFTER} s"})
        try:
            request.settimeout(1.0)
            request.sendall(BUSY % (RETRY_AFTER, len(body), body.encode()))
            request.shutdown(socket.SHUT_WR)
            while request.recv(65536):  # read what the client sent, so closing does not reset the answer away
                pass
        except OSError:
            pass
        finally:
            request.close()
            self._refusers.release()


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
@click.option("--max-batch", type=click.IntRange(min=1), default=MAX_COST,
              help=f"Budget of a sheet or walk: sprites x scale^2, {WALK_FRAME_COST} x frames x scale^2.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0.1, max=3600), default=10.0,
              help="Seconds a connection may take to send a whole request (idle keep-alive too).")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1, max=4096), default=64,
              help="Open connections (one thread each); more are answered 503.")  # fmt: skip
@click.option(
    "--browser",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also serve this browser example at /browser/ (examples/browser, after npm ci there).",
)
@click.option("-q", "--quiet", is_flag=True, help="No line per request.")  # fmt: skip
def main(model, provider, host, port, threads, max_batch, timeout, max_connections, browser, quiet) -> None:
    """Serve sprites over HTTP: /sprite/SEED.png, /sheet.png?seeds=0-63&scale=2, /walk.gif?from=3&to=17,
    /health, a page at /, and the Open Inference Protocol (v2) that Triton and KServe speak, at /v2.

    \b
    Examples:
      dcgan-serve                                  # the shipped model at http://127.0.0.1:8000/
      dcgan-serve --model runs/demo --port 0       # any free port, printed
      dcgan-serve --browser examples/browser       # and the page that draws in the browser
    """
    from .batcher import MAX_BATCH, Batcher
    from .browser import PageError, load_page
    from .generator import ModelError, SpriteGenerator
    from .runtime import ProviderError

    return_freed_memory()
    try:
        # the batcher's batches keep the arena's memory (quick); larger runs give it back (memory after a burst)
        gen = SpriteGenerator(model, provider=provider, threads=threads or None, arena_keep=MAX_BATCH)
        page = load_page(browser, gen.info.path) if browser is not None else None
    except (ModelError, ProviderError, PageError) as err:
        raise click.ClickException(str(err)) from err
    if gen.notice:
        click.echo(f"note: {gen.notice}", err=True)
    app = App(gen, max_batch, page, batcher=Batcher(gen))
    try:
        server = Server((host, port), app, quiet, timeout, max_connections)
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
