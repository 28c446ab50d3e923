import json

import click
import pytest

from conftest import invoke
from dcgan.train.config import ModelConfig
from dcgan.train.demo import demo_checkpoint
from dcgan.train.evaluate import main as eval_main
from dcgan.train.selection import candidates, main, pick_finalists


def row(ndb, jsd=0.1, diversity=1.0, memorisation=1.0):
    return {"ndb": ndb, "jsd": jsd, "diversity_ratio": diversity, "memorisation_ratio": memorisation}


def test_finalists_meet_both_targets_and_come_lowest_ndb_first():
    rows = [
        row(1.0, diversity=0.85),  # the lowest NDB, but too little variety
        row(1.5, memorisation=0.8),  # closer to the training set than unseen real sprites are
        row(2.5),
        row(2.0, jsd=0.09),
        row(2.0, jsd=0.05),  # same NDB: the lower JSD first
        row(3.0),
    ]
    assert pick_finalists(rows, 3, min_diversity=0.9, min_memorisation=0.9) == [4, 3, 2]
    assert pick_finalists(rows, 10, min_diversity=0.9, min_memorisation=0.9) == [4, 3, 2, 5]
    assert pick_finalists(rows, 2, min_diversity=0.0, min_memorisation=0.0) == [0, 1]
    assert pick_finalists(rows, 3, min_diversity=2.0, min_memorisation=0.0) == []


def test_eval_and_select_read_the_real_sprites_with_the_same_options():
    names = ("data", "holdout", "count", "bins")

    def shared(command):
        params = [p for p in command.params if p.name in names]
        return {p.name: (p.opts, p.type.to_info_dict(), p.default, p.required) for p in params}

    assert shared(eval_main) == shared(main) and len(shared(main)) == len(names)


def test_the_table_heads_each_column_from_the_metrics_catalogue():
    from dcgan.train.catalogue import METRICS
    from dcgan.train.selection import COLUMNS, report_markdown

    row = {**dict.fromkeys(COLUMNS, 0.5), "ndb_se": None}
    table = report_markdown({"choice": None, "candidates": [{"model": "a.pt", "selection": row, "confirmation": None}]})
    head = table.splitlines()[0]
    assert head == "| " + " | ".join(["checkpoint", *(METRICS[m].heading for m in COLUMNS), "confirmed NDB", ""]) + " |"
    assert "| a.pt | 0.50 | 0.500 |" in table


def test_a_run_gives_its_kept_checkpoints_from_an_epoch_on(tmp_path):
    kept = tmp_path / "a" / "checkpoints"
    kept.mkdir(parents=True)
    for epoch in (10, 20, 30):
        (kept / f"epoch{epoch:04d}.pt").touch()
    (tmp_path / "a" / "checkpoint.pt").touch()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.pt").touch()  # kept none: its last checkpoint
    single = tmp_path / "c.pt"
    single.touch()
    found = candidates([tmp_path / "a", tmp_path / "b", single], from_epoch=20)
    assert found == [kept / "epoch0020.pt", kept / "epoch0030.pt", tmp_path / "b" / "checkpoint.pt", single]
    (tmp_path / "empty").mkdir()
    with pytest.raises(click.BadParameter, match="holds no checkpoint"):
        candidates([tmp_path / "empty"])
    with pytest.raises(click.BadParameter, match="from epoch 40"):
        candidates([tmp_path / "a"], from_epoch=40)


@pytest.mark.slow
def test_dcgan_select_confirms_its_finalist_on_fresh_seeds(make_sprites, tmp_path):
    run = tmp_path / "run"
    for epoch, seed in ((10, 1), (20, 2), (30, 3)):  # three different generators, kept like a run keeps them
        demo_checkpoint(run / "checkpoints" / f"epoch{epoch:04d}.pt", ModelConfig(ngf=8, ndf=8), seed=seed)
    data = make_sprites(48, name="train", seed=5)
    hold = make_sprites(12, name="hold", seed=6)
    real = ["--data", str(data), "--holdout", str(hold), "-n", "32", "--bins", "4"]
    targets = ["--min-diversity", "0", "--min-memorisation", "0"]
    out = tmp_path / "sel"
    args = [str(run), *real, *targets, "--finalists", "2", "--confirm-seed", "5000", "--out", str(out)]
    result = invoke(main, *args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "selection.json").read_text())
    assert [c["model"] for c in report["candidates"]] == [
        str(run / "checkpoints" / f"epoch{e:04d}.pt") for e in (10, 20, 30)
    ]
    assert report["selection_seeds"] == [200000, 200031] and report["confirmation_seeds"] == [5000, 5031]
    rows = [c["selection"] for c in report["candidates"]]
    finalists = sorted(range(3), key=lambda i: (rows[i]["ndb"], rows[i]["jsd"]))[:2]
    confirmed = {i: c["confirmation"] for i, c in enumerate(report["candidates"]) if c["confirmation"]}
    assert sorted(confirmed) == sorted(finalists)  # the two best on the selection seeds, and only they
    best = min(confirmed, key=lambda i: (confirmed[i]["ndb"], confirmed[i]["jsd"]))
    assert report["choice"] == report["candidates"][best]["model"]
    assert f"Chosen: {report['choice']}" in result.output and "| chosen |" in (out / "selection.md").read_text()

    # the confirmed reading is dcgan-eval's on the confirmation seeds
    check = invoke(eval_main, report["choice"], *real, "--first-seed", "5000", "--out", str(tmp_path / "e"))
    assert check.exit_code == 0, check.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]
    assert confirmed[best]["ndb"] == pytest.approx(metrics["ndb"]["model"])
    assert confirmed[best]["jsd"] == pytest.approx(metrics["jsd"]["model"])

    again = invoke(main, *args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    overlap = invoke(main, *args, "--overwrite", "--confirm-seed", "200010")
    assert overlap.exit_code == 2 and "overlap the selection seeds" in overlap.output
    one = [str(run / "checkpoints" / "epoch0010.pt"), *real, "--out", str(tmp_path / "strict")]
    strict = invoke(main, *one, "--min-diversity", "5")
    assert strict.exit_code == 1 and "no checkpoint reaches diversity 5.0" in strict.output
    assert json.loads((tmp_path / "strict" / "selection.json").read_text())["choice"] is None  # scores still written
