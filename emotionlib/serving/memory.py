"""Make the serving processes give memory back to the system after bursts.

glibc's malloc keeps freed memory for reuse: its mmap threshold grows with the largest
block freed (up to 32 MiB on 64-bit), so after a few multi-megabyte uploads and decoded
images every later buffer of that size comes from the heap arenas, and one arena per
thread (the decode threads) keeps its high-water mark. Measured with
benchmarks/memory_burst.py (README, "Benchmarks"): the API worker stayed at ~1.7 GiB after
a burst of 8 MB photos with the defaults.

``tune_allocator`` fixes the mmap threshold (blocks of 4 MiB and more are mapped and
unmapped on free, so large uploads and images return to the system at once) and caps the
number of arenas. At 256 KiB every photo-sized buffer (a 350x350 image, the detectors'
blobs) was mapped, page-faulted and unmapped per request: the API worker spent 28% of a
core in the kernel; at 4 MiB 10%, and YuNet at concurrency 16 served 34.4 instead of
28.5-31.0 requests/s (dev photos), with memory after bursts as before.
``release_free_memory`` asks malloc to return what it still holds (malloc_trim), called
once a worker has been idle for a moment. Both do nothing without glibc.

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

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 * 1024 * 1024
ARENAS = 2


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Fixed mmap threshold and few arenas in this process; False when not on glibc."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def release_free_memory() -> None:
    """Drop idle pooled objects (IdlePool), collect reference cycles (a request cancelled by
    the timeout leaves its frames, and so its upload and image, in a cycle with the exception:
    the cyclic GC, driven by object counts, may not run for a long time after a few big
    buffers), then malloc_trim. It blocks the calling thread (the event loop): call it only
    once the worker has been idle for a while (UploadGuard's idle_delay_s)."""
    drop_idle_pools()
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
