"""The kdc node on real rclpy: images in, PoseSeg/overlay/markers/diagnostics out, one process.

Plumbing tests inject FixedPredictor; test_real_predictor runs a random-init kdc_model Predictor.
Images are small and few: the whole file should take well under a minute.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from kdc_msgs.msg import PoseSeg
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from fixed_predictor import FixedPredictor
from image_samples import compress, encode, gradient_rgb
from kdc_ros.node import KdcNode
from ros_helpers import RosContext

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class NodeHarness:
    """A KdcNode plus a test node that publishes images and records every output."""

    def __init__(self, ros: RosContext, predictor, **parameters) -> None:
        self.ros = ros
        parameters.setdefault("diagnostics_period", 0.2)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = KdcNode(predictor, context=ros.context, parameter_overrides=overrides)
        ros.executor.add_node(self.node)
        ros.nodes.append(self.node)
        self.client = ros.node("kdc_test_client")
        self.received: dict[str, list] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, RELIABLE)

    def listen(self, topic: str, message_type) -> list:
        """Record `topic` (relative names are under /kdc/) and wait until the node's publisher sees us."""
        topic = topic if topic.startswith("/") else f"/kdc/{topic}"
        messages = self.received.setdefault(topic, [])
        self.client.create_subscription(message_type, topic, messages.append, RELIABLE)
        assert self.ros.spin_until(lambda: self.client.count_publishers(topic) > 0), f"no publisher on {topic}"
        return messages

    def publisher(self, topic: str, message_type):
        publisher = self.client.create_publisher(message_type, topic, RELIABLE)
        assert self.ros.spin_until(lambda: publisher.get_subscription_count() > 0), f"kdc never subscribed {topic}"
        return publisher

    def send_until(self, publisher, message, condition, timeout: float = 10.0) -> bool:
        """Publish `message` (again every 0.5 s: the input is best effort) until `condition()` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(message)
            if self.ros.spin_until(condition, timeout=min(0.5, deadline - time.monotonic())):
                return True
        return bool(condition())

    def diagnostic_values(self, camera: str = "camera") -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(": " + camera):
                    return {kv.key: kv.value for kv in status.values}
        return {}


def stamped(seconds: int, frame: str) -> Header:
    return Header(stamp=Time(sec=seconds, nanosec=123_000), frame_id=frame)


def test_raw_image_gives_pose_seg_overlay_and_markers():
    with RosContext() as ros:
        harness = NodeHarness(ros, FixedPredictor())
        pose_segs = harness.listen("pose_seg", PoseSeg)
        overlays = harness.listen("overlay", Image)
        markers = harness.listen("markers", MarkerArray)
        camera = harness.publisher("/camera/image_raw", Image)
        image = encode(gradient_rgb(48, 64), "bgr8", header=stamped(41, "camera_optical"))
        assert harness.send_until(camera, image, lambda: pose_segs and overlays and markers)
        assert ros.spin_until(lambda: harness.diagnostic_values().get("network_ms", "nan") != "nan", 3.0)

    pose_seg = pose_segs[0]
    assert pose_seg.header == image.header
    assert (pose_seg.height, pose_seg.width) == (48, 64)
    assert len(pose_seg.people) == 2, "the 0.05-score person is under min_person_score"
    person = pose_seg.people[0]
    assert person.id >= 1 and abs(person.score - 0.9) < 1e-6
    assert [k.confidence for k in person.keypoints][9] == 0.0, "unconfident keypoint must read 0"
    labels = np.frombuffer(bytes(pose_seg.mask.data), np.uint16).reshape(48, 64)
    assert pose_seg.mask.encoding == "mono16" and set(np.unique(labels)) == {0, 1, 2}
    assert [p.mask_area for p in pose_seg.people] == [(labels == i + 1).sum() for i in range(2)]

    overlay = overlays[0]
    assert overlay.header == image.header and overlay.encoding == "rgb8"
    assert (overlay.height, overlay.width, overlay.step) == (48, 64, 192)
    drawn = np.frombuffer(bytes(overlay.data), np.uint8).reshape(48, 64, 3)
    assert np.abs(drawn.astype(int) - gradient_rgb(48, 64)).sum() > 0, "nothing drawn"

    array = markers[0]
    assert {m.header.frame_id for m in array.markers} == {"camera_optical"}
    assert {(m.ns, m.id) for m in array.markers} == {(ns, p.id) for ns in ("skeleton", "joints", "score")
                                                      for p in pose_seg.people}
    values = harness.diagnostic_values()
    for key in ("fps", "conversion_ms", "preprocess_ms", "network_ms", "decode_ms", "messages_ms", "publish_ms",
                "dropped", "rejected"):
        assert key in values, key
    assert values["network_ms"] == "2.00" and values["rejected"] == "0"


def test_compressed_input_and_bad_compressed_frames():
    predictor = FixedPredictor()
    with RosContext() as ros:
        harness = NodeHarness(ros, predictor, compressed=True)
        pose_segs = harness.listen("pose_seg", PoseSeg)
        camera = harness.publisher("/camera/image_raw/compressed", CompressedImage)
        jpeg = compress(gradient_rgb(48, 64), "jpeg", header=stamped(7, "cam"))
        truncated = CompressedImage(header=jpeg.header, format="jpeg", data=bytes(jpeg.data)[:200])
        garbage = CompressedImage(header=jpeg.header, format="png", data=b"definitely not a png")
        stats = harness.node.cameras[0].stats
        for count, bad in enumerate((truncated, garbage), start=1):
            assert harness.send_until(camera, bad, lambda: stats.rejected >= count)
        assert harness.send_until(camera, jpeg, lambda: pose_segs)
    assert pose_segs[0].header == jpeg.header and len(pose_segs[0].people) == 2
    assert predictor.image_shapes[0] == (48, 64, 3)
    assert "truncated JPEG" in stats.last_problem or "cannot decode" in stats.last_problem


def test_every_bad_raw_frame_is_rejected_and_the_node_keeps_serving():
    predictor = FixedPredictor()
    good = encode(gradient_rgb(24, 32), "rgb8", header=stamped(3, "cam"))
    unknown = encode(gradient_rgb(24, 32), "rgb8")
    unknown.encoding = "32FC1"
    short = encode(gradient_rgb(24, 32), "rgb8")
    short.data = bytes(short.data)[:-1]
    empty = Image(encoding="rgb8")
    giant = encode(np.zeros((64, 64, 3), np.uint8), "rgb8")
    odd_yuv = encode(gradient_rgb(24, 32), "yuyv")
    odd_yuv.width, odd_yuv.step = 31, 62
    odd_yuv.data = bytes(odd_yuv.data)[:62 * 24]
    bad_frames = [unknown, short, empty, giant, odd_yuv]
    with RosContext() as ros:
        harness = NodeHarness(ros, predictor, max_pixels=1024)
        pose_segs = harness.listen("pose_seg", PoseSeg)
        camera = harness.publisher("/camera/image_raw", Image)
        stats = harness.node.cameras[0].stats
        for count, bad in enumerate(bad_frames, start=1):
            assert harness.send_until(camera, bad, lambda: stats.rejected >= count), bad.encoding
        assert harness.send_until(camera, good, lambda: pose_segs)
        assert ros.spin_until(lambda: harness.diagnostic_values().get("rejected") == str(stats.rejected), 3.0)
    assert pose_segs[0].header == good.header
    assert predictor.calls == stats.processed >= 1, "a bad frame reached the model"
    assert stats.rejected >= len(bad_frames) and stats.failed == 0


def test_two_cameras_share_one_model():
    predictor = FixedPredictor()
    with RosContext() as ros:
        harness = NodeHarness(ros, predictor, image_topics=["/front/image_raw", "/rear/image_raw"])
        outputs = {name: harness.listen(f"{name}/pose_seg", PoseSeg) for name in ("front", "rear")}
        harness.listen("front/overlay", Image)
        images = {"front": encode(gradient_rgb(24, 32), "rgb8", header=stamped(1, "front_optical")),
                  "rear": encode(gradient_rgb(32, 40), "mono8", header=stamped(2, "rear_optical"))}
        for name, image in images.items():
            publisher = harness.publisher(f"/{name}/image_raw", Image)
            assert harness.send_until(publisher, image, lambda: outputs[name])
        assert ros.spin_until(lambda: harness.diagnostic_values("rear").get("processed", "0") != "0", 3.0)
    for name, image in images.items():
        assert outputs[name][0].header == image.header
        assert (outputs[name][0].height, outputs[name][0].width) == (image.height, image.width)
    assert predictor.concurrent_calls == 0
    assert [c.name for c in harness.node.cameras] == ["front", "rear"]


def test_slow_model_drops_stale_frames_instead_of_queueing():
    predictor = FixedPredictor(delay=0.25)
    with RosContext() as ros:
        harness = NodeHarness(ros, predictor)
        pose_segs = harness.listen("pose_seg", PoseSeg)
        camera = harness.publisher("/camera/image_raw", Image)
        stats = harness.node.cameras[0].stats
        sent = 12
        for index in range(sent):  # 12 frames at ~50 Hz into a 4 Hz model
            camera.publish(encode(gradient_rgb(24, 32), "rgb8", header=stamped(index, "cam")))
            ros.spin_until(lambda: False, timeout=0.02)
            assert harness.node.frames.pending() <= 1, "frames are queueing"
        assert ros.spin_until(lambda: stats.processed + stats.dropped == stats.received
                              and harness.node.frames.pending() == 0 and len(pose_segs) == stats.processed, 5.0)
    assert stats.received >= sent - 2, "input frames lost before the node (best effort on loopback)"
    assert stats.dropped >= sent // 2, (stats.dropped, stats.processed)
    assert stats.processed <= 4
    # The newest frame always survives: the last output is the last frame the node received.
    assert pose_segs[-1].header.stamp.sec == sent - 1


def test_parameters_are_validated_with_a_reason():
    with RosContext() as ros:
        node = NodeHarness(ros, FixedPredictor()).node
        refused = {
            "min_person_score": 1.5, "keypoint_threshold": -0.1, "overlay_mask_alpha": 2.0, "max_pixels": 0,
            "device": "cuda", "image_topic": "/other",  # read-only after start
        }
        for name, value in refused.items():
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful and result.reason, name
        wrong_type = node.set_parameters([Parameter("min_person_score", value="high")])[0]
        assert not wrong_type.successful
        assert node.set_parameters([Parameter("min_person_score", value=0.5)])[0].successful
        assert node.settings["min_person_score"] == 0.5
        descriptor = node.describe_parameter("min_person_score")
        assert descriptor.description and descriptor.floating_point_range[0].to_value == 1.0
    with RosContext() as ros, pytest.raises(ValueError, match="reliability"):
        KdcNode(FixedPredictor(), context=ros.context,
                parameter_overrides=[Parameter("reliability", value="sometimes")]).destroy_node()


def test_enable_service_pauses_and_resumes_output():
    std_srvs = pytest.importorskip("std_srvs.srv")
    with RosContext() as ros:
        harness = NodeHarness(ros, FixedPredictor())
        pose_segs = harness.listen("pose_seg", PoseSeg)
        camera = harness.publisher("/camera/image_raw", Image)
        image = encode(gradient_rgb(24, 32), "rgb8", header=stamped(5, "cam"))
        enable = harness.client.create_client(std_srvs.SetBool, "/kdc/enable")
        assert enable.wait_for_service(timeout_sec=5.0)

        def call(data: bool):
            future = enable.call_async(std_srvs.SetBool.Request(data=data))
            assert ros.spin_until(future.done)
            return future.result()

        assert call(False).success and harness.node.get_parameter("enable").value is False
        assert not harness.send_until(camera, image, lambda: pose_segs, timeout=1.0), "published while paused"
        assert call(True).success
        assert harness.send_until(camera, image, lambda: pose_segs)


def test_real_predictor_end_to_end():
    kdc_model = pytest.importorskip("kdc_model")
    predictor = kdc_model.load_model(kdc_model.ModelConfig(input_size=128), device="cpu")
    with RosContext() as ros:
        # Random weights score low: publish everything the decoder finds.
        harness = NodeHarness(ros, predictor, min_person_score=0.0, keypoint_threshold=0.0)
        pose_segs = harness.listen("pose_seg", PoseSeg)
        overlays = harness.listen("overlay", Image)
        camera = harness.publisher("/camera/image_raw", Image)
        image = encode(gradient_rgb(48, 64), "rgb8", header=stamped(11, "cam"))
        assert harness.send_until(camera, image, lambda: pose_segs and overlays, timeout=20.0)
        assert ros.spin_until(lambda: harness.diagnostic_values().get("network_ms", "nan") != "nan", 3.0)
    assert pose_segs[0].header == image.header and (pose_segs[0].height, pose_segs[0].width) == (48, 64)
    assert pose_segs[0].mask.height in (0, 48) and overlays[0].header == image.header
    assert float(harness.diagnostic_values()["network_ms"]) > 0
