"""The PokeAPI download against a local HTTP server on the loopback address: no test touches the internet."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import numpy as np
import pytest

from conftest import TINY, invoke, synthetic_sprite
from dcgan.train.cli import main as train_main
from dcgan.train.download import DownloadError, fetch_pokeapi_sprites


class SpriteServer:
    """Serves /sprites/pokemon/<id>.png for `ids`, 404 for others; the first request of an id in `flaky` gets 503."""

    def __init__(self, ids, flaky=()):
        rng = np.random.default_rng(0)
        self.files = {}
        for i in ids:
            buf = BytesIO()
            synthetic_sprite(rng).save(buf, "PNG", transparency=0)
            self.files[f"/sprites/pokemon/{i}.png"] = buf.getvalue()
        self.flaky = {f"/sprites/pokemon/{i}.png" for i in flaky}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.flaky:
                    server.flaky.discard(self.path)
                    self.send_error(503)
                elif self.path in server.files:
                    body = server.files[self.path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sprites/pokemon/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = SpriteServer(ids=[1, 2, 3, 5, 6], flaky=[2])
    yield s
    s.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/sprites/pokemon/"


def test_downloads_retries_records_missing_and_never_fetches_twice(tmp_path, server):
    cache = tmp_path / "cache"
    got = fetch_pokeapi_sprites(cache, server.url, ids=range(1, 7), backoff=0.01, show_progress=False)
    assert got == cache
    assert sorted(p.name for p in cache.glob("*.png")) == ["1.png", "2.png", "3.png", "5.png", "6.png"]
    assert server.requests.count("/sprites/pokemon/2.png") == 2  # the 503, then the retry
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["missing"] == [4] and len(manifest["files"]) == 5
    assert (cache / "3.png").read_bytes() == server.files["/sprites/pokemon/3.png"]

    before = len(server.requests)
    fetch_pokeapi_sprites(cache, server.url, ids=range(1, 7), show_progress=False)
    assert len(server.requests) == before  # a finished cache is never fetched again


def test_interrupted_download_resumes_with_only_the_missing_files(tmp_path, server):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "1.png").write_bytes(server.files["/sprites/pokemon/1.png"])  # finished before the interruption
    (cache / "2.png.part").write_bytes(b"\x89PNG half")  # the file it was writing
    fetch_pokeapi_sprites(cache, server.url, ids=range(1, 4), backoff=0.01, show_progress=False)
    assert "/sprites/pokemon/1.png" not in server.requests
    assert sorted(p.name for p in cache.iterdir()) == ["1.png", "2.png", "3.png", "manifest.json"]
    assert (cache / "2.png").read_bytes() == server.files["/sprites/pokemon/2.png"]


def test_no_network_says_where_to_get_the_sprites(tmp_path):
    with pytest.raises(DownloadError, match="--data"):
        fetch_pokeapi_sprites(
            tmp_path / "c", closed_port_url(), ids=range(1, 3), retries=1, backoff=0.01, show_progress=False
        )
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_bare_dcgan_train_without_network_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DCGAN_SPRITES_URL", closed_port_url())
    monkeypatch.chdir(tmp_path)
    result = invoke(train_main, "--epochs", 1)
    assert result.exit_code == 1
    assert "github.com/PokeAPI/sprites" in result.output and "--data" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoint.pt"))


def test_bare_dcgan_train_downloads_then_trains(tmp_path, monkeypatch, server):
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DCGAN_SPRITES_URL", server.url)
    monkeypatch.chdir(tmp_path)
    result = invoke(train_main, "--epochs", 1, *TINY, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    assert "Loaded 5 images" in result.output
    assert (tmp_path / "runs" / "1" / "checkpoint.pt").is_file()
