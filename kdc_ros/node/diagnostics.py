"""Per-camera counters and stage latencies, summarised as a diagnostic_msgs/DiagnosticStatus.

The inference worker records; the executor's diagnostics timer reads and starts a new window.
Rates and mean latencies are per window; dropped/rejected/failed/oom are totals since start
(oom: the failed frames that ran out of device memory). Every reason is kept as one line of at most
MAX_PROBLEM_CHARS characters: reasons quote messages, and a hostile 4 MiB string must not make every
later /diagnostics message 4 MiB.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

MAX_PROBLEM_CHARS = 300
# Stages of one frame, in order; each is reported as "<stage>_ms" (mean over the window).
STAGES = ("conversion", "preprocess", "network", "decode", "tracking", "depth", "messages", "publish", "total")


class FrameStats:
    """Thread-safe counters of one camera."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = self.processed = self.dropped = self.rejected = self.failed = self.oom = 0
        self.last_problem = ""
        self.depth_unmatched = 0          # frames published without 3D (depth configured but not usable)
        self.depth_rejected = 0           # depth frames refused before they were stored
        self.last_depth_problem = ""
        self._window_start = time.monotonic()
        self._window_received = self._window_processed = self._window_problems = 0
        self._stage_sums: dict[str, float] = defaultdict(float)

    def count_received(self) -> None:
        with self._lock:
            self.received += 1
            self._window_received += 1

    def count_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def count_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self._window_problems += 1
            self.last_problem = one_line(f"rejected: {reason}")

    def count_failed(self, reason: str) -> None:
        with self._lock:
            self.failed += 1
            self._window_problems += 1
            self.last_problem = one_line(f"inference failed: {reason}")

    def count_oom(self, reason: str) -> None:
        """A frame that ran out of device memory: failed, and counted apart as oom."""
        with self._lock:
            self.oom += 1
            self.failed += 1
            self._window_problems += 1
            self.last_problem = one_line(f"inference failed (out of memory): {reason}")

    def count_depth_unmatched(self, reason: str) -> None:
        """A frame that gets 2D output only: no depth frame matched its stamp, or it was unusable."""
        with self._lock:
            self.depth_unmatched += 1
            self.last_depth_problem = one_line(reason)

    def count_depth_rejected(self, reason: str) -> None:
        """A depth frame refused before it was stored (wrong encoding, size or length, too large)."""
        with self._lock:
            self.depth_rejected += 1
            self.last_depth_problem = one_line(f"depth frame rejected: {reason}")

    def record(self, stage_ms: dict[str, float]) -> None:
        """One frame published, with its milliseconds per stage."""
        with self._lock:
            self.processed += 1
            self._window_processed += 1
            for stage, ms in stage_ms.items():
                self._stage_sums[stage] += ms

    def summary(self, name: str, hardware_id: str, enabled: bool = True) -> DiagnosticStatus:
        """The status of the window since the last call, which starts a new window."""
        with self._lock:
            now = time.monotonic()
            seconds = max(now - self._window_start, 1e-6)
            frames = self._window_processed
            values = {
                "fps": f"{frames / seconds:.2f}",
                "input_fps": f"{self._window_received / seconds:.2f}",
                **{f"{stage}_ms": f"{self._stage_sums[stage] / frames:.2f}" if frames else "nan" for stage in STAGES},
                "received": str(self.received), "processed": str(self.processed),
                "dropped": str(self.dropped), "rejected": str(self.rejected), "failed": str(self.failed),
                "oom": str(self.oom),
                "last_problem": self.last_problem,
                "depth_unmatched": str(self.depth_unmatched), "depth_rejected": str(self.depth_rejected),
                "last_depth_problem": self.last_depth_problem,
            }
            problems = self._window_problems
            self._window_start = now
            self._window_received = self._window_processed = self._window_problems = 0
            self._stage_sums.clear()
        if not enabled:
            level, message = DiagnosticStatus.OK, "paused"
        elif problems:
            level, message = DiagnosticStatus.WARN, f"{problems} bad frames; last {self.last_problem}"
        elif frames == 0:
            level, message = DiagnosticStatus.WARN, "no frames"
        else:
            level, message = DiagnosticStatus.OK, f"{values['fps']} fps"
        return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])


def one_line(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """The first line of `text`, cut to `limit` characters (with a mark that it was cut)."""
    text = str(text).strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > limit or first != text:
        return first[:limit] + " [...]"
    return first
