"""Seeds as users write them, parsed in one place for dcgan-sample, dcgan-serve and the walks, under one limit.

A seed is a whole number of at most 18 digits (0 .. MAX_SEED): what `--seed`, `--seeds`, `--walk`, the server's
routes and the browser page (examples/browser/sprites.js, with BigInt) all take, so every file written can be
fetched again by its seed everywhere.
"""

from __future__ import annotations

import re

MAX_SEED = 10**18 - 1
SEED = r"\d{1,18}"  # the pattern of one seed: MAX_SEED has 18 digits


class Seeds:
    """A union of seed ranges that never materialises the whole list: `0-63,100,200-209`."""

    def __init__(self, ranges: list[range]):
        self.ranges = ranges

    def __iter__(self):
        for r in self.ranges:
            yield from r

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def __contains__(self, seed: int) -> bool:
        return any(seed in r for r in self.ranges)

    def __str__(self) -> str:
        return ",".join(f"{r.start}" if len(r) == 1 else f"{r.start}-{r.stop - 1}" for r in self.ranges)


def seed_range(first: int, count: int) -> Seeds:
    """Seeds first .. first+count-1; ValueError past MAX_SEED."""
    if first + count - 1 > MAX_SEED:
        raise ValueError(f"seeds {first} .. {first + count - 1} run past the largest seed, {MAX_SEED}")
    return Seeds([range(first, first + count)])


def parse_seeds(text: str) -> Seeds:
    """ "0-63,100,200-209" -> Seeds; ValueError says what is wrong with it."""
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(rf"({SEED})(?:-({SEED}))?", part)
        if not m:
            raise ValueError(f"{part!r} is not a seed (0 to {MAX_SEED}) or a range like 0-63 (in {text!r})")
        start, stop = int(m.group(1)), int(m.group(2) or m.group(1))
        if stop < start:
            raise ValueError(f"range {part!r} runs backwards")
        ranges.append(range(start, stop + 1))
    ordered = sorted(ranges, key=lambda r: r.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.stop:
            raise ValueError(f"seeds {a.start}-{a.stop - 1} and {b.start}-{b.stop - 1} overlap")
    return Seeds(ranges)


def parse_seed(text: str) -> int:
    """One seed, "42" -> 42; ValueError otherwise."""
    if not re.fullmatch(SEED, str(text)):
        raise ValueError(f"{text!r} is not a seed (a whole number from 0 to {MAX_SEED})")
    return int(text)


def parse_walk(text: str) -> list[int]:
    """ "3,17,42" -> [3, 17, 42], the seeds a walk goes through; ValueError otherwise."""
    parts = str(text).replace(" ", "").split(",")
    if not all(re.fullmatch(SEED, p) for p in parts):
        raise ValueError(f"{text!r} is not a list of seeds like 3,17,42 (each 0 to {MAX_SEED})")
    if len(parts) < 2:
        raise ValueError("a walk needs at least two seeds, like 3,17")
    return [int(p) for p in parts]
