"""One limit on seeds everywhere: dcgan-sample's --seed, --seeds and --walk, the server, and the browser page."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcgan.serve.cli import main as sample_main
from dcgan.serve.seeds import MAX_SEED, parse_seed, parse_seeds, parse_walk, seed_range

BROWSER = Path(__file__).resolve().parents[2] / "examples" / "browser" / "sprites.js"


def test_the_largest_seed_is_taken_and_one_more_is_refused_by_every_parser():
    assert list(parse_seeds(f"{MAX_SEED - 1}-{MAX_SEED}")) == [MAX_SEED - 1, MAX_SEED]
    assert parse_seed(str(MAX_SEED)) == MAX_SEED and parse_walk(f"0,{MAX_SEED}") == [0, MAX_SEED]
    assert list(seed_range(MAX_SEED, 1)) == [MAX_SEED]
    for parse in (parse_seeds, parse_seed, lambda text: parse_walk(f"0,{text}")):
        with pytest.raises(ValueError, match=str(MAX_SEED)):
            parse(str(MAX_SEED + 1))
    with pytest.raises(ValueError, match="run past the largest seed"):
        seed_range(MAX_SEED, 2)


@pytest.mark.parametrize("args, option", [
    (["--seed", str(MAX_SEED + 1), "-n", "1"], "--seed"),
    (["--seed", str(MAX_SEED), "-n", "2"], "-n"),
    (["--seeds", f"{MAX_SEED + 1}"], "--seeds"),
    (["--walk", f"1,{MAX_SEED + 1}"], "--walk"),
])  # fmt: skip
def test_dcgan_sample_refuses_a_seed_past_the_limit_in_one_line(tiny_export, tmp_path, args, option):
    result = CliRunner().invoke(sample_main, [*args, "--model", str(tiny_export), str(tmp_path / "out")])
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_the_largest_seed_is_written_and_named_so_the_server_can_serve_it(tiny_export, tmp_path):
    from dcgan.serve.generator import SpriteGenerator
    from dcgan.serve.server import App

    result = CliRunner().invoke(sample_main, ["--seed", str(MAX_SEED), "-n", "1", "--model", str(tiny_export),
                                              str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").iterdir()
    assert written.name == f"seed{MAX_SEED}.png"
    response = App(SpriteGenerator(tiny_export, provider="cpu")).route(f"/sprite/{MAX_SEED}.png")
    assert response.status == 200 and response.body == written.read_bytes()
    assert App(SpriteGenerator(tiny_export, provider="cpu")).route(f"/sprite/{MAX_SEED + 1}.png").status == 400


def test_the_browser_page_takes_the_same_seeds():
    script = BROWSER.read_text()
    pattern = re.search(r"text\.match\(/\^\(\\d\{1,(\d+)\}\)", script) or re.search(r"\\d\{1,(\d+)\}", script)
    assert pattern and int(pattern.group(1)) == len(str(MAX_SEED))  # 18 digits, every one of them a seed
    assert f"0-{MAX_SEED}" in script  # and its message names the same limit


def test_shards_partition_the_seeds_in_order():
    from dcgan.serve.seeds import parse_seeds

    seeds = parse_seeds("0-9,100,200-204")
    for k in (1, 2, 3, 7, 16, 40):
        parts = [list(seeds.shard(i, k)) for i in range(k)]
        assert [s for part in parts for s in part] == list(seeds)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
