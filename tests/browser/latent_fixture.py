"""Write fixtures/latents.json: numpy's own latents for chosen seeds, which examples/browser/latent.js must match.

Run from the repository root: python tests/browser/latent_fixture.py. The seeds cover every branch of numpy's
float32 ziggurat within the first 100 draws (seed 0: a wedge rejection, 1: a wedge acceptance, 11: the tail,
324: a retried tail draw), the seeds the browser test draws, and seeds of two and more 32-bit words up to the
largest the sampler accepts (18 digits).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NZ = 100
SEEDS = [0, 1, 2, 3, 4, 5, 6, 7, 11, 42, 324, 2**32 - 1, 2**32, 2**32 + 5, 2**63 - 1, 10**18 - 1]
FIXTURE = Path(__file__).parent / "fixtures" / "latents.json"


def latents_by_seed() -> dict[str, list[str]]:
    """{seed: z as float32 bit patterns in hex}; the bits, because a decimal could round on the way."""
    draw = {seed: np.random.default_rng(seed).standard_normal(NZ, np.float32) for seed in SEEDS}
    return {str(seed): [f"{bits:08x}" for bits in z.view(np.uint32)] for seed, z in draw.items()}


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    recipe = "numpy.random.default_rng(seed).standard_normal(100, dtype=numpy.float32), float32 bits in hex"
    FIXTURE.write_text(json.dumps({"numpy": np.__version__, "recipe": recipe, "z": latents_by_seed()}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
