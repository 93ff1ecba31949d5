"""The latest-frame policy: one slot per camera, a new frame replaces an unprocessed one.

Subscription callbacks `put` (never blocking the executor); one inference worker `take`s. A slow model
therefore skips stale frames instead of queueing them: memory and latency stay bounded whatever the
input rate, and every replaced frame is counted as dropped.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Hashable


class LatestFrames:
    """Per-key single-slot mailbox shared by several producers and one consumer."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._slots: dict[Hashable, tuple[float, Any]] = {}
        self._closed = False
        self.dropped: dict[Hashable, int] = {}

    def put(self, key: Hashable, frame: Any) -> bool:
        """Store `frame` as `key`'s newest; True when it replaced one not yet taken (a drop)."""
        with self._condition:
            replaced = key in self._slots
            if replaced:
                self.dropped[key] = self.dropped.get(key, 0) + 1
            self._slots[key] = (time.monotonic(), frame)
            self._condition.notify()
        return replaced

    def take(self, timeout: float | None = None) -> tuple[Hashable, float, Any] | None:
        """(key, monotonic arrival time, frame) of the oldest waiting frame, so cameras take turns;
        None when closed or after `timeout` seconds without a frame."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._slots or self._closed, timeout):
                return None
            if self._closed:
                return None
            key = min(self._slots, key=lambda k: self._slots[k][0])
            arrived, frame = self._slots.pop(key)
            return key, arrived, frame

    def clear(self) -> None:
        """Forget waiting frames (when paused: resuming must not process a stale frame)."""
        with self._condition:
            self._slots.clear()

    def pending(self) -> int:
        with self._condition:
            return len(self._slots)

    def close(self) -> None:
        """Wake the consumer for good: take() returns None from now on."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
