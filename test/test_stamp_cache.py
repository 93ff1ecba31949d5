"""StampCache: bounded, nearest stamp within tolerance, waits only while a match may still come."""
import threading
import time

import pytest

from kdc_ros.stamp_cache import StampCache, stamp_ns

MS = 1_000_000


def test_bounded_oldest_stamps_go_first():
    cache = StampCache(capacity=3)
    for t in (5, 1, 4, 2, 3):           # out of order: the oldest *stamps* go, not the first put
        cache.put(t * 100 * MS, t)
    assert len(cache) == 3
    assert cache.match(100 * MS, 0) is None and cache.match(200 * MS, 0) is None
    assert cache.match(300 * MS, 0) == (300 * MS, 3)
    cache.put(500 * MS, "again")        # same stamp replaces, does not grow
    assert len(cache) == 3 and cache.match(500 * MS, 0) == (500 * MS, "again")
    with pytest.raises(ValueError):
        StampCache(capacity=0)


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
