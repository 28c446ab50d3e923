"""What dcgan-serve lets one request or client hold, and its HTTP, each against a real server on 127.0.0.1, port 0:
the heavy-work bound (503 + Retry-After), the deadline for a whole request, the connection cap, keep-alive, HEAD,
405, JSON for protocol errors, and the Server header."""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import read_until
from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.server import HEAVY, App, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def strict_server(tiny_export):
    """A server with a 1 s deadline and three connections at most."""
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(tiny_export), "--port", "0", "--timeout", "1",
           "--max-connections", "3", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = read_until(proc.stdout, "Serving")[-1]
        yield int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
    finally:
        proc.kill()
        proc.wait(timeout=60)


def raw(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def head_and_body(response: bytes) -> tuple[str, dict, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, body


def test_an_idle_connection_is_closed_after_the_timeout(strict_server):
    started = time.monotonic()
    assert raw(strict_server, b"") == b""  # nothing sent: closed without a word
    assert time.monotonic() - started < 10


def test_a_client_that_trickles_its_request_is_cut_off_at_the_deadline(strict_server):
    """One byte every 0.2 s would keep a per-read timeout of 1 s waiting for ever; the deadline is for the whole."""
    with socket.create_connection(("127.0.0.1", strict_server), timeout=30) as sock:
        started, request = time.monotonic(), b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        try:
            for byte in request:
                sock.send(bytes([byte]))
                time.sleep(0.2)  # the slow client itself, not a wait for the server
        except OSError:
            pass  # the server closed the connection under us: what this test expects
        answer = sock.recv(65536)
    status, headers, body = head_and_body(answer)
    assert status.startswith("HTTP/1.1 408") and "no complete request within 1 s" in json.loads(body)["error"]
    assert time.monotonic() - started < 10  # 100 bytes would have taken 20 s


def test_connections_beyond_the_cap_get_503_with_retry_after(strict_server):
    idle = [socket.create_connection(("127.0.0.1", strict_server)) for _ in range(3)]
    try:
        status, headers, body = head_and_body(raw(strict_server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert status.startswith("HTTP/1.1 503") and headers["retry-after"].isdigit()
        assert "3 connections are open" in json.loads(body)["error"]
    finally:
        for sock in idle:
            sock.close()


def test_keep_alive_serves_several_requests_on_one_connection(strict_server):
    conn = http.client.HTTPConnection("127.0.0.1", strict_server, timeout=30)
    try:
        conn.request("GET", "/sprite/1.png")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        for path in ("/sprite/2.png", "/health"):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and conn.sock is sock  # the same connection, not a new one
    finally:
        conn.close()


def test_head_answers_like_get_without_the_body(strict_server):
    status, headers, body = head_and_body(raw(strict_server, b"HEAD /sprite/5.png HTTP/1.1\r\nHost: x\r\n"
                                                            b"Connection: close\r\n\r\n"))  # fmt: skip
    _, get_headers, get_body = head_and_body(raw(strict_server, b"GET /sprite/5.png HTTP/1.1\r\nHost: x\r\n"
                                                                b"Connection: close\r\n\r\n"))  # fmt: skip
    assert status == "HTTP/1.1 200 OK" and body == b""
    assert headers["content-type"] == "image/png" and headers["content-length"] == str(len(get_body))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"])
def test_other_methods_get_405_with_allow_and_json(strict_server, method):
    request = f"{method} /sprite/5.png HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".encode()
    status, headers, body = head_and_body(raw(strict_server, request))
    assert status.startswith("HTTP/1.1 405") and headers["allow"] == "GET, HEAD"
    assert headers["content-type"] == "application/json" and method in json.loads(body)["error"]


@pytest.mark.parametrize(
    "request_bytes, code",
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /health HTTP/9.9\r\n\r\n", 505),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\n" + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    ],
)
def test_protocol_errors_are_json_too(strict_server, request_bytes, code):
    status, headers, body = head_and_body(raw(strict_server, request_bytes))
    assert status.startswith(f"HTTP/1.1 {code}") and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] and b"<html" not in body.lower()


def test_the_server_header_names_the_package_not_python(strict_server):
    _, headers, _ = head_and_body(raw(strict_server, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert headers["server"].startswith("dcgan-serve/") and "python" not in headers["server"].lower()


class Gate:
    """A generator whose sheets (more than one seed) wait at a gate the test opens, saying when each arrived there."""

    def __init__(self, gen):
        self.gen, self.info, self.batch_size = gen, gen.info, gen.batch_size
        self.arrived, self.open = threading.Semaphore(0), threading.Event()

    def __call__(self, seeds):
        seeds = list(seeds)
        if len(seeds) > 1:
            self.arrived.release()
            self.open.wait(timeout=60)
        return self.gen(seeds)


def test_heavy_work_beyond_the_bound_gets_503_with_retry_after(tiny_export):
    gate = Gate(SpriteGenerator(tiny_export, provider="cpu"))
    server = Server(("127.0.0.1", 0), App(gate), quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def sheet() -> tuple[str, dict, bytes]:
        return head_and_body(raw(port, b"GET /sheet.png?seeds=0-3 HTTP/1.1\r\nConnection: close\r\n\r\n"))

    try:
        with ThreadPoolExecutor(HEAVY) as pool:
            running = [pool.submit(sheet) for _ in range(HEAVY)]
            for _ in range(HEAVY):
                assert gate.arrived.acquire(timeout=60)  # both are drawing now
            status, headers, body = sheet()
            assert status.startswith("HTTP/1.1 503") and headers["retry-after"].isdigit()
            assert f"{HEAVY} sheets or walks are being drawn" in json.loads(body)["error"]
            assert head_and_body(raw(port, b"GET /sprite/3.png HTTP/1.1\r\nConnection: close\r\n\r\n"))[0].endswith(
                "200 OK"
            )  # single sprites are not heavy work
            gate.open.set()
            assert all(f.result(timeout=60)[0].endswith("200 OK") for f in running)
    finally:
        gate.open.set()
        server.shutdown()
        server.server_close()
