"""Greedy batching for the model worker: no waiting when idle, everything queued when busy.

BentoML's adaptive batcher waits before each call for more requests, by an amount it
learns from the waits it has seen (they start near 0.4 s while it trains and decay
slowly): at low load every request paid that wait (issue 8 saw a mean batch of 1.7 at
57 ms per call). Here a call runs at once when the model is idle; calls that arrive while a
batch is running are all taken into the next one (up to ``max_items`` faces), so batches
grow exactly when the model is the bottleneck.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import anyio
import numpy as np


class QueueTimeout(Exception):
    """A call waited longer than ``max_wait_s`` before its batch could start."""


class GreedyBatcher:
    """``await batcher(items)`` -> ``fn(items)``, with concurrent calls' items concatenated along
    axis 0 into one ``fn`` call (run in a worker thread) and the result split back."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_items: int = 64, max_wait_s: float = 2.0):
        self.fn, self.max_items, self.max_wait_s = fn, max_items, max_wait_s
        self._pending: list[tuple[np.ndarray, asyncio.Future, float]] = []
        self._running = False

    async def __call__(self, items: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((np.asarray(items), future, time.monotonic()))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _next_batch(self) -> list[tuple[np.ndarray, asyncio.Future, float]]:
        """The oldest calls, up to max_items items (at least one call); late ones refused."""
        batch, count, now = [], 0, time.monotonic()
        while self._pending:
            items, future, queued = self._pending[0]
            if future.done():  # the caller gave up
                self._pending.pop(0)
                continue
            if now - queued > self.max_wait_s:
                self._pending.pop(0)
                future.set_exception(QueueTimeout(f"waited {now - queued:.1f} s for the model"))
                continue
            if batch and count + len(items) > self.max_items:
                break
            batch.append(self._pending.pop(0))
            count += len(items)
        return batch

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    out = await anyio.to_thread.run_sync(self.fn, np.concatenate([b[0] for b in batch]))
                except Exception as error:  # every caller of this batch gets the error
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                start = 0
                for items, future, _ in batch:
                    if not future.done():
                        future.set_result(out[start:start + len(items)])
                    start += len(items)
        finally:
            self._running = False
