"""Batcher: single-sprite requests that wait together run as one batch, and each gets its own sprite."""

import threading

import numpy as np
import pytest

from dcgan.serve.batcher import Batcher
from dcgan.serve.generator import SpriteGenerator


class Gated:
    """The generator, whose first batch waits at a gate: the test queues more requests behind it meanwhile."""

    def __init__(self, gen):
        self.gen, self.session, self.calls = gen, gen.session, []
        self.entered, self.gate = threading.Event(), threading.Event()

    def generate(self, seeds):
        self.calls.append(list(seeds))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(timeout=60)
        return self.gen.generate(seeds)


@pytest.fixture(scope="module")
def gen(tiny_export):
    return SpriteGenerator(tiny_export, provider="cpu")


def test_requests_that_wait_together_run_as_one_batch_and_each_gets_its_own_sprite(gen):
    gated = Gated(gen)
    batcher = Batcher(gated, max_batch=8)
    try:
        first = batcher.submit(100)
        assert gated.entered.wait(timeout=60)  # the first runs alone: it never waits for company
        waiting = {seed: batcher.submit(seed) for seed in range(10)}  # queued while the first runs
        gated.gate.set()
        assert [len(c) for c in gated.calls[:1]] == [1]
        got = {seed: f.result(timeout=60) for seed, f in waiting.items()}
    finally:
        gated.gate.set()
        batcher.close()
    np.testing.assert_array_equal(first.result(), gen([100])[0])
    for seed, sprite in got.items():
        np.testing.assert_array_equal(sprite, gen([seed])[0])
    assert [len(c) for c in gated.calls] == [1, 8, 2]  # the ten behind it: a full batch of 8, then the rest
    assert (batcher.batches, batcher.sprites) == (3, 11)


def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_runs(gen):
    class Failing:
        session, calls = gen.session, 0

        def generate(self, seeds):
            Failing.calls += 1
            if Failing.calls == 1:
                raise RuntimeError("out of memory")
            return gen.generate(seeds)

    batcher = Batcher(Failing())
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            batcher.sprite(1)
        np.testing.assert_array_equal(batcher.sprite(2), gen([2])[0])
    finally:
        batcher.close()
