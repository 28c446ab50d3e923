"""dcgan-serve as a user runs it: a real server on 127.0.0.1, port 0, and a real HTTP client."""

import html
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import invoke, read_until
from dcgan.serve.cli import main as sample_main
from dcgan.serve.generator import SpriteGenerator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_export):
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(tiny_export), "--port", "0", "--max-batch", "256",
           "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = read_until(proc.stdout, "Serving")[-1]  # the server says where it listens once it does
        yield line.split(" at ")[1].split()[0].rstrip("/"), proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def get(base: str, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(base + path, timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def sample(*args):
    result = invoke(sample_main, *args)
    assert result.exit_code == 0, result.output
    return result


def test_a_sprite_is_byte_for_byte_the_png_dcgan_sample_writes(server, tiny_export, tmp_path):
    base, _ = server
    status, ctype, body = get(base, "/sprite/5.png")
    assert (status, ctype) == (200, "image/png")
    sample("--seeds", 5, "--model", tiny_export, "-q", tmp_path / "out")
    assert body == (tmp_path / "out" / "seed000005.png").read_bytes()


def test_a_sheet_is_drawn_as_dcgan_sample_draws_it(server, tiny_export, tmp_path):
    base, _ = server
    status, ctype, body = get(base, "/sheet.png?seeds=0-3,9&scale=2")
    assert (status, ctype) == (200, "image/png")
    sample("--seeds", "0-3,9", "--sheet", "--scale", 2, "--model", tiny_export, "-q", tmp_path / "out")
    assert body == (tmp_path / "out" / "sheet.png").read_bytes()


def test_a_walk_is_a_looping_gif_through_both_seeds(server, tiny_export):
    base, _ = server
    status, ctype, body = get(base, "/walk.gif?from=3&to=17&frames=5")
    assert (status, ctype) == (200, "image/gif")
    gen = SpriteGenerator(tiny_export, provider="cpu")
    with Image.open(BytesIO(body)) as im:
        assert im.n_frames == 10 and im.info["loop"] == 0
        im.seek(5)  # the far end of the walk: seed 17 itself
        far_end = np.asarray(im.convert("RGBA"))[..., 3] != gen([17])[0][..., 3]
        assert far_end.mean() <= 1e-3  # seed 17's silhouette, drawn in another batch: alone, it may flip a pixel


def test_health_names_the_model_its_metadata_and_provider(server, tiny_export):
    base, _ = server
    status, ctype, body = get(base, "/health")
    report = json.loads(body)
    assert (status, ctype) == (200, "application/json")
    assert report["model"] == "generator-rgba8.onnx" and report["provider"] == "CPUExecutionProvider"
    assert str(tiny_export) not in body.decode()  # no install path
    assert report["metadata"]["dcgan.nz"] == "100" and report["package_version"]


def test_the_page_shows_a_sheet_a_seed_box_and_the_next_64_without_javascript(server):
    base, _ = server
    status, ctype, body = get(base, "/?start=64")
    page = body.decode()
    assert status == 200 and ctype.startswith("text/html") and "<script" not in page
    src = re.search(r'<img src="(/sheet.png\?seeds=64-127&amp;scale=2)"', page)
    assert src and 'name="start"' in page and 'href="/?start=128"' in page
    assert get(base, html.unescape(src.group(1)))[0] == 200  # what the page shows is there


def test_a_request_at_the_budget_is_served(server):
    base, _ = server
    assert get(base, "/sheet.png?seeds=0-63&scale=2")[0] == 200  # 64 x 2^2 = 256, the fixture's --max-batch
    assert get(base, "/walk.gif?from=3&to=17&frames=32")[0] == 200  # 4 x 64 frames = 256


@pytest.mark.parametrize(
    "path, message",
    [
        ("/sprite/x.png", "whole-number seed"),
        ("/sheet.png?seeds=5-2", "runs backwards"),
        ("/sheet.png?seeds=0-256", "costs 257; this server's limit is 256 (--max-batch)"),
        ("/sheet.png?seeds=0-64&scale=2", "costs 260; this server's limit is 256"),
        ("/walk.gif?from=3&to=17&frames=33", "costs 264; this server's limit is 256"),  # 4 x 66 frames
        ("/sheet.png?seeds=0-3&seeds=5", "seeds is given 2 times"),
        ("/sprite/1000000000000000000.png", "from 0 to 999999999999999999"),
        ("/sheet.png?seeds=0-3&scale=9", "scale must be between 1 and 8"),
        ("/walk.gif?from=3&to=17&frames=129", "frames must be between 1 and 128"),
        ("/walk.gif?from=3", "to is missing"),
        ("/?start=-1", "start must be one whole number"),
    ],
)
def test_refusals_are_400_with_one_line_of_json(server, path, message):
    base, _ = server
    status, ctype, body = get(base, path)
    error = json.loads(body)["error"]
    assert (status, ctype) == (400, "application/json") and message in error and "\n" not in error


def test_the_readme_s_http_example_is_served(server):
    base, _ = server
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"<!-- http-example -->\n```bash\n(.*?)```", readme, re.S)
    assert block, "README.md lost its HTTP example"
    paths = re.findall(r"http://127\.0\.0\.1:8000(/[^'\s]*)", block.group(1))
    assert len(paths) == 4
    for path in paths:
        status, ctype, _ = get(base, path)
        assert status == 200 and ctype.startswith(("image/", "application/json")), path


def test_unknown_routes_and_paths_are_404_and_read_no_file(server):
    base, _ = server
    for path in ("/nope", "/../pyproject.toml", "/sprite/5.png/../../etc/passwd", "/health/x"):
        status, _, body = get(base, path)
        assert status in (400, 404) and b"[project]" not in body and b"root:" not in body


def test_concurrent_sprites_run_in_shared_batches_and_each_is_dcgan_sample_s_file(server, tiny_export, tmp_path):
    base, _ = server
    seeds = list(range(100, 356))
    sample("--seeds", "100-355", "--model", tiny_export, "-q", tmp_path / "out")
    before = json.loads(get(base, "/health")[2])["batching"]
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda s: get(base, f"/sprite/{s}.png"), seeds))
    for seed, (status, _, body) in zip(seeds, answers, strict=True):
        assert status == 200 and body == (tmp_path / "out" / f"seed{seed:06d}.png").read_bytes(), seed
    after = json.loads(get(base, "/health")[2])["batching"]
    sprites, batches = after["sprites"] - before["sprites"], after["batches"] - before["batches"]
    assert sprites == len(seeds) and batches < sprites  # some requests were joined into one batch


def test_sigterm_stops_it_cleanly(tiny_export):
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(tiny_export), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = read_until(proc.stdout, "Serving")
    proc.send_signal(signal.SIGTERM)
    out = "".join(seen) + proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "Stopped." in out and "Traceback" not in out


def test_a_model_that_is_not_a_generator_is_refused_in_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "not-a-generator",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, tmp_path / "identity.onnx")
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(tmp_path / "identity.onnx"), "--port", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "is not a sprite generator" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def fake_page(folder):
    """A browser folder as `npm ci` leaves examples/browser, with stand-in bytes for each file."""
    from dcgan.serve.browser import ORT_FILES, PAGE_FILES

    for name in PAGE_FILES + ORT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"contents of {name}".encode())
    return folder


def test_the_browser_page_is_served_from_memory_with_the_server_s_own_rgba8_model(tiny_export, tmp_path):
    from dcgan.serve.browser import load_page
    from dcgan.serve.server import App

    gen = SpriteGenerator(tiny_export, provider="cpu")
    app = App(gen, browser=load_page(fake_page(tmp_path / "page"), gen.info.path))
    (tmp_path / "page" / "index.html").write_text("changed after start")  # read once, at start
    index = app.route("/browser/")
    assert (index.status, index.type, index.body) == (200, "text/html; charset=utf-8", b"contents of index.html")
    assert app.route("/browser/latent.js").type == "text/javascript; charset=utf-8"
    wasm = app.route("/browser/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm")
    assert (wasm.status, wasm.type) == (200, "application/wasm")  # the type WebAssembly.instantiateStreaming needs
    assert app.route("/browser/generator-rgba8.onnx").body == (tiny_export / "generator-rgba8.onnx").read_bytes()
    assert b'href="/browser/"' in app.route("/").body  # the page without JavaScript links to it
    (tmp_path / "page" / "secret.txt").write_text("not on the list")
    for path in ("/browser/secret.txt", "/browser/../pyproject.toml", "/browser/node_modules/", "/browserx"):
        assert app.route(path).status == 404, path
    moved = app.route("/browser?seeds=0-7")
    assert (moved.status, moved.headers["Location"]) == (301, "/browser/?seeds=0-7")


def test_without_browser_the_page_is_a_404_that_says_how_to_serve_it(tiny_export):
    from dcgan.serve.server import App

    app = App(SpriteGenerator(tiny_export, provider="cpu"))
    response = app.route("/browser/")
    assert response.status == 404 and "--browser examples/browser" in json.loads(response.body)["error"]
    assert b"/browser/" not in app.route("/").body


@pytest.mark.parametrize(
    "missing, message",
    [("node_modules", "run `npm ci` in"), ("index.html", "has no index.html"), ("generator-rgba8.onnx", "has none")],
)
def test_a_browser_folder_that_is_not_ready_is_refused_in_one_line(tiny_export, tmp_path, missing, message):
    import shutil

    page = fake_page(tmp_path / "page")
    model = tmp_path / "model"
    shutil.copytree(tiny_export, model)
    target = model / missing if missing.endswith(".onnx") else page / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(model), "--browser", str(page), "--port", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
