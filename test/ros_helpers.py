"""Shared helpers for tests that run real rclpy."""
from __future__ import annotations

import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def spin_until(executor: SingleThreadedExecutor, condition, timeout: float = 10.0) -> bool:
    """Spin `executor` until `condition()` is true or `timeout` seconds pass; return the condition."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return bool(condition())


class RosContext:
    """A private rclpy context + executor, shut down on exit (tests never share global state)."""

    def __enter__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes = []
        return self

    def node(self, name: str, **kwargs):
        node = rclpy.create_node(name, context=self.context, **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_until(self, condition, timeout: float = 10.0) -> bool:
        return spin_until(self.executor, condition, timeout)

    def __exit__(self, *exc):
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)
