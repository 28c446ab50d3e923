"""Single-sprite requests that arrive together, run as one onnxruntime batch.

One thread owns the queue. It takes the first waiting seed and every seed queued behind it, up to `max_batch`;
under load (the last batch held more than one) it also waits up to `wait_s` for the batch to fill. A lone request
never waits, so one client sees the latency of a batch of 1. Each caller gets its own sprite back.

On the CPU provider a sprite's bytes do not depend on the batch it ran in (a test checks it under load, against
dcgan-sample's files). cuDNN picks its convolution algorithms per batch shape, so on CUDA they may differ in the
last bit; there every request runs alone, as `dcgan-sample --seeds N` runs it.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np


class Batcher:
    def __init__(self, generator, max_batch: int = 64, wait_s: float = 0.002):
        self.gen = generator
        self.max_batch = 1 if generator.session.on_cuda else max_batch
        self.wait_s = wait_s
        self.batches = self.sprites = 0  # counts, for /health and the benchmark
        self._queue: queue.SimpleQueue[tuple[int, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, seed: int) -> Future:
        """A future of seed's sprite, uint8 RGBA (H, W, 4), computed in a batch with whatever else is waiting."""
        future: Future = Future()
        self._queue.put((seed, future))
        return future

    def sprite(self, seed: int) -> np.ndarray:
        return self.submit(seed).result()

    def close(self) -> None:
        """Serve what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _collect(self, first: tuple[int, Future], busy: bool) -> list[tuple[int, Future]] | None:
        batch = [first]
        deadline = time.monotonic() + self.wait_s if busy else None
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if deadline is None or (left := deadline - time.monotonic()) <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:  # closing: serve what is in hand, then stop
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        busy = False
        while (first := self._queue.get()) is not None:
            batch = self._collect(first, busy)
            busy = len(batch) > 1
            try:
                sprites = self.gen.generate([seed for seed, _ in batch])
            except Exception as err:  # noqa: BLE001 - every waiting request hears of it
                for _, future in batch:
                    future.set_exception(err)
                continue
            self.batches += 1
            self.sprites += len(batch)
            for (_, future), sprite in zip(batch, sprites, strict=True):
                future.set_result(sprite)
