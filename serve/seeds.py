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

    def shard(self, index: int, count: int) -> Seeds:
        """Part `index` of `count` (0-based): the seeds at positions len*index//count .. len*(index+1)//count - 1,
        in the order given. The parts never overlap and together are exactly these seeds, so `count` workers
        split a run with no coordination; each part is a few contiguous ranges, whatever its size."""
        total = len(self)
        start, stop = total * index // count, total * (index + 1) // count
        ranges, at = [], 0
        for r in self.ranges:
            lo, hi = max(start - at, 0), min(stop - at, len(r))
            if lo < hi:
                ranges.append(r[lo:hi])
            at += len(r)
        return Seeds(ranges)

    def without(self, present: set[int]) -> Seeds:
        """These seeds less those in `present`, as ranges."""
        ranges: list[range] = []
        for seed in self:
            if seed in present:
                continue
            if ranges and ranges[-1].stop == seed:
                ranges[-1] = range(ranges[-1].start, seed + 1)
            else:
                ranges.append(range(seed, seed + 1))
        return Seeds(ranges)


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


def parse_shard(text: str, environ) -> tuple[int, int]:
    """ "I/K" (shard I of K, I from 0), "auto" or "auto/K" -> (I, K); ValueError otherwise.

    auto reads a Slurm job array (SLURM_ARRAY_TASK_ID from SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT) or a
    Kubernetes Indexed Job (JOB_COMPLETION_INDEX; Kubernetes does not give the count, so it is "auto/K").
    """
    m = re.fullmatch(r"(\d+|auto)(?:/(\d+))?", str(text).replace(" ", ""))
    if not m or (m.group(1) != "auto" and m.group(2) is None):
        raise ValueError(f"{text!r} is not a shard: I/K (I from 0 to K-1), auto, or auto/K")
    given = int(m.group(2)) if m.group(2) else None
    if m.group(1) != "auto":
        index, count = int(m.group(1)), given
    elif "SLURM_ARRAY_TASK_ID" in environ:
        try:
            first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
            index = int(environ["SLURM_ARRAY_TASK_ID"]) - first
            count = int(environ["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError) as err:
            raise ValueError(f"auto: the Slurm array variables are incomplete or not numbers ({err})") from None
        if given is not None and given != count:
            raise ValueError(f"auto/{given}: the Slurm array has {count} tasks")
        step = environ.get("SLURM_ARRAY_TASK_STEP", "1")
        if step != "1":
            raise ValueError(f"auto needs an array without a step (--array=0-{count - 1}), not step {step}")
    elif "JOB_COMPLETION_INDEX" in environ:
        if given is None:
            raise ValueError("auto in an Indexed Job needs the count: auto/K, with K the Job's completions")
        if not environ["JOB_COMPLETION_INDEX"].isdigit():
            raise ValueError(f"JOB_COMPLETION_INDEX={environ['JOB_COMPLETION_INDEX']!r} is not a number")
        index, count = int(environ["JOB_COMPLETION_INDEX"]), given
    else:
        raise ValueError("auto found neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX; give the shard as I/K")
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: the index runs from 0 to the count - 1")
    return index, count


def parse_walk(text: str) -> list[int]:
    """ "3,17,42" -> [3, 17, 42], the seeds a walk goes through; ValueError otherwise."""
    parts = str(text).replace(" ", "").split(",")
    if not all(re.fullmatch(SEED, p) for p in parts):
        raise ValueError(f"{text!r} is not a list of seeds like 3,17,42 (each 0 to {MAX_SEED})")
    if len(parts) < 2:
        raise ValueError("a walk needs at least two seeds, like 3,17")
    return [int(p) for p in parts]
