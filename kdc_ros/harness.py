"""A kdc node driven from this process: the node (started here, or one already running, found by its
namespace) and a driver node beside it, spun by one executor on a background thread, in an rclpy
context of their own. The driver publishes camera frames to the node and records what it publishes,
each message with the monotonic time it arrived.

One harness serves the bench (kdc_ros.bench.kdc), the live replay (kdc_ros.replay.live) and the
tests. Discovery stays wherever the environment puts it (ROS_DOMAIN_ID, ROS_LOCALHOST_ONLY, ...)
unless a domain is given.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from .node import params

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
DIAGNOSTICS_KEPT = 20


class Recording:
    """What arrived on one topic: (monotonic arrival time, message) of the newest `keep` messages (all
    when None, none when 0), how many arrived in all, and a way to wait for one."""

    def __init__(self, keep: int | None = None, on_message: Callable[[object, float], None] | None = None) -> None:
        self.keep, self.on_message = keep, on_message
        self.received: list[tuple[float, object]] = []
        self.count = 0
        self._changed = threading.Condition()

    def add(self, msg) -> None:
        now = time.monotonic()
        with self._changed:
            self.count += 1
            if self.keep is None or self.keep > 0:
                self.received.append((now, msg))
                if self.keep is not None and len(self.received) > 2 * self.keep:  # trimmed in bulk: cheap
                    del self.received[:-self.keep]
            self._changed.notify_all()
        if self.on_message is not None:
            self.on_message(msg, now)

    @property
    def messages(self) -> list:
        with self._changed:
            return [msg for _, msg in self.received]

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter(self.messages)

    def __reversed__(self):
        return reversed(self.messages)

    def __getitem__(self, index):
        return self.messages[index]

    def stamped(self, sec: int, nanosec: int = 0, timeout: float = 10.0) -> tuple[float, object]:
        """(arrival time, message) of the message whose header has this stamp; TimeoutError when none
        comes within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for arrived, msg in reversed(self.received):
                    if (msg.header.stamp.sec, msg.header.stamp.nanosec) == (sec, nanosec):
                        return arrived, msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no message stamped {sec}.{nanosec:09d} within {timeout} s")
                self._changed.wait(left)


class NodeHarness:
    """A KdcNode (unless `running`) and a driver, both in `namespace`; use as a context manager.

    predictor, parameters ({name: value}) and on_frame are the node's (KdcNode). lifecycle: start a
    KdcLifecycleNode instead, unconfigured (its transitions are the caller's: node.trigger_configure()
    ...). running: drive a kdc node already running in `namespace` instead of starting one. domain_id:
    the DDS domain (default: ROS_DOMAIN_ID's). A node that refuses its parameters raises its ValueError
    here, cleaned up.
    """

    def __init__(self, predictor=None, *, namespace: str = "", parameters: dict | None = None,
                 on_frame=None, lifecycle: bool = False, running: bool = False, domain_id: int | None = None,
                 driver_name: str = "kdc_driver") -> None:
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.node, self.driver, self._spinner = None, None, None
        self._stop = threading.Event()
        try:
            if not running:
                from .node import KdcLifecycleNode, KdcNode  # the model stack; a driver alone needs none

                overrides = [Parameter(name, value=value) for name, value in (parameters or {}).items()]
                node_class = KdcLifecycleNode if lifecycle else KdcNode
                self.node = node_class(predictor, context=self.context, namespace=self.namespace or None,
                                       parameter_overrides=overrides, on_frame=on_frame)
                self.executor.add_node(self.node)
            self.driver = rclpy.create_node(driver_name, context=self.context, namespace=self.namespace or None)
            self.executor.add_node(self.driver)
            self.diagnostics = self.record("/diagnostics", DiagnosticArray, keep=DIAGNOSTICS_KEPT)
        except BaseException:
            self.close()
            raise
        self._spinner = threading.Thread(target=self._spin, name="kdc_harness_spin", daemon=True)
        self._spinner.start()

    # --- names ---------------------------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """`name` resolved in the harness's namespace (absolute names stay as they are)."""
        return name if name.startswith("/") else f"{self.namespace}/{name}"

    def output(self, name: str, camera: str = "") -> str:
        """The node's output topic `name` (pose_seg, overlay, ...) of camera `camera` ('' = the one camera)."""
        return f"{self.namespace}/{params.NODE_NAME}/" + (f"{camera}/{name}" if camera else name)

    # --- traffic -------------------------------------------------------------------------------------
    def record(self, topic: str, message_type, *, keep: int | None = None, on_message=None,
               qos: QoSProfile = RELIABLE) -> Recording:
        """Record `topic` (relative names: in the namespace) from now on."""
        recording = Recording(keep, on_message)
        self.driver.create_subscription(message_type, self.topic(topic), recording.add, qos)
        return recording

    def publisher(self, topic: str, message_type, qos: QoSProfile = RELIABLE):
        return self.driver.create_publisher(message_type, self.topic(topic), qos)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Return once `condition()` holds; TimeoutError naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.005)

    def connected(self, publishers=(), recorded_topics=(), timeout: float = 20.0, settle: float = 0.2) -> None:
        """Wait until each of the driver's `publishers` has a subscriber and each of `recorded_topics`
        a publisher, then `settle` seconds more (reliable readers and writers finish matching both
        ways: the first messages are not lost); TimeoutError naming what is missing."""
        def missing() -> list[str]:
            return ([p.topic_name for p in publishers if p.get_subscription_count() == 0]
                    + [t for t in recorded_topics if self.driver.count_publishers(self.topic(t)) == 0])

        try:
            self.wait_for(lambda: not missing(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no kdc node matched within {timeout:.0f} s (missing: {', '.join(missing())}); "
                               f"is it running in namespace {self.namespace or '/'} with the same "
                               f"ROS_DOMAIN_ID?") from None
        time.sleep(settle)

    def send_until(self, publisher, message, condition: Callable[[], bool], timeout: float = 10.0,
                   every: float = 0.5) -> bool:
        """Publish `message` (again every `every` s: the node's input is best effort by default) until
        `condition()` holds; whether it did within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(message)
            resend = min(deadline, time.monotonic() + every)
            while time.monotonic() < resend:
                if condition():
                    return True
                time.sleep(0.005)
        return bool(condition())

    def diagnostic_values(self, camera: str = "camera") -> dict[str, str]:
        """The key/values of the newest /diagnostics status of this node's camera `camera`."""
        name = f"{self.namespace}/{params.NODE_NAME}: {camera}"
        for _, array in reversed(self.diagnostics.received):
            for status in array.status:
                if status.name == name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    # --- lifetime ------------------------------------------------------------------------------------
    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop spinning, then take the nodes down (in that order: callbacks never meet a dead node)."""
        self._stop.set()
        if self._spinner is not None:
            self._spinner.join(timeout=10.0)
        for node in (self.driver, self.node):
            if node is not None:
                self.executor.remove_node(node)
                node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> "NodeHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
