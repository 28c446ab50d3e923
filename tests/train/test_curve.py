"""dcgan-curve: every kept checkpoint of a run scored on the same seeds, as a table, a plot and a strip."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from dcgan.train import curve
from dcgan.train.cli import main as train_main
from dcgan.train.curve import MEASURES, STRIP_SEEDS
from dcgan.train.curve import main as curve_main


@pytest.mark.slow
def test_a_curve_scores_every_kept_checkpoint_once_and_shows_its_sprites(make_sprites, tmp_path, monkeypatch):
    data, holdout = make_sprites(48, "train"), make_sprites(12, "holdout", seed=1)
    run = tmp_path / "tiny"
    tiny = ["--ngf", "4", "--ndf", "4", "--batch-size", "8", "--keep-every", "1", "--sample-every", "3", "-q"]
    result = CliRunner().invoke(train_main, ["--data", str(data), "--out", str(run), "--epochs", "3", *tiny])
    assert result.exit_code == 0, result.output
    scored = []
    score = curve.measure

    def counted(reference, sprites):
        scored.append(len(sprites))
        return score(reference, sprites)

    monkeypatch.setattr(curve, "measure", counted)
    out = tmp_path / "curve"
    args = [str(run), "--data", str(data), "--holdout", str(holdout), "-n", "204", "--out", str(out)]
    result = CliRunner().invoke(curve_main, args)
    assert result.exit_code == 0, result.output
    assert scored == [204, 204, 204]  # epochs 1, 2 and 3; checkpoint.pt is epoch 3's, not scored twice

    rows = [line for line in (out / "curve.md").read_text().splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| holdout", "| tiny", "| tiny", "| tiny"]
    images = [r.split(" | ")[3] for r in rows[2:]]
    assert images == ["48", "96", "144"]  # 48 sprites in batches of 8: 6 steps an epoch
    saved = json.loads((out / "curve.json").read_text())
    assert [p["epoch"] for p in saved["points"]] == [1, 2, 3]
    assert set(saved["points"][0]["metrics"]) == {name for name, _, _ in MEASURES} | {"ndb_se"}
    ndb = [r.split(" | ")[-1].strip(" |") for r in rows[1:]]
    assert " ± " not in ndb[0] and all(" ± " in cell for cell in ndb[1:])  # 17 subsets of 12: a standard error
    assert saved["points"][0]["metrics"] != saved["points"][2]["metrics"]  # the model changed along the run

    strip = Image.open(out / "strip-tiny.png")
    assert strip.height == 3 * 98 + 2 and strip.width > STRIP_SEEDS * 98  # a row of 16 sprites per checkpoint
    row_of = lambda i: strip.crop((84, 2 + 98 * i, strip.width, 98 * (i + 1)))  # noqa: E731
    assert row_of(0).tobytes() != row_of(2).tobytes()
    assert Image.open(out / "curve.png").size[0] >= 900

    # run again as the run goes on: cached checkpoints are not scored again
    assert CliRunner().invoke(curve_main, args).exit_code == 0
    assert scored == [204, 204, 204]


def test_a_curve_of_a_folder_without_checkpoints_is_refused_in_one_line(make_sprites, tmp_path):
    data, holdout = make_sprites(48, "train"), make_sprites(12, "holdout", seed=1)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(curve_main, [str(tmp_path / "empty"), "--data", str(data), "--holdout", str(holdout)])
    assert result.exit_code == 2 and "holds no checkpoint" in result.output
    assert "Traceback" not in result.output
