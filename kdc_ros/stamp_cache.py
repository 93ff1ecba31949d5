"""A bounded, thread-safe cache of recent messages keyed by header stamp, matched by nearest stamp.

The node keeps the newest depth frames of each camera here (subscription callbacks `put`) and the
inference worker asks for the one taken at a colour frame's stamp (`match`). Only `capacity` frames
are kept (the oldest stamps go first), so memory stays bounded whatever the input rate.
"""
from __future__ import annotations

import bisect
import threading
import time
from typing import Any


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time (or a Header's stamp) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class StampCache:
    """Up to `capacity` values keyed by integer-nanosecond stamps."""

    def __init__(self, capacity: int = 30) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._stamps: list[int] = []            # sorted
        self._values: dict[int, Any] = {}
        self._condition = threading.Condition()

    def __len__(self) -> int:
        with self._condition:
            return len(self._stamps)

    def put(self, stamp: int, value: Any) -> None:
        """Store `value` at `stamp` (replacing one with the same stamp); the oldest stamp goes when full."""
        with self._condition:
            if stamp not in self._values:
                bisect.insort(self._stamps, stamp)
            self._values[stamp] = value
            while len(self._stamps) > self.capacity:
                del self._values[self._stamps.pop(0)]
            self._condition.notify_all()

    def match(self, stamp: int, tolerance: int, wait: float = 0.0) -> tuple[int, Any] | None:
        """(stamp, value) of the entry nearest to `stamp` if it lies within `tolerance` ns, else None.

        With `wait` > 0 seconds and no match yet, waits for one to arrive — but not when an entry
        newer than stamp + tolerance is already there (stamps arrive in order: none will come).
        """
        deadline = time.monotonic() + wait
        with self._condition:
            while True:
                found = self._nearest(stamp, tolerance)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._stamps and self._stamps[-1] > stamp + tolerance):
                    return None
                self._condition.wait(remaining)

    def clear(self) -> None:
        with self._condition:
            self._stamps.clear()
            self._values.clear()

    def _nearest(self, stamp: int, tolerance: int) -> tuple[int, Any] | None:
        i = bisect.bisect_left(self._stamps, stamp)
        candidates = [s for s in self._stamps[max(i - 1, 0):i + 1] if abs(s - stamp) <= tolerance]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: abs(s - stamp))
        return best, self._values[best]
