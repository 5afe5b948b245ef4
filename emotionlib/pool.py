"""Objects that keep memory between calls, reused under traffic and dropped once idle.

OpenCV's detectors keep buffers sized to the largest image they have seen (a Haar cascade
after one 1280x1280 image: +94 MiB, measured), one per concurrent detection. Each detector
keeps its objects in an ``IdlePool``; ``drop_idle_pools`` (called by the service once a
worker has been idle for a moment) drops the ones nobody has used for a while, and the
next call builds a new one (a cascade: ~25 ms).
"""
from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager

_POOLS: "weakref.WeakSet[IdlePool]" = weakref.WeakSet()


class IdlePool:
    """Objects made by ``factory``, each used by one borrower at a time (OpenCV's detectors are
    not documented as thread-safe), kept for reuse and dropped by ``drop_idle_pools`` once
    unused for ``idle_s`` (so steady traffic keeps them, and an idle worker gives their
    buffers back)."""

    def __init__(self, factory, idle_s: float = 0.5):
        self._factory, self.idle_s = factory, idle_s
        self._free: list[tuple[float, object]] = []
        self._lock = threading.Lock()
        _POOLS.add(self)

    @contextmanager
    def borrow(self):
        with self._lock:
            item = self._free.pop()[1] if self._free else None
        if item is None:
            item = self._factory()
        try:
            yield item
        finally:
            with self._lock:
                self._free.append((time.monotonic(), item))

    def __len__(self) -> int:
        return len(self._free)

    def drop_idle(self) -> int:
        """Drop the objects unused for idle_s; how many were dropped."""
        cutoff = time.monotonic() - self.idle_s
        with self._lock:
            keep = [entry for entry in self._free if entry[0] > cutoff]
            dropped = len(self._free) - len(keep)
            self._free = keep
        return dropped


def drop_idle_pools() -> None:
    """Drop the idle objects of every IdlePool (IdlePool.drop_idle)."""
    for pool in list(_POOLS):
        pool.drop_idle()
