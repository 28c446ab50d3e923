"""The docs stay readable and hold no real sprites: only figures this project's own models drew, small enough to
clone, and pages short enough to read."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Every figure under docs/, each drawn by one of this project's generators. The training data's sprites are not
# ours to publish: a sheet of real sprites (a holdout sheet, a coverage picture, a codec's inputs) stays in the
# user's own run folder, where dcgan-eval writes it, and never enters this list.
MODEL_FIGURES = {
    "shipped-sheet.png": "the shipped generator, seeds 0-63",
    "walk.gif": "the shipped generator, a latent walk through seeds 3, 17, 42 and 7",
    "training-progress.gif": "the shipped generator's run, the same 64 seeds over training",
    "colour-collapse.png": "the default recipe and a spectral-norm run at epoch 30",
    "even-upsampling.png": "width-54 runs: plain init, ICNR, checkerboard-free upsampling",
    "ada-from-scratch.png": "the width-54 run and the ADA run from scratch",
    "joint-batch.png": "the width-54 run and the one-batch-for-D run",
    "instance-noise.png": "seed 7 without and with instance noise",
    "paper-vs-resize.png": "the shipped generator and the resize generator",
    "resize-vs-palette.png": "the resize generator and the first palette generator",
    "patch-discriminator.png": "palette and resize generators with each discriminator",
    "code-grid-image-prior.png": "the code-grid priors, drawn through their decoder",
    "long-runs.png": "the resize and palette generators, the same 8 seeds from 18 k to 300 k images",
    "long-runs-curve.png": "measures of the resize and palette generators' checkpoints (a plot, no sprites)",
}
FIGURES_LIMIT = 2_000_000  # bytes, all of docs/'s figures together
PAGE_LIMITS = {"README.md": 15_000, "docs/experiments.md": 30_000}
DOCS_PAGE_LIMIT = 14_000  # every other docs/*.md


def figures() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*") if p.is_file() and p.suffix != ".md")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_every_figure_in_docs_was_drawn_by_our_models():
    found = {p.relative_to(DOCS).as_posix() for p in figures()}
    assert found, "no figures found under docs/"
    assert found - MODEL_FIGURES.keys() == set(), "figures that are not in the list of our models' drawings"


def test_the_list_names_only_figures_that_exist():
    missing = {name for name in MODEL_FIGURES if not (DOCS / name).is_file()}
    assert missing == set(), "listed figures that are gone: drop them from MODEL_FIGURES"


def test_figures_together_stay_small():
    sizes = {p.name: p.stat().st_size for p in figures()}
    assert sum(sizes.values()) <= FIGURES_LIMIT, f"docs/ figures take {sum(sizes.values()):,} bytes: {sizes}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_stay_short(page):
    name = page.relative_to(ROOT).as_posix()
    limit = PAGE_LIMITS.get(name, DOCS_PAGE_LIMIT)
    assert page.stat().st_size <= limit, f"{name} is {page.stat().st_size:,} bytes, over {limit:,}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pictures_on_pages_exist(page):
    """A figure that leaves docs/ leaves the pages that show it too."""
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text())
    broken = [t for t in targets if "://" not in t and not (page.parent / t).is_file()]
    assert broken == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_placeholder_is_left_where_a_number_belongs(page):
    """A line that is only a capitalised token (SERVE_TABLE, SHEET_LINE) is a slot a measurement was meant to fill."""
    outside_code = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    slots = re.findall(r"^\s*([A-Z][A-Z0-9]*_[A-Z0-9_]+)\s*$", outside_code, flags=re.M)
    assert slots == []
