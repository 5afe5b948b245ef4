"""emotionlib.pool.IdlePool: detectors' buffers are reused under traffic and given back when idle."""
import threading
import time

import numpy as np

from emotionlib.pool import IdlePool
from emotionlib.serving.memory import release_free_memory


def test_concurrent_borrowers_get_distinct_objects_and_reuse_them():
    made = []
    pool = IdlePool(lambda: made.append(object()) or made[-1])
    barrier = threading.Barrier(3)
    seen = []

    def borrow():
        with pool.borrow() as item:
            seen.append(item)
            barrier.wait(timeout=5)  # all three hold one at the same time

    threads = [threading.Thread(target=borrow) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(made) == 3 and len({id(x) for x in seen}) == 3
    with pool.borrow() as again:
        assert again in made  # reused, not made anew
    assert len(made) == 3 and len(pool) == 3


def test_only_objects_idle_for_idle_s_are_dropped():
    pool = IdlePool(object, idle_s=0.2)
    with pool.borrow():
        pass
    assert pool.drop_idle() == 0 and len(pool) == 1  # just used: kept under steady traffic
    time.sleep(0.25)
    assert pool.drop_idle() == 1 and len(pool) == 0


def test_an_object_in_use_is_never_dropped():
    pool = IdlePool(object, idle_s=0.0)
    with pool.borrow() as item:
        assert pool.drop_idle() == 0
        assert item is not None
    assert len(pool) == 1


def test_release_free_memory_drops_idle_haar_cascades():
    from emotionlib.detectors.haar import CASCADES, HaarDetector

    image = np.zeros((300, 300), np.uint8)
    HaarDetector().detect(image, gray=image)
    assert len(CASCADES) >= 1
    time.sleep(CASCADES.idle_s + 0.05)
    release_free_memory()
    assert len(CASCADES) == 0
    assert HaarDetector().detect(image, gray=image) == []  # and detection still works afterwards
