"""Human awareness through the kdc node on real rclpy: ids survive crossings and short occlusions,
aligned depth gives keypoints_3d within 1 cm, and frames without depth stay 2D (invalid, 0, never NaN).

Stand-in predictors return scripted PoseSegResults (the model is tested elsewhere); every frame is
sent and answered one at a time, so the latest-frame policy drops none.
"""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from kdc_msgs.msg import PoseSeg
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from fixed_predictor import FixedPredictor
from image_samples import encode
from kdc_model import PoseSegResult
from kdc_model.training.synthetic import random_pose
from kdc_ros.node import params
from kdc_ros.node.messages import pose_seg_from_result
from kdc_ros.node.visualization import markers_3d_from_result
from node_helpers import camera_publisher, listen, start_node
from scripted_people import result_from_poses

HEIGHT, WIDTH, FPS = 240, 480, 10.0
DEPTH_TOPIC, INFO_TOPIC = "camera/aligned_depth_to_color/image_raw", "camera/aligned_depth_to_color/camera_info"
FX, FY, CX, CY = 200.0, 190.0, 79.5, 59.5
DEPTH_HEIGHT, DEPTH_WIDTH = 120, 160


def header_at(seconds: float, frame: str = "camera_color_optical_frame") -> Header:
    sec = int(seconds)
    return Header(stamp=Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9))), frame_id=frame)


def people_frame(poses: list[np.ndarray]) -> PoseSegResult:
    return result_from_poses(poses, HEIGHT, WIDTH)


class ScriptedPredictor:
    """Returns the scripted result of the frame whose index is written in the image's first pixel."""

    def __init__(self, results: list[PoseSegResult]) -> None:
        self.results = results

    def __call__(self, rgb: np.ndarray) -> PoseSegResult:
        return self.results[int(rgb[0, 0, 0])]


def crossing_script(steps: int = 36):
    """A walks right, B walks left (they cross at t = 2 s); C walks behind a pillar, unseen for
    1.5 s <= t <= 2.2 s (shorter than the tracker's 1 s budget) -> (names per frame, results)."""
    rng = np.random.default_rng(0)
    a = random_pose(rng, np.array([80.0, 150.0]), 120)
    b = random_pose(rng, np.array([400.0, 155.0]), 125)
    c = random_pose(rng, np.array([40.0, 120.0]), 90)
    names, results = [], []
    for step in range(steps):
        t = step / FPS
        frame_names, poses = ["a", "b"], [a + (80.0 * t, 0.0), b + (-80.0 * t, 0.0)]
        if not 1.5 <= t <= 2.2:
            frame_names.append("c")
            poses.append(c + (60.0 * t, 0.0))
        # People come in a different order each frame (a model ranks them by score): the id must
        # follow the person, not the rank.
        order = rng.permutation(len(poses))
        names.append([frame_names[i] for i in order])
        results.append(people_frame([poses[i] for i in order]))
    return names, results


def test_ids_survive_crossing_and_short_occlusion_through_the_node(namespace):
    names, results = crossing_script()
    with start_node(ScriptedPredictor(results), namespace) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        camera = camera_publisher(harness, Image)
        for index in range(len(results)):
            rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            rgb[0, 0, 0] = index
            image = encode(rgb, "rgb8", header=header_at(100.0 + index / FPS))
            count = len(pose_segs)
            assert harness.send_until(camera, image, lambda: len(pose_segs) > count), f"frame {index}"
    by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in pose_segs}
    assert len(by_stamp) == len(results)
    history = {"a": set(), "b": set(), "c": set()}
    for index, frame_names in enumerate(names):
        stamp = header_at(100.0 + index / FPS).stamp
        people = by_stamp[(stamp.sec, stamp.nanosec)].people
        assert len(people) == len(frame_names)
        for name, person in zip(frame_names, people):
            history[name].add(person.id)
            assert all(not k.valid for k in person.keypoints_3d), "3D without depth configured"
    assert all(len(ids) == 1 for ids in history.values()), history
    assert len(set.union(*history.values())) == 3


def plane_depth(a: float, b: float, c: float) -> np.ndarray:
    """Depth (m) per pixel of the plane Z = c + a*X + b*Y seen through the test intrinsics."""
    v, u = np.mgrid[0:DEPTH_HEIGHT, 0:DEPTH_WIDTH].astype(np.float64)
    return c / (1 - a * (u - CX) / FX - b * (v - CY) / FY)


def depth_image(metres: np.ndarray, encoding: str, header: Header) -> Image:
    if encoding == "16UC1":
        data = np.nan_to_num(np.rint(metres * 1000), nan=0).astype("<u2")
    else:
        data = metres.astype("<f4")
    height, width = metres.shape
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=width * data.itemsize, data=data.tobytes())


def camera_info(header: Header) -> CameraInfo:
    return CameraInfo(header=header, height=DEPTH_HEIGHT, width=DEPTH_WIDTH, distortion_model="plumb_bob",
                      k=[FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0])


class DepthCamera:
    """Publishers of a camera with aligned depth into a node started with depth_topic/camera_info_topic."""

    def __init__(self, harness):
        self.harness = harness
        self.depth = harness.node.cameras[0].depth
        self.depth_publisher = camera_publisher(harness, Image, DEPTH_TOPIC)
        self.info_publisher = camera_publisher(harness, CameraInfo, INFO_TOPIC)
        self.camera = camera_publisher(harness, Image)

    def send_depth(self, depth: Image) -> None:
        key = (depth.header.stamp.sec, depth.header.stamp.nanosec)
        stamp = key[0] * 1_000_000_000 + key[1]
        assert self.harness.send_until(self.depth_publisher, depth,
                                       lambda: self.depth.frames.match(stamp, 0) is not None)

    def send_info(self, info: CameraInfo) -> None:
        assert self.harness.send_until(self.info_publisher, info, lambda: self.depth.intrinsics is not None)

    def frame(self, header: Header, outputs) -> PoseSeg:
        image = encode(np.zeros((DEPTH_HEIGHT, DEPTH_WIDTH, 3), np.uint8), "rgb8", header=header)
        assert self.harness.send_until(self.camera, image, lambda: any(m.header == header for m in outputs))
        return next(m for m in outputs if m.header == header)


def start_with_depth(predictor, namespace: str, **parameters):
    return start_node(predictor, namespace, depth_topic=DEPTH_TOPIC, camera_info_topic=INFO_TOPIC, **parameters)


def truth(u: float, v: float, a: float, b: float, c: float) -> np.ndarray:
    rx, ry = (u - CX) / FX, (v - CY) / FY
    z = c / (1 - a * rx - b * ry)
    return np.array([rx * z, ry * z, z])


def test_depth_of_a_known_plane_gives_keypoints_3d_within_a_centimetre(namespace):
    plane = (0.15, -0.1, 2.0)
    with start_with_depth(FixedPredictor(), namespace, depth_wait=0.0) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        markers = listen(harness, "markers_3d", MarkerArray)
        camera = DepthCamera(harness)
        camera.send_info(camera_info(header_at(1.0, "camera_color_optical_frame")))
        results = []
        for index, encoding in enumerate(("32FC1", "16UC1")):
            colour = header_at(10.0 + index)
            # The depth frame is stamped 5 ms after the colour frame: nearest within the 20 ms tolerance.
            depth_header = header_at(10.005 + index, "camera_depth_aligned_frame")
            camera.send_depth(depth_image(plane_depth(*plane), encoding, depth_header))
            results.append((encoding, camera.frame(colour, pose_segs)))
        harness.wait_for(lambda: len(markers) >= 2, 3.0)
        harness.wait_for(lambda: harness.diagnostic_values().get("processed") == "2", 3.0)
        assert harness.diagnostic_values()["depth_unmatched"] == "0"
    for encoding, pose_seg in results:
        assert len(pose_seg.people) == 2
        for person in pose_seg.people:
            for index, (keypoint, point) in enumerate(zip(person.keypoints, person.keypoints_3d)):
                if keypoint.confidence == 0:                       # FixedPredictor's unconfident wrist
                    assert not point.valid and (point.x, point.y, point.z) == (0, 0, 0)
                    continue
                assert point.valid, (encoding, person.id, index)
                error = np.linalg.norm(np.array([point.x, point.y, point.z]) - truth(keypoint.x, keypoint.y, *plane))
                assert error < 0.01, (encoding, person.id, index, error)
    array = markers[-1]
    assert {m.header.frame_id for m in array.markers} == {"camera_depth_aligned_frame"}
    ids = {p.id for p in results[-1][1].people}
    assert {(m.ns, m.id) for m in array.markers} == {(ns, i) for ns in ("skeleton", "joints", "score") for i in ids}
    joints = next(m for m in array.markers if m.ns == "joints")
    assert len(joints.points) == 16 and all(1.5 < p.z < 2.5 for p in joints.points)


def test_frames_without_usable_depth_stay_2d_invalid_zero_and_are_counted(namespace):
    with start_with_depth(FixedPredictor(), namespace, depth_wait=0.0) as harness:
        pose_segs = listen(harness, "pose_seg", PoseSeg)
        markers = listen(harness, "markers_3d", MarkerArray)
        camera = DepthCamera(harness)
        stats = harness.node.cameras[0].stats
        outputs = [camera.frame(header_at(20.0), pose_segs)]                  # no CameraInfo yet
        assert "CameraInfo" in stats.last_depth_problem
        camera.send_info(camera_info(header_at(1.0)))
        camera.send_depth(depth_image(plane_depth(0, 0, 2.0), "32FC1", header_at(30.0)))
        outputs.append(camera.frame(header_at(30.5), pose_segs))              # nearest depth 500 ms away
        assert "no depth frame" in stats.last_depth_problem
        camera.send_depth(depth_image(np.full((DEPTH_HEIGHT, DEPTH_WIDTH), np.nan), "32FC1", header_at(40.0)))
        outputs.append(camera.frame(header_at(40.0), pose_segs))              # matched, but no readings
        camera.send_depth(depth_image(np.ones((60, 80)), "32FC1", header_at(50.0)))
        outputs.append(camera.frame(header_at(50.0), pose_segs))              # matched, wrong size
        assert "80x60" in stats.last_depth_problem or "aligned" in stats.last_depth_problem
        harness.wait_for(lambda: harness.diagnostic_values().get("depth_unmatched") == "3", 3.0)
        # Only the matched NaN frame publishes 3D markers: nobody has a valid keypoint, nothing drawn.
        harness.wait_for(lambda: len(markers) >= 1, 2.0)
    assert stats.depth_unmatched == 3 and stats.processed == 4 and stats.failed == 0
    for pose_seg in outputs:
        assert len(pose_seg.people) == 2, "2D output must not depend on depth"
        for person in pose_seg.people:
            assert any(k.confidence > 0 for k in person.keypoints)
            values = np.array([(k.x, k.y, k.z) for k in person.keypoints_3d])
            assert np.isfinite(values).all() and (values == 0).all()
            assert not any(k.valid for k in person.keypoints_3d)
    assert all(not m.markers for m in markers)


def test_pose_seg_3d_fields_and_3d_markers_without_ros_io():
    result = people_frame([random_pose(np.random.default_rng(1), np.array([100.0, 150.0]), 100),
                           random_pose(np.random.default_rng(2), np.array([300.0, 150.0]), 100)])
    header = header_at(1.0)
    empty = pose_seg_from_result(result, header)
    assert all(not k.valid and (k.x, k.y, k.z) == (0, 0, 0) for p in empty.people for k in p.keypoints_3d)
    points = np.full((2, 17, 3), 1.5, np.float32)
    valid = np.ones((2, 17), bool)
    points[0, 3] = np.nan                                   # a NaN flagged valid is published invalid, 0
    valid[1] = False
    msg = pose_seg_from_result(result, header, ids=[7, 8], points_3d=points, valid_3d=valid)
    nose, ear = msg.people[0].keypoints_3d[0], msg.people[0].keypoints_3d[3]
    assert nose.valid and nose.z == 1.5 and not ear.valid and (ear.x, ear.y, ear.z) == (0, 0, 0)
    assert not any(k.valid for k in msg.people[1].keypoints_3d)
    # Person 8 has no valid 3D keypoint: not drawn; once 7 is gone too, 7's markers are deleted.
    array, drawn = markers_3d_from_result(result, header, points, valid, previous_ids={8}, ids=[7, 8])
    assert drawn == {7}
    assert {(m.ns, m.id, m.action) for m in array.markers} == {
        *((ns, 7, Marker.ADD) for ns in ("skeleton", "joints", "score")),
        *((ns, 8, Marker.DELETE) for ns in ("skeleton", "joints", "score"))}
    score = next(m for m in array.markers if m.ns == "score")
    assert score.text.startswith("7:") and score.pose.position.y < 1.5  # above the head (y down)
    array, drawn = markers_3d_from_result(result, header, points, np.zeros((2, 17), bool), drawn, [7, 8])
    assert drawn == set() and {(m.id, m.action) for m in array.markers} == {(7, Marker.DELETE)}


def test_depth_per_camera_and_depth_parameters_are_checked(namespace):
    with start_node(FixedPredictor(), namespace, image_topics=["front/image_raw", "rear/image_raw"],
                    depth_topics=["front/depth/image_raw", ""],
                    camera_info_topics=["front/depth/camera_info", ""]) as harness:
        node = harness.node
        assert [c.depth is not None for c in node.cameras] == [True, False]
        published = {p.topic_name for p in node.publishers}
        assert harness.output("markers_3d", "front") in published
        assert harness.output("markers_3d", "rear") not in published
        subscribed = {s.topic_name for s in node.subscriptions}
        assert {harness.topic("front/depth/image_raw"), harness.topic("front/depth/camera_info")} <= subscribed
        assert not node.set_parameters([Parameter("depth_tolerance", value=2.0)])[0].successful
        assert node.set_parameters([Parameter("depth_tolerance", value=0.05)])[0].successful
    bad = [{"depth_topic": "/d"},                                                   # info missing
           {"image_topics": ["/a/image", "/b/image"], "depth_topics": ["/a/depth"], "camera_info_topics": ["/a/info"]},
           {"depth_topic": "not a topic", "camera_info_topic": "/i"}]
    for overrides in bad:
        with pytest.raises(ValueError, match="depth_topic|not a valid topic"):
            start_node(FixedPredictor(), namespace, **overrides)
    defaults = params.load_defaults()
    assert params.depth_sources(defaults) == [None]
    assert params.depth_sources({**defaults, "depth_topic": "/d", "camera_info_topic": "/i"}) == [("/d", "/i")]
