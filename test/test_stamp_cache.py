"""StampCache: bounded, nearest stamp within tolerance, waits only while a match may still come."""
import threading
import time

import pytest

from kdc_ros.node.stamp_cache import StampCache, stamp_ns

MS = 1_000_000


def test_bounded_the_earliest_arrivals_go_first():
    cache = StampCache(capacity=3)
    for t in (5, 1, 4, 2, 3):           # out of order: the earliest *arrivals* go (5 and 1), not the oldest stamps
        cache.put(t * 100 * MS, t)
    assert len(cache) == 3
    assert cache.match(500 * MS, 0) is None and cache.match(100 * MS, 0) is None
    assert cache.match(200 * MS, 0) == (200 * MS, 2) and cache.match(400 * MS, 0) == (400 * MS, 4)
    cache.put(300 * MS, "again")        # same stamp replaces, does not grow, and counts as a new arrival
    cache.put(600 * MS, 6)
    assert len(cache) == 3 and cache.match(300 * MS, 0) == (300 * MS, "again")
    assert cache.match(400 * MS, 0) is None   # 4 arrived before the replaced 3: it went
    with pytest.raises(ValueError):
        StampCache(capacity=0)


def test_bounded_in_bytes():
    cache = StampCache(capacity=100, max_bytes=1000)
    for t in range(10):
        assert cache.put(t * MS, t, size=300)
        assert cache.bytes <= 1000
    assert len(cache) == 3 and cache.bytes == 900
    assert [cache.match(t * MS, 0) is not None for t in range(10)] == [False] * 7 + [True] * 3
    assert not cache.put(99 * MS, "huge", size=1001)  # larger than the whole budget: refused, nothing evicted
    assert len(cache) == 3 and cache.bytes == 900 and cache.match(99 * MS, 0) is None
    cache.put(9 * MS, "smaller", size=100)            # a replacement gives its bytes back
    assert cache.bytes == 700
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_a_far_future_stamp_neither_stays_nor_disables_waiting():
    cache = StampCache(capacity=3)
    far_future = 10**18
    cache.put(far_future, "bogus")
    cache.put(0, "old")
    threading.Timer(0.05, cache.put, (100 * MS, "late")).start()
    assert cache.match(100 * MS, MS, wait=2.0) == (100 * MS, "late")   # waited although a later stamp is held
    for t in (200, 300):
        cache.put(t * MS, t)
    assert cache.match(far_future, 0) is None                           # it left with its arrival turn


def test_nearest_stamp_within_tolerance():
    cache = StampCache(capacity=10)
    for t in (0, 33, 66, 100):
        cache.put(t * MS, t)
    assert cache.match(33 * MS, 0) == (33 * MS, 33)           # exact
    assert cache.match(45 * MS, 20 * MS) == (33 * MS, 33)     # nearest below
    assert cache.match(55 * MS, 20 * MS) == (66 * MS, 66)     # nearest above
    assert cache.match(50 * MS, 10 * MS) is None              # 17 ms both ways: outside 10 ms
    assert cache.match(-15 * MS, 20 * MS) == (0, 0)
    assert cache.match(121 * MS, 20 * MS) is None
    cache.clear()
    assert len(cache) == 0 and cache.match(0, MS) is None


def test_waits_for_a_late_frame_but_not_when_it_cannot_come():
    cache = StampCache()
    cache.put(0, "old")
    threading.Timer(0.05, cache.put, (100 * MS, "late")).start()
    start = time.monotonic()
    assert cache.match(100 * MS, MS, wait=2.0) == (100 * MS, "late")
    assert time.monotonic() - start < 1.0
    cache.put(300 * MS, "newer")                               # 200 ms is skipped: do not wait for it
    start = time.monotonic()
    assert cache.match(200 * MS, MS, wait=2.0) is None
    assert time.monotonic() - start < 0.1
    start = time.monotonic()
    assert cache.match(400 * MS, MS, wait=0.1) is None         # nothing comes: gives up after wait
    assert 0.09 <= time.monotonic() - start < 1.0


def test_stamp_ns():
    class Stamp:
        sec, nanosec = 3, 250
    assert stamp_ns(Stamp) == 3_000_000_250
