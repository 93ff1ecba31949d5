"""Shared helpers of the tests that drive a kdc node: kdc_ros.harness.NodeHarness with the tests'
defaults (the test's own namespace, the camera in it, diagnostics every 0.2 s), and small readings."""
from __future__ import annotations

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from kdc_ros.harness import NodeHarness, Recording

CAMERA = "camera/image_raw"  # relative: the camera lives in the test's namespace
# /rosout keeps the last log lines for late subscribers (transient local): a node's start-up lines too.
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start_node(predictor, namespace: str, on_frame=None, **parameters) -> NodeHarness:
    """A kdc node with `predictor` and `parameters` in `namespace`, and a driver; a context manager."""
    parameters.setdefault("diagnostics_period", 0.2)
    if not parameters.get("image_topics"):
        parameters.setdefault("image_topic", CAMERA)
    return NodeHarness(predictor, namespace=namespace, parameters=parameters, on_frame=on_frame,
                       driver_name="kdc_test_driver")


def listen(harness: NodeHarness, name: str, message_type, camera: str = "", **record) -> Recording:
    """Record the node's output `name` (of camera `camera`) once the node publishes it."""
    topic = harness.output(name, camera)
    recording = harness.record(topic, message_type, **record)
    harness.connected(recorded_topics=[topic], settle=0.0)
    return recording


def camera_publisher(harness: NodeHarness, message_type, topic: str = CAMERA, qos=None):
    """A publisher on `topic` (relative: in the namespace) once the node subscribes to it."""
    publisher = harness.publisher(topic, message_type, *(qos,) if qos is not None else ())
    harness.connected([publisher], settle=0.0)
    return publisher


def node_log(harness: NodeHarness) -> Recording:
    """The node's log lines (rcl_interfaces/Log from /rosout, start-up lines included)."""
    return harness.record("/rosout", Log, qos=ROSOUT_QOS)


def log_lines(log: Recording, harness: NodeHarness) -> list[str]:
    name = harness.node.get_logger().name
    return [line.msg for line in log if line.name == name]


def stamped(seconds: int, frame: str = "cam", nanosec: int = 123_000) -> Header:
    return Header(stamp=Time(sec=seconds, nanosec=nanosec), frame_id=frame)


def stamp_key(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def settled(harness: NodeHarness, camera: int = 0) -> bool:
    """Every frame the camera received has an outcome, and none waits."""
    s = harness.node.cameras[camera].stats
    return s.processed + s.rejected + s.failed + s.dropped == s.received and harness.node.frames.pending() == 0
