"""examples/browser: numpy's latents in JavaScript, and the page drawing dcgan-sample's sprites in a real Chromium.

The browser test needs Debian's chromium and chromium-driver, selenium, and `npm ci` in examples/browser; .ci/run
installs all three and sets DCGAN_REQUIRE_BROWSER=1, which turns a missing piece into a failure instead of a skip.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from latent_fixture import FIXTURE, NZ, latents_by_seed
from PIL import Image

from conftest import assert_within_a_level, invoke, read_until
from dcgan.serve.cli import main as sample_main

README = Path(__file__).parents[2] / "README.md"
PAGE = README.parent / "examples" / "browser"
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def need(reason: str) -> None:
    """Skip for a missing piece, or fail where CI installed the pieces and says so."""
    if os.environ.get("DCGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DCGAN_REQUIRE_BROWSER=1, but {reason}")
    pytest.skip(reason)


def test_the_fixture_is_what_numpy_draws():
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["z"] == latents_by_seed()
    assert len(fixture["z"]["0"]) == NZ


def test_latent_js_draws_numpy_s_latents_bit_for_bit():
    node = shutil.which("node")
    if node is None:
        need("node is not installed")
    script = (
        f"import {{ latent }} from {json.dumps((PAGE / 'latent.js').as_uri())};\n"
        "const seeds = JSON.parse(process.argv[1]);\n"
        "const out = {};\n"
        f"for (const s of seeds) out[s] = Array.from(new Uint32Array(latent(BigInt(s), {NZ}).buffer),"
        " (b) => b.toString(16).padStart(8, '0'));\n"
        "console.log(JSON.stringify(out));\n"
    )
    expected = json.loads(FIXTURE.read_text())["z"]
    run = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(list(expected))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    wrong = [seed for seed in expected if got[seed] != expected[seed]]
    assert not wrong, f"latent.js differs from numpy for seeds {wrong}"


@pytest.fixture(scope="module")
def browser():
    if not (PAGE / "node_modules" / "onnxruntime-web").is_dir():
        need(f"onnxruntime-web is not installed: run `npm ci` in {PAGE}")
    chromium = shutil.which("chromium")
    if chromium is None or not CHROMEDRIVER.exists():
        need("Debian's chromium and chromium-driver are not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def readme_command() -> list[str]:
    """The README's command that serves the page, as a list of arguments."""
    block = re.search(r"<!-- browser-example -->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md lost its browser example"
    line = next(line for line in block.group(1).splitlines() if line.startswith("dcgan-serve"))
    return shlex.split(line.split("#")[0])


@pytest.fixture(scope="module")
def page_server():
    args = readme_command()[1:]  # as the README runs it, on any free port
    args[args.index("--port") + 1] = "0"
    cmd = [sys.executable, "-m", "dcgan.serve.server", *args, "-q"]
    proc = subprocess.Popen(cmd, cwd=README.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = read_until(proc.stdout, "Serving")[-1]
        yield line.split(" at ")[1].split()[0] + "browser/"
    finally:
        proc.kill()
        proc.wait(timeout=60)


def open_page(driver, url: str) -> str:
    """Load the page and wait, on the page's own signal, until it has drawn or failed; returns its state."""
    driver.get(url)
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const settled = () => ['drawn', 'error'].includes(document.body.dataset.state);"
        "if (settled()) return done(document.body.dataset.state);"
        "new MutationObserver((_, obs) => { if (settled()) { obs.disconnect(); done(document.body.dataset.state); } })"
        ".observe(document.body, { attributes: true });"
    )


@pytest.mark.slow
def test_the_page_draws_the_sprites_dcgan_sample_draws(browser, page_server, tmp_path):
    assert open_page(browser, page_server + "?seeds=0-7") == "drawn", browser.find_element("id", "status").text
    width, height, pixels = browser.execute_script(
        "const c = document.getElementById('sheet');"
        "return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];"
    )
    assert (width, height) == (8 * 96, 96)
    sheet = np.array(pixels, np.uint8).reshape(96, 8 * 96, 4)
    result = invoke(sample_main, "--seeds", "0-7", "-q", tmp_path / "out")
    assert result.exit_code == 0, result.output
    for i in range(8):
        expected = np.asarray(Image.open(tmp_path / "out" / f"seed{i:06d}.png").convert("RGBA"))
        drawn = sheet[:, i * 96 : (i + 1) * 96]
        assert_within_a_level(drawn, expected, levels=2)  # onnxruntime-web's kernels, and the canvas's rounding


@pytest.mark.slow
def test_the_page_refuses_a_bad_seed_in_one_line(browser, page_server):
    assert open_page(browser, page_server + "?seeds=7-3") == "error"
    assert browser.find_element("id", "status").text == "the range 7-3 runs backwards"
