"""A kdc node spinning in a background thread, a client that feeds it, and process-memory readings.

For the reliability tests (test_reliability.py, test_endurance.py): the executor spins on its own
thread, so the test thread can publish at a fixed rate or wait on events without polling the executor.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import rclpy
from kdc_msgs.msg import PoseSeg
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from kdc_ros.node import KdcNode

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def rss_mb() -> float:
    """Resident set size of this process in MiB (VmRSS of /proc/self/status; no psutil needed)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stamp_key(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


class LiveNode:
    """KdcNode(predictor, **parameters) plus a client node: publishes to the node's input topic and
    records every ~/pose_seg (with its arrival time), spun by one executor on a background thread."""

    def __init__(self, predictor, message_type, *, pose_seg_limit: int | None = None, **parameters) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        parameters.setdefault("diagnostics_period", 0.5)
        parameters.setdefault("reliability", "reliable")
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = KdcNode(predictor, context=self.context, parameter_overrides=overrides)
        self.client = rclpy.create_node("kdc_reliability_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.pose_segs: list[tuple[float, PoseSeg]] = []  # (monotonic arrival, message)
        self.pose_seg_limit = pose_seg_limit  # keep only the newest N (long runs must not hoard memory)
        self.pose_seg_count = 0
        self.arrivals: list[tuple[float, tuple[int, int]]] = []  # (monotonic arrival, stamp) of every output
        self._new_output = threading.Condition()
        self.client.create_subscription(PoseSeg, "/kdc/pose_seg", self._on_pose_seg, RELIABLE)
        from diagnostic_msgs.msg import DiagnosticArray
        self.diagnostics: list = []
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)
        topic = self.node.image_subscriptions[0].topic_name
        self.publisher = self.client.create_publisher(message_type, topic, RELIABLE)
        self._spinner = threading.Thread(target=self.executor.spin, name="live_node_spin", daemon=True)
        self._spinner.start()
        self.wait_for(lambda: self.publisher.get_subscription_count() > 0
                      and self.client.count_publishers("/kdc/pose_seg") > 0, 10.0, "node never matched")

    @property
    def stats(self):
        return self.node.cameras[0].stats

    def _on_pose_seg(self, msg) -> None:
        with self._new_output:
            now = time.monotonic()
            self.pose_segs.append((now, msg))
            self.arrivals.append((now, stamp_key(msg.header)))
            self.pose_seg_count += 1
            if self.pose_seg_limit is not None and len(self.pose_segs) > 2 * self.pose_seg_limit:
                del self.pose_segs[:-self.pose_seg_limit]
            self._new_output.notify_all()

    def _on_diagnostics(self, msg) -> None:
        self.diagnostics.append(msg)
        del self.diagnostics[:-20]

    def wait_for(self, condition, timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s: {what}")
            time.sleep(0.002)

    def wait_for_output(self, key: tuple[int, int], timeout: float = 10.0) -> PoseSeg:
        """The ~/pose_seg stamped `key` (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._new_output:
            while True:
                for _, msg in reversed(self.pose_segs):
                    if stamp_key(msg.header) == key:
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no pose_seg stamped {key} within {timeout} s")
                self._new_output.wait(left)

    def settled(self) -> bool:
        """Every received frame has an outcome and nothing waits."""
        s = self.stats
        return (s.processed + s.rejected + s.failed + s.dropped == s.received
                and self.node.frames.pending() == 0)

    def diagnostic_values(self) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(": camera"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
