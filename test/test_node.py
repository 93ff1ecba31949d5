"""The kdc node on real rclpy: images in, PoseSeg/overlay/markers/diagnostics out, one process.

Plumbing tests inject FixedPredictor; test_real_predictor runs a random-init kdc_model Predictor.
Images are small and few: the whole file should take well under a minute.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from kdc_msgs.msg import PoseSeg
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from fixed_predictor import FixedPredictor
from image_samples import compress, encode, gradient_rgb
from node_helpers import camera_publisher, listen, stamped, start_node


def test_raw_image_gives_pose_seg_overlay_and_markers(namespace):
    with start_node(FixedPredictor(), namespace) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        overlays = listen(harness, "overlay", Image)
        markers = listen(harness, "markers", MarkerArray)
        camera = camera_publisher(harness, Image)
        image = encode(gradient_rgb(48, 64), "bgr8", header=stamped(41, "camera_optical"))
        assert harness.send_until(camera, image, lambda: pose_segs and overlays and markers)
        harness.wait_for(lambda: harness.diagnostic_values().get("network_ms", "nan") != "nan", 3.0)

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


def test_compressed_input_and_bad_compressed_frames(namespace):
    predictor = FixedPredictor()
    with start_node(predictor, namespace, compressed=True) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        camera = camera_publisher(harness, CompressedImage, "camera/image_raw/compressed")
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


def test_every_bad_raw_frame_is_rejected_and_the_node_keeps_serving(namespace):
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
    with start_node(predictor, namespace, max_pixels=1024) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        camera = camera_publisher(harness, Image)
        stats = harness.node.cameras[0].stats
        for count, bad in enumerate(bad_frames, start=1):
            assert harness.send_until(camera, bad, lambda: stats.rejected >= count), bad.encoding
        assert harness.send_until(camera, good, lambda: pose_segs)
        harness.wait_for(lambda: harness.diagnostic_values().get("rejected") == str(stats.rejected), 3.0)
    assert pose_segs[0].header == good.header
    assert predictor.calls == stats.processed >= 1, "a bad frame reached the model"
    assert stats.rejected >= len(bad_frames) and stats.failed == 0


def test_two_cameras_share_one_model(namespace):
    predictor = FixedPredictor()
    with start_node(predictor, namespace, image_topics=["front/image_raw", "rear/image_raw"]) as harness:
        outputs = {name: listen(harness, "pose_seg", PoseSeg, camera=name) for name in ("front", "rear")}
        listen(harness, "overlay", Image, camera="front")
        images = {"front": encode(gradient_rgb(24, 32), "rgb8", header=stamped(1, "front_optical")),
                  "rear": encode(gradient_rgb(32, 40), "mono8", header=stamped(2, "rear_optical"))}
        for name, image in images.items():
            publisher = camera_publisher(harness, Image, f"{name}/image_raw")
            assert harness.send_until(publisher, image, lambda: outputs[name])
        harness.wait_for(lambda: harness.diagnostic_values("rear").get("processed", "0") != "0", 3.0)
    for name, image in images.items():
        assert outputs[name][0].header == image.header
        assert (outputs[name][0].height, outputs[name][0].width) == (image.height, image.width)
    assert predictor.concurrent_calls == 0
    assert [c.name for c in harness.node.cameras] == ["front", "rear"]


def test_slow_model_drops_stale_frames_instead_of_queueing(namespace):
    predictor = FixedPredictor(delay=0.25)
    with start_node(predictor, namespace) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        camera = camera_publisher(harness, Image)
        stats = harness.node.cameras[0].stats
        sent = 12
        for index in range(sent):  # 12 frames at ~50 Hz into a 4 Hz model
            camera.publish(encode(gradient_rgb(24, 32), "rgb8", header=stamped(index, "cam")))
            time.sleep(0.02)
            assert harness.node.frames.pending() <= 1, "frames are queueing"
        harness.wait_for(lambda: stats.processed + stats.dropped == stats.received
                         and harness.node.frames.pending() == 0 and len(pose_segs) == stats.processed, 5.0)
    assert stats.received >= sent - 2, "input frames lost before the node (best effort on loopback)"
    assert stats.dropped >= sent // 2, (stats.dropped, stats.processed)
    assert stats.processed <= 4
    # The newest frame always survives: the last output is the last frame the node received.
    assert pose_segs[-1].header.stamp.sec == sent - 1


def test_parameters_are_validated_with_a_reason(namespace):
    with start_node(FixedPredictor(), namespace) as harness:
        node = harness.node
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
    with pytest.raises(ValueError, match="reliability"):
        start_node(FixedPredictor(), namespace, reliability="sometimes")


def test_enable_service_pauses_and_resumes_output(namespace):
    std_srvs = pytest.importorskip("std_srvs.srv")
    with start_node(FixedPredictor(), namespace) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        camera = camera_publisher(harness, Image)
        image = encode(gradient_rgb(24, 32), "rgb8", header=stamped(5, "cam"))
        enable = harness.driver.create_client(std_srvs.SetBool, harness.output("enable"))
        assert enable.wait_for_service(timeout_sec=5.0)

        def call(data: bool):
            future = enable.call_async(std_srvs.SetBool.Request(data=data))
            harness.wait_for(future.done)
            return future.result()

        assert call(False).success and harness.node.get_parameter("enable").value is False
        assert not harness.send_until(camera, image, lambda: pose_segs, timeout=1.0), "published while paused"
        assert call(True).success
        assert harness.send_until(camera, image, lambda: pose_segs)


def test_real_predictor_end_to_end(namespace):
    kdc_model = pytest.importorskip("kdc_model")
    predictor = kdc_model.load_model(kdc_model.ModelConfig(input_size=128), device="cpu")
    # Random weights score low: publish everything the decoder finds.
    with start_node(predictor, namespace, min_person_score=0.0, keypoint_threshold=0.0) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        overlays = listen(harness, "overlay", Image)
        camera = camera_publisher(harness, Image)
        image = encode(gradient_rgb(48, 64), "rgb8", header=stamped(11, "cam"))
        assert harness.send_until(camera, image, lambda: pose_segs and overlays, timeout=20.0)
        harness.wait_for(lambda: harness.diagnostic_values().get("network_ms", "nan") != "nan", 3.0)
    assert pose_segs[0].header == image.header and (pose_segs[0].height, pose_segs[0].width) == (48, 64)
    assert pose_segs[0].mask.height in (0, 48) and overlays[0].header == image.header
    assert float(harness.diagnostic_values()["network_ms"]) > 0
