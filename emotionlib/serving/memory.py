"""Make the serving processes give memory back to the system after bursts.

glibc's malloc keeps freed memory for reuse; patches.tune_allocator (a fixed 4 MiB mmap
threshold, 2 arenas: measured there) makes large uploads and images return to the system as
they are freed. ``release_free_memory`` asks malloc to return what it still holds
(malloc_trim), called once a worker has been idle for a moment (UploadGuard's on_idle; with
the allocator settings the server came back within 3% of its baseline after bursts of 8 MB
photos, benchmarks/memory_burst.py). It does nothing without glibc.

``release_free_memory`` also drops the detectors' pooled objects nobody has used for a while
(emotionlib.pool.IdlePool: a Haar cascade keeps +94 MiB of buffers after one 1280x1280
image, measured); the next call builds a new one (a cascade: ~25 ms).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

from emotionlib.pool import drop_idle_pools


@functools.cache
def libc():
    """The C library when it is glibc (mallopt, malloc_trim), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def release_free_memory() -> None:
    """Drop idle pooled objects (IdlePool), collect reference cycles (a request cancelled by
    the timeout leaves its frames, and so its upload and image, in a cycle with the exception:
    the cyclic GC, driven by object counts, may not run for a long time after a few big
    buffers), then malloc_trim. It blocks the calling thread (the event loop): call it only
    once the worker has been idle for a while (UploadGuard's idle_delay_s)."""
    drop_idle_pools()
    gc.collect()
    glibc = libc()
    if glibc is not None:
        glibc.malloc_trim(0)
