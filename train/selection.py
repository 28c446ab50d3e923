"""`dcgan-select`: the checkpoint to export, chosen on seeds that are never reported and confirmed on fresh ones.

Every candidate (the kept checkpoints of the runs given) is scored with dcgan-eval's metrics on selection seeds.
Among those that meet the diversity and memorisation targets, the lowest NDBs become finalists; each finalist is
scored again on confirmation seeds that played no part in making it one, and the lowest confirmed NDB is the
choice. The lowest of many noisy readings is low partly by luck (the winner's curse): a checkpoint chosen at NDB
1.84 on one set of 5,000 seeds read 2.18 and 2.22 on two others. The confirmed reading is the one to trust, and
the number to publish comes from `dcgan-eval` on the reported seeds (0 .. n-1), which neither stage uses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .catalogue import METRICS, real_sprite_options
from .dependencies import require_torch
from .evaluate import generate, load_real

# the metrics of the table, in its order (headings: catalogue.METRICS); from flat colour on, what a person sees
COLUMNS = (
    "ndb", "jsd", "diversity_ratio", "memorisation_ratio", "kid", "line_art", "grid_texture",
    "flat_colour_share", "colours_per_sprite", "parts_per_sprite", "spectral_gap", "classifier_accuracy",
)  # fmt: skip


def candidates(paths: list[Path], from_epoch: int = 0) -> list[Path]:
    """Checkpoint files to score: a run folder gives its kept checkpoints (checkpoints/epochNNNN.pt) from
    `from_epoch` on, or its checkpoint.pt when it kept none; a file is taken as it is."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        kept = sorted((path / "checkpoints").glob("epoch[0-9]*.pt"))
        if not kept and (path / "checkpoint.pt").exists():
            found.append(path / "checkpoint.pt")
            continue
        if not kept:
            raise click.BadParameter(f"{path} holds no checkpoint.pt or checkpoints/epochNNNN.pt", param_hint="RUNS")
        found += [c for c in kept if int(c.stem.removeprefix("epoch")) >= from_epoch]
    if not found:
        raise click.BadParameter(f"no kept checkpoint from epoch {from_epoch} on", param_hint="--from-epoch")
    return found


def rank(row: dict) -> tuple[float, float]:
    """Lower is better: NDB, then JSD to break ties."""
    return row["ndb"], row["jsd"]


def pick_finalists(rows: list[dict], count: int, min_diversity: float, min_memorisation: float) -> list[int]:
    """Indices of the rows that meet both targets, best rank first, at most `count`."""
    eligible = [
        i for i, r in enumerate(rows)
        if r["diversity_ratio"] >= min_diversity and r["memorisation_ratio"] >= min_memorisation
    ]  # fmt: skip
    return sorted(eligible, key=lambda i: rank(rows[i]))[:count]


def ndb_cell(row: dict) -> str:
    return f"{row['ndb']:.2f}" + (f" ± {row['ndb_se']:.2f}" if row["ndb_se"] is not None else "")


def report_markdown(report: dict) -> str:
    """The report as a Markdown table, one row per candidate; the choice is marked."""
    heads = ["checkpoint", *(METRICS[m].heading for m in COLUMNS), "confirmed NDB", ""]
    lines = ["| " + " | ".join(heads) + " |", "|---" + "|---:" * (len(heads) - 2) + "|---|"]
    for c in report["candidates"]:
        sel, conf = c["selection"], c["confirmation"]
        cells = [ndb_cell(sel) if m == "ndb" else f"{sel[m]:.4f}" if m == "kid" else f"{sel[m]:.3f}" for m in COLUMNS]
        confirmed = ndb_cell(conf) if conf else ""
        mark = "chosen" if c["model"] == report["choice"] else ("finalist" if conf else "")
        lines.append("| " + " | ".join([c["model"], *cells, confirmed, mark]) + " |")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@real_sprite_options(count_help="Sprites per reading. 5,000 gives NDB a standard error of about 0.2.")
@click.option("--first-seed", type=click.IntRange(min=0), default=200000, help="The first selection seed.")
@click.option("--confirm-seed", type=click.IntRange(min=0), default=300000, help="The first confirmation seed.")
@click.option("--finalists", "finalist_count", type=click.IntRange(min=1), default=3,
              help="Candidates scored again on fresh seeds.")  # fmt: skip
@click.option("--min-diversity", type=float, default=0.9, help="Diversity ratio a candidate must reach.")
@click.option("--min-memorisation", type=float, default=0.9, help="Memorisation ratio a candidate must reach.")
@click.option("--from-epoch", type=click.IntRange(min=0), default=0, help="Skip kept checkpoints before this epoch.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("selection"),
              help="Folder for selection.json and selection.md.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in --out.")
def main(
    runs: tuple[Path, ...],
    data: Path,
    holdout: Path | None,
    count: int,
    first_seed: int,
    confirm_seed: int,
    finalist_count: int,
    min_diversity: float,
    min_memorisation: float,
    from_epoch: int,
    bins: int,
    out: Path,
    overwrite: bool,
):
    """Choose the checkpoint to export among the kept checkpoints of RUNS (run folders or checkpoint files).

    \b
    Examples:
      dcgan-select runs/a runs/b --data ../shared/data/pokemon --holdout ../shared/data/pokemon-holdout
      dcgan-select runs/a --data sprites/ -n 5000 --from-epoch 90 --out choice/
    """
    require_torch("dcgan-select")
    from dcgan.serve.files import write_text_atomic

    from .metrics import EVAL_SEED, Reference

    if abs(confirm_seed - first_seed) < count:
        raise click.BadParameter(
            f"seeds {confirm_seed}..{confirm_seed + count - 1} overlap the selection seeds "
            f"{first_seed}..{first_seed + count - 1}",
            param_hint="--confirm-seed",
        )
    names = ("selection.json", "selection.md")
    if not overwrite and any((out / name).exists() for name in names):
        raise click.ClickException(f"{out} already holds a selection; pass --overwrite or choose another --out")
    paths = candidates(list(runs), from_epoch)
    train, real_holdout, note = load_real(data, holdout, bins)
    if note:
        click.echo(f"note: {note}", err=True)
    real = Reference(train, real_holdout, k=bins, seed=EVAL_SEED)  # the real side, computed once for all

    def score(path: Path, seed: int) -> dict:
        sprites, _ = generate(path, count, seed)
        metrics = real.score(sprites)["metrics"]
        return {**{m: metrics[m]["model"] for m in COLUMNS}, "ndb_se": metrics["ndb"]["model_se"]}

    with click.progressbar(paths, label=f"scoring on seeds {first_seed}+", file=sys.stderr) as bar:
        rows = [score(path, first_seed) for path in bar]
    chosen_few = pick_finalists(rows, finalist_count, min_diversity, min_memorisation)
    with click.progressbar(chosen_few, label=f"confirming on seeds {confirm_seed}+", file=sys.stderr) as bar:
        confirmed = {i: score(paths[i], confirm_seed) for i in bar}
    chosen = min(confirmed, key=lambda i: rank(confirmed[i]), default=None)
    report = {
        "selection_seeds": [first_seed, first_seed + count - 1],
        "confirmation_seeds": [confirm_seed, confirm_seed + count - 1],
        "targets": {"diversity_ratio": min_diversity, "memorisation_ratio": min_memorisation},
        "note": note or None,
        "choice": str(paths[chosen]) if chosen is not None else None,
        "candidates": [
            {"model": str(p), "selection": rows[i], "confirmation": confirmed.get(i)} for i, p in enumerate(paths)
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "selection.json", json.dumps(report, indent=2))
    table = report_markdown(report)
    write_text_atomic(out / "selection.md", table + "\n")
    click.echo(table)
    click.echo(f"Wrote {', '.join(names)} to {out}")
    if chosen is None:
        raise click.ClickException(
            f"no checkpoint reaches diversity {min_diversity} and memorisation {min_memorisation} "
            "on the selection seeds"
        )
    conf = confirmed[chosen]
    click.echo(
        f"Chosen: {paths[chosen]} (NDB {rows[chosen]['ndb']:.2f} on the selection seeds, {ndb_cell(conf)} on the "
        f"confirmation seeds). Export it with dcgan-export {paths[chosen]} --onnx"
    )
