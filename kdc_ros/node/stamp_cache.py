"""A bounded, thread-safe cache of recent messages keyed by header stamp, matched by nearest stamp.

The node keeps the newest depth frames of each camera here (subscription callbacks `put`) and the
inference worker asks for the one taken at a colour frame's stamp (`match`). At most `capacity`
entries and `max_bytes` bytes are kept, so memory stays bounded whatever the input rate and size.

Entries leave in the order they arrived, not by stamp: a frame stamped far in the future would
otherwise be the "newest" for good, never leave, hold its bytes, and make every match give up
waiting (a newer frame is already there, so the one wanted will not come).
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from typing import Any


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time (or a Header's stamp) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class StampCache:
    """Up to `capacity` values (and `max_bytes` bytes, as their sizes are given) keyed by integer-ns stamps."""

    def __init__(self, capacity: int = 30, max_bytes: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        self.capacity, self.max_bytes = capacity, max_bytes
        self._stamps: list[int] = []                                  # sorted, for nearest-stamp lookups
        self._entries: OrderedDict[int, tuple[Any, int]] = OrderedDict()  # arrival order: stamp -> (value, bytes)
        self._bytes = 0
        self._last_put: int | None = None                             # stamp of the latest arrival
        self._condition = threading.Condition()

    def __len__(self) -> int:
        with self._condition:
            return len(self._stamps)

    @property
    def bytes(self) -> int:
        """Sum of the sizes of the values held."""
        with self._condition:
            return self._bytes

    def put(self, stamp: int, value: Any, size: int = 0) -> bool:
        """Store `value` (of `size` bytes) at `stamp`, replacing one with the same stamp; the earliest
        arrivals go while more than `capacity` entries or `max_bytes` bytes are held. False (nothing
        stored) when `size` alone exceeds max_bytes."""
        if self.max_bytes is not None and size > self.max_bytes:
            return False
        with self._condition:
            if stamp in self._entries:
                self._bytes -= self._entries.pop(stamp)[1]
            else:
                bisect.insort(self._stamps, stamp)
            self._entries[stamp] = (value, size)
            self._bytes += size
            self._last_put = stamp
            while len(self._entries) > self.capacity or (self.max_bytes is not None and self._bytes > self.max_bytes):
                self._evict_earliest()
            self._condition.notify_all()
        return True

    def match(self, stamp: int, tolerance: int, wait: float = 0.0) -> tuple[int, Any] | None:
        """(stamp, value) of the entry nearest to `stamp` if it lies within `tolerance` ns, else None.

        With `wait` > 0 seconds and no match yet, waits for one to arrive — but not when the latest
        arrival is stamped after stamp + tolerance (stamps arrive in order: none will come).
        """
        deadline = time.monotonic() + wait
        with self._condition:
            while True:
                found = self._nearest(stamp, tolerance)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._last_put is not None and self._last_put > stamp + tolerance):
                    return None
                self._condition.wait(remaining)

    def clear(self) -> None:
        with self._condition:
            self._stamps.clear()
            self._entries.clear()
            self._bytes = 0
            self._last_put = None

    def _evict_earliest(self) -> None:
        stamp, (_, size) = self._entries.popitem(last=False)
        del self._stamps[bisect.bisect_left(self._stamps, stamp)]
        self._bytes -= size

    def _nearest(self, stamp: int, tolerance: int) -> tuple[int, Any] | None:
        i = bisect.bisect_left(self._stamps, stamp)
        candidates = [s for s in self._stamps[max(i - 1, 0):i + 1] if abs(s - stamp) <= tolerance]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: abs(s - stamp))
        return best, self._entries[best][0]
