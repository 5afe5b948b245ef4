"""GreedyBatcher: concurrent calls share one call of the function, results go back to each."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from emotionlib.serving.batching import GreedyBatcher, QueueTimeout


class Recorder:
    """A function that squares its rows and remembers each batch; the first call blocks
    until released, so calls made meanwhile queue up."""

    def __init__(self):
        self.batches, self.release = [], threading.Event()

    def __call__(self, x):
        self.batches.append(len(x))
        if len(self.batches) == 1:
            self.release.wait(5)
        if (x < 0).any():
            raise ValueError("negative input")
        return x ** 2


async def calls_while_busy(batcher, recorder, arrays, hold=0.01):
    first = asyncio.ensure_future(batcher(np.array([[1.0]])))
    for _ in range(5000):
        if recorder.batches:
            break
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(batcher(a)) for a in arrays]
    await asyncio.sleep(hold)
    recorder.release.set()
    return await first, await asyncio.gather(*rest, return_exceptions=True)


def test_calls_made_while_busy_share_one_batch_and_get_their_own_rows():
    recorder = Recorder()
    batcher = GreedyBatcher(recorder, max_items=64)
    arrays = [np.full((n, 1), float(n)) for n in (1, 3, 2)]
    first, rest = asyncio.run(calls_while_busy(batcher, recorder, arrays))
    assert recorder.batches == [1, 6]  # one call at once when idle, then the three together
    assert first.tolist() == [[1.0]]
    for a, out in zip(arrays, rest):
        assert out.tolist() == (a ** 2).tolist()


def test_max_items_splits_batches():
    recorder = Recorder()
    batcher = GreedyBatcher(recorder, max_items=4)
    _, rest = asyncio.run(calls_while_busy(batcher, recorder, [np.ones((3, 1))] * 3))
    assert recorder.batches == [1, 3, 3, 3]
    assert all(out.shape == (3, 1) for out in rest)


def test_an_error_reaches_only_its_batch():
    recorder = Recorder()
    batcher = GreedyBatcher(recorder, max_items=2)
    _, rest = asyncio.run(calls_while_busy(batcher, recorder, [-np.ones((2, 1)), np.ones((2, 1))]))
    assert isinstance(rest[0], ValueError)
    assert rest[1].tolist() == [[1.0], [1.0]]


def test_a_call_that_waited_too_long_is_refused():
    recorder = Recorder()
    batcher = GreedyBatcher(recorder, max_items=8, max_wait_s=0.2)
    _, rest = asyncio.run(calls_while_busy(batcher, recorder, [np.ones((1, 1))], hold=0.5))
    assert isinstance(rest[0], QueueTimeout)
    with pytest.raises(QueueTimeout):
        raise rest[0]
