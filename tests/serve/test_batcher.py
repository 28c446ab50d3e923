"""Batcher: single-sprite requests that wait together run as one batch, and each gets its own sprite."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dcgan.serve.batcher import Batcher
from dcgan.serve.generator import SpriteGenerator


class Gated:
    """The generator, whose first batch waits at a gate that the test opens once others are in line behind it."""

    def __init__(self, gen):
        self.gen, self.session, self.calls = gen, gen.session, []
        self.entered, self.gate = threading.Event(), threading.Event()

    def generate(self, seeds):
        self.calls.append((threading.current_thread().name, list(seeds)))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(timeout=60)
        return self.gen.generate(seeds)


@pytest.fixture(scope="module")
def gen(tiny_export):
    return SpriteGenerator(tiny_export, provider="cpu")


def test_a_lone_request_runs_at_once_in_its_own_thread(gen):
    gated = Gated(gen)
    gated.gate.set()
    np.testing.assert_array_equal(Batcher(gated).sprite(7), gen([7])[0])
    assert gated.calls == [(threading.current_thread().name, [7])]  # no other thread, no waiting for company


def test_requests_that_wait_together_run_as_one_batch_and_each_gets_its_own_sprite(gen):
    gated = Gated(gen)
    batcher = Batcher(gated, max_batch=8, leaders=1)  # one batch in flight: the others wait in line
    with ThreadPoolExecutor(11) as pool:
        first = pool.submit(batcher.sprite, 100)
        assert gated.entered.wait(timeout=60)  # the first runs alone, at once
        waiting = {seed: pool.submit(batcher.sprite, seed) for seed in range(10)}
        with batcher.changed:  # notified as each joins the line: no polling
            assert batcher.changed.wait_for(lambda: len(batcher._waiting) == 10, timeout=60)
        gated.gate.set()
        got = {seed: f.result(timeout=60) for seed, f in waiting.items()}
        np.testing.assert_array_equal(first.result(timeout=60), gen([100])[0])
    for seed, sprite in got.items():
        np.testing.assert_array_equal(sprite, gen([seed])[0])
    sizes = [len(seeds) for _, seeds in gated.calls]
    assert sizes == [1, 8, 2] and sorted(sum((s for _, s in gated.calls[1:]), [])) == list(range(10))
    assert len({name for name, _ in gated.calls}) == 3  # each batch led by a thread of its own requests
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
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.sprite(1)
    np.testing.assert_array_equal(batcher.sprite(2), gen([2])[0])


def test_with_two_leaders_a_second_batch_runs_while_the_first_is_in_flight(gen):
    gated = Gated(gen)
    batcher = Batcher(gated, max_batch=8, leaders=2)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.sprite, 100)
        assert gated.entered.wait(timeout=60)
        np.testing.assert_array_equal(pool.submit(batcher.sprite, 5).result(timeout=60), gen([5])[0])  # not held up
        gated.gate.set()
        np.testing.assert_array_equal(first.result(timeout=60), gen([100])[0])
