"""The Open Inference Protocol (v2) on dcgan-serve, and examples/v2_client.py against it: a real server on 127.0.0.1,
port 0, in this process (the same Server and App that dcgan-serve runs, without its start-up)."""

import importlib.util
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import invoke
from dcgan.serve.cli import main as sample_main
from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.latent import latents
from dcgan.serve.server import App, Server

EXAMPLE = Path(__file__).parents[2] / "examples" / "v2_client.py"
spec = importlib.util.spec_from_file_location("v2_client", EXAMPLE)
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)


def serve(model: Path, max_cost: int = 256):
    server = Server(("127.0.0.1", 0), App(SpriteGenerator(model), max_cost), quiet=True, timeout_s=5)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module", params=["generator-rgba8.onnx", "generator.onnx"])
def v2(request, tiny_export):
    server, url = serve(tiny_export / request.param)
    yield url, request.param
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def rgba8(tiny_export):
    server, url = serve(tiny_export / "generator-rgba8.onnx")
    yield url
    server.shutdown()
    server.server_close()


def call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        text = err.read()
        assert text.count(b"\n") == 0, text  # one line
        return err.code, json.loads(text)


def test_health_server_and_model_metadata_name_the_exported_tensors(v2):
    url, file = v2
    assert call(f"{url}/v2/health/live")[0] == 200 and call(f"{url}/v2/health/ready")[0] == 200
    assert call(f"{url}/v2")[1]["name"] == "dcgan-serve"
    name = "dcgan-rgba8" if "rgba8" in file else "dcgan-fp32"  # contract.SERVED_NAMES, as export/triton.py names them
    status, meta = call(f"{url}/v2/models/{name}")
    assert status == 200 and meta["name"] == name
    assert meta["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 100]}]
    expected = ({"name": "sprite", "datatype": "UINT8", "shape": [-1, 96, 96, 4]} if "rgba8" in file
                else {"name": "image", "datatype": "FP32", "shape": [-1, 4, 96, 96]})  # fmt: skip
    assert meta["outputs"] == [expected]
    assert call(f"{url}/v2/models/other")[0] == 404


def test_the_client_s_latents_are_dcgan_serve_latent_s():
    seeds = [0, 1, 42, 10**18 - 1]
    assert np.array_equal(client.latents(seeds, 100), latents(seeds, 100))


def test_the_client_writes_the_pixels_dcgan_sample_writes(v2, tiny_export, tmp_path):
    url, file = v2
    model = "dcgan-rgba8" if "rgba8" in file else "dcgan-fp32"
    client.main([str(tmp_path / "v2"), "--url", url, "--model", model, "--seeds", "3-7,40", "--batch", "4"])
    result = invoke(sample_main, "--seeds", "3-7,40", "--model", tiny_export / file, tmp_path / "sample")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert sorted(p.name for p in (tmp_path / "v2").iterdir()) == names and len(names) == 6
    for name in names:
        got, want = (np.asarray(Image.open(tmp_path / d / name)) for d in ("v2", "sample"))
        assert got.shape == (96, 96, 4) and np.array_equal(got, want), name


def infer(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(f"{url}/v2/models/dcgan-rgba8/infer", data)


def z_tensor(n=1, nz=100, **changes):
    tensor = {"name": "z", "shape": [n, nz], "datatype": "FP32", "data": [0.5] * (n * nz)}
    return {"inputs": [tensor | changes]}


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", '"inputs"'),
        ({"inputs": []}, "exactly one input"),
        (z_tensor(name="x"), "exactly one input"),
        (z_tensor(datatype="FP64"), "FP32"),
        (z_tensor(shape=[1, 99]), "shape [n, 100]"),
        (z_tensor(shape=[0, 100], data=[]), "shape [n, 100]"),
        (z_tensor(data=[0.5] * 99), "needs 100 numbers"),
        (z_tensor(data=[0.5] * 99 + ["x"]), "numbers only"),
        (z_tensor(data=[0.5] * 99 + [True]), "numbers only"),
        (b'{"inputs": [{"name": "z", "shape": [1, 1], "datatype": "FP32", "data": [NaN]}]}', "shape"),
        (z_tensor(n=1, data=[0.5] * 99 + [1e39]), "not finite float32"),
        (z_tensor(n=17), "limit is 256"),  # 17 sprites x 16 > 256
    ],
)
def test_bad_tensors_get_400_with_one_line(rgba8, body, message):
    status, answer = infer(rgba8, body)
    assert status == 400 and message in answer["error"], answer


def test_non_finite_values_and_big_bodies_are_refused_and_the_budget_s_largest_request_runs(rgba8):
    body = json.dumps(z_tensor()).replace("0.5]", "NaN]").encode()
    status, answer = infer(rgba8, body)
    assert status == 400 and "not finite" in answer["error"]
    port = int(rgba8.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # headers only: refused unread
        sock.sendall(b"POST /v2/models/dcgan-rgba8/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413") and b"at most" in answer
    status, answer = infer(rgba8, z_tensor(n=16) | {"id": "r1"})
    assert status == 200 and answer["id"] == "r1" and answer["outputs"][0]["shape"] == [16, 96, 96, 4]
    assert call(f"{rgba8}/sprite/1.png", b"{}")[0] == 405
