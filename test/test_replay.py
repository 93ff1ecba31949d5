"""kdc-replay offline and live: every output message against the model's own output for the same frame."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from kdc_msgs.msg import PoseSeg
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from bag_samples import START_TIME, TOPIC, truncate, write_frame_folder
from fixed_predictor import FixedPredictor
from kdc_model import ModelConfig, load_model
from kdc_ros.node import params
from kdc_ros.bags.image_bag import ImageBag
from kdc_ros.bags.make_bag import write_image_bag
from kdc_ros.node.messages import filter_result, pose_seg_from_result
from kdc_ros.harness import NodeHarness
from kdc_ros.replay.cli import main as kdc_replay
from kdc_ros.replay.live import node_topics, replay_live
from kdc_ros.replay.offline import message_rgb, replay_offline
from kdc_ros.replay.outputs import OVERLAY_TOPIC, POSE_SEG_TOPIC
from kdc_ros.replay.pose_seg_result import result_from_pose_seg
from kdc_ros.replay.tracking_metrics import pose_seg_frames, tracking_summary

STAGES = {"conversion", "preprocess", "network", "decode", "messages", "total"}


class SceneDependentPredictor(FixedPredictor):
    """FixedPredictor whose people shift with the image content: a frame mixed up with another shows."""

    device = "cpu"

    def __call__(self, rgb):
        result = super().__call__(rgb)
        shift = float(rgb.mean()) / 8
        result.keypoints[..., 0] += shift
        result.boxes[:, [0, 2]] += shift
        return result

    def predict_batch(self, images):
        return [self(image) for image in images]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    write_frame_folder(root / "frames")
    raw = write_image_bag(root / "frames", root / "raw_bag", TOPIC, fps=5, start_time=START_TIME, progress=False)
    jpeg = write_image_bag(root / "frames", root / "jpeg_bag", TOPIC + "/compressed", compressed=True, fps=5,
                           start_time=START_TIME, progress=False)
    return root, raw.path, jpeg.path


@pytest.fixture(scope="module")
def small_model():
    # One thread: on a shared 2-core machine two threads mostly wait for each other. Restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(ModelConfig(input_size=64, neck_channels=16, head_channels=16), device="cpu")
    torch.set_num_threads(threads)


def input_frames(bag, topic=TOPIC):
    with ImageBag(bag, topic) as reader:
        return {(f.msg.header.stamp.sec, f.msg.header.stamp.nanosec): f for f in reader.frames()}


def recorded(out_dir, topic):
    """(log time, rclpy message) of `topic` in a replay's output bag, read with rosbags' own typestore
    only: the PoseSeg definitions must come from the bag itself."""
    with AnyReader([out_dir / "bag"]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        rows = []
        for connection, log_time, raw in reader.messages(connections=connections):
            reader.deserialize(raw, connection.msgtype)  # decodable without kdc_msgs
            rows.append((log_time, deserialize_message(raw, PoseSeg if topic == POSE_SEG_TOPIC else
                                                       __import__("sensor_msgs.msg").msg.Image)))
        return rows


def assert_matches_model(pose_segs, inputs, predictor):
    """Each PoseSeg: the header of an input frame, and the people of the model run on that frame
    directly, after the node's thresholds."""
    defaults = params.load_defaults()
    for log_time, msg in pose_segs:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert key in inputs, f"PoseSeg stamped {key} matches no input frame"
        frame = inputs[key]
        assert msg.header == frame.msg.header and log_time == frame.log_time_ns
        expected = filter_result(predictor(message_rgb(frame.msg)), defaults["min_person_score"],
                                 defaults["keypoint_threshold"])
        got = result_from_pose_seg(msg)
        assert len(got) == len(expected)
        np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-4)
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-6)
        np.testing.assert_array_equal(got.label_map, expected.label_map)


def test_offline_replay_outputs_match_the_model_frame_by_frame(footage):
    root, raw_bag, _ = footage
    predictor = SceneDependentPredictor()
    report = replay_offline(raw_bag, TOPIC, root / "offline", predictor, batch_size=4, progress=False,
                            annotations=root / "frames_coco.json")
    inputs = input_frames(raw_bag)
    pose_segs = recorded(root / "offline", POSE_SEG_TOPIC)
    assert len(pose_segs) == len(inputs) == report["frames"] == 6
    assert_matches_model(pose_segs, inputs, SceneDependentPredictor())
    assert report["people_per_frame"] == [2] * 6 and report["frames_with_people"] == 6
    assert report["tracking"] == tracking_summary(pose_seg_frames([msg for _, msg in pose_segs]))
    assert report["tracking"]["tracks"] >= 2 and report["tracking"]["max_track_length"] <= 6
    assert set(report["latency_ms"]) == STAGES and report["throughput_fps"] > 0
    assert report["evaluation"]["matched_images"] == 6 and "keypoints_ap" in report["evaluation"]
    assert json.loads((root / "offline" / "report.json").read_text())["frames"] == 6
    assert len(recorded(root / "offline", OVERLAY_TOPIC)) == 6
    video = cv2.VideoCapture(str(root / "offline" / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_offline_replay_publishes_what_the_node_publishes(footage, namespace):
    """kdc-replay and the node turn a result into messages with one function (kdc_ros.node.frame_outputs):
    the same frames, fed one by one to a node, give the replay's PoseSeg, person ids included."""
    root, raw_bag, _ = footage
    replay_offline(raw_bag, TOPIC, root / "offline_vs_node", SceneDependentPredictor(), batch_size=3,
                   overlay=False, progress=False)
    replayed = [msg for _, msg in recorded(root / "offline_vs_node", POSE_SEG_TOPIC)]
    with NodeHarness(SceneDependentPredictor(), namespace=namespace,
                     parameters={"image_topic": "camera/image_raw", "reliability": "reliable"}) as harness:
        answers = harness.record(harness.output("pose_seg"), PoseSeg)
        camera = harness.publisher("camera/image_raw", Image)
        harness.connected([camera], [harness.output("pose_seg")])
        for frame in input_frames(raw_bag).values():  # one at a time: the node drops none
            camera.publish(frame.msg)
            answers.stamped(frame.msg.header.stamp.sec, frame.msg.header.stamp.nanosec)
    published = list(answers)
    assert len(published) == len(replayed) == 6
    for got, expected in zip(published, replayed):
        assert got.header == expected.header and got.mask == expected.mask
        assert [p.id for p in got.people] == [p.id for p in expected.people] and got.people
        assert got.people == expected.people


def test_offline_replay_with_the_real_model_batched_equals_one_by_one(footage, small_model):
    root, raw_bag, _ = footage
    report = replay_offline(raw_bag, TOPIC, root / "offline_model", small_model, batch_size=3, overlay=False,
                            progress=False)
    assert report["frames"] == 6 and report["files"]["overlay_video"] is None
    assert not (root / "offline_model" / "overlay.mp4").exists()
    assert_matches_model(recorded(root / "offline_model", POSE_SEG_TOPIC), input_frames(raw_bag), small_model)


def test_live_replay_through_the_node(footage):
    root, raw_bag, _ = footage
    predictor = SceneDependentPredictor()
    report = replay_live(raw_bag, TOPIC, root / "live", predictor, rate=1.0, progress=False)
    pose_segs = recorded(root / "live", POSE_SEG_TOPIC)
    assert 1 <= report["outputs"] == len(pose_segs) <= report["frames"] == 6
    assert report["drop_rate"] == pytest.approx(1 - report["outputs"] / 6, abs=1e-3)
    assert set(report["tracking"]) == {"tracks", "mean_track_length", "max_track_length", "id_switches",
                                       "id_kept_fraction"} and report["tracking"]["tracks"] >= 2
    assert_matches_model(pose_segs, input_frames(raw_bag), SceneDependentPredictor())
    # The player never runs ahead of the recorded 5 Hz (how far behind it falls depends on the machine).
    assert report["latency_ms"]["end_to_end"]["p50"] > 0 and 0 < report["input_rate_hz"] <= 5.0 + 1e-6
    assert len(recorded(root / "live", OVERLAY_TOPIC)) >= 1
    assert (root / "live" / "overlay.mp4").stat().st_size > 0


@pytest.mark.long  # within 50% of the recorded rate: a loaded machine may fall further behind
def test_live_replay_keeps_about_the_recorded_rate(footage):
    root, raw_bag, _ = footage
    report = replay_live(raw_bag, TOPIC, root / "live_rate", SceneDependentPredictor(), overlay=False, progress=False)
    assert report["input_rate_hz"] == pytest.approx(5, rel=0.5)


def test_live_replay_of_compressed_images_with_the_real_model(footage, small_model):
    root, _, jpeg_bag = footage
    report = replay_live(jpeg_bag, TOPIC + "/compressed", root / "live_jpeg", small_model, rate=2.0,
                         overlay=False, progress=False)
    assert report["outputs"] >= 1 and report["message_type"] == "sensor_msgs/msg/CompressedImage"
    assert_matches_model(recorded(root / "live_jpeg", POSE_SEG_TOPIC), input_frames(jpeg_bag, TOPIC + "/compressed"),
                         small_model)


def test_node_topics_follow_image_transport():
    assert node_topics("/cam/image_raw", compressed=False) == ("/cam/image_raw", "/cam/image_raw")
    assert node_topics("/cam/image_raw/compressed", compressed=True) == ("/cam/image_raw/compressed", "/cam/image_raw")
    assert node_topics("/cam/jpeg", compressed=True) == ("/cam/jpeg/compressed", "/cam/jpeg")


def test_live_replay_into_an_already_running_node(footage, namespace):
    root, raw_bag, _ = footage
    robot = f"{namespace}/robot"
    with NodeHarness(SceneDependentPredictor(), namespace=robot, parameters={"image_topic": TOPIC}):
        report = replay_live(raw_bag, TOPIC, root / "live_external", None, node_namespace=robot,
                             overlay=False, progress=False)
    assert report["node"] == robot and report["outputs"] >= 1
    assert_matches_model(recorded(root / "live_external", POSE_SEG_TOPIC), input_frames(raw_bag),
                         SceneDependentPredictor())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_model):
    from kdc_model.network.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    save_checkpoint(path, small_model.model, small_model.config)
    return path


def test_cli_replays_a_truncated_bag_up_to_the_damage_and_exits_2(footage, tmp_path, checkpoint, capsys):
    _, raw_bag, _ = footage
    bag = tmp_path / "truncated"
    shutil.copytree(raw_bag, bag)
    mcap = truncate(bag, 0.6)
    status = kdc_replay([str(bag), "--topic", TOPIC, "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                         "--device", "cpu", "--no-progress"])
    assert status == 2
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert 0 < report["frames"] < 6 and str(mcap) in report["bag_damage"]
    assert str(mcap) in capsys.readouterr().err


def test_cli_names_a_missing_topic(footage, tmp_path, checkpoint, capsys):
    _, raw_bag, _ = footage
    status = kdc_replay([str(raw_bag), "--topic", "/nope", "--out", str(tmp_path / "out"),
                         "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"])
    assert status == 1
    assert "no topic /nope" in capsys.readouterr().err


# --- long bags, nothing replayed (issue 14) ------------------------------------------------------------
class MemoryProbe(FixedPredictor):
    """FixedPredictor that reads the memory Python holds (tracemalloc) at every frame."""

    device = "cpu"

    def __init__(self):
        super().__init__()
        self.held = []

    def __call__(self, rgb):
        import tracemalloc

        self.held.append(tracemalloc.get_traced_memory()[0])
        return super().__call__(rgb)


def compressed_bag(path, frames: int, height: int = 240, width: int = 320):
    from sensor_msgs.msg import CompressedImage

    from kdc_ros.bags.bag_writer import MessageBagWriter

    ok, jpeg = cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))
    with MessageBagWriter(path) as writer:
        for i in range(frames):
            stamp = Time(sec=1000 + i // 10, nanosec=(i % 10) * 100_000_000)
            writer.write(TOPIC + "/compressed", CompressedImage(header=Header(stamp=stamp), format="jpeg",
                                                                data=jpeg.tobytes()), 1000 * 10**9 + i * 10**8)
    return path


def test_offline_replay_memory_stays_flat_over_a_long_bag(tmp_path):
    """Each 320x240 frame's outputs (label map, PoseSeg mask: 0.3 MB) used to be kept to the end."""
    import tracemalloc

    bag = compressed_bag(tmp_path / "long", 240)
    probe = MemoryProbe()
    tracemalloc.start()
    try:
        report = replay_offline(bag, TOPIC + "/compressed", tmp_path / "out", probe, batch_size=4, overlay=False,
                                progress=False)
    finally:
        tracemalloc.stop()
    assert report["frames"] == 240 and len(recorded(tmp_path / "out", POSE_SEG_TOPIC)) == 240
    grown_mb = (probe.held[-1] - probe.held[40]) / 2**20
    print(f"\noffline replay, 320x240: Python-held memory {probe.held[40] / 2**20:.1f} MiB at frame 40, "
          f"{probe.held[-1] / 2**20:.1f} MiB at frame 240 ({grown_mb:+.2f} MiB)")
    assert grown_mb < 3, grown_mb  # keeping every frame's outputs would grow it by ~60 MiB


def test_live_run_keeps_running_figures_not_outputs():
    import tracemalloc

    from kdc_ros.replay.live import LiveRun

    rgb_shape = (240, 320)
    header = lambda i: Header(stamp=Time(sec=i))  # noqa: E731
    run = LiveRun()
    result = filter_result(FixedPredictor.result_for(*rgb_shape), 0.15, 0.1)
    tracemalloc.start()
    try:
        for i in range(300):
            run.published((i, 0), float(i), i)
            if i % 3 == 0:            # the node skipped the other two: settled by this output
                msg = pose_seg_from_result(result, header(i))
                assert run.output(msg, i + 0.05)
            if i == 30:
                start = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert run.matched == 100 and len(run.waiting) == 2 and len(run.latencies_ms) == 100
    assert not run.output(pose_seg_from_result(result, header(5000)), 1.0) and run.foreign_outputs == 1
    assert grown < 200_000, grown  # 90 PoseSeg with a 320x240 mask each would be ~14 MB


def test_cli_exits_1_when_nothing_was_replayed(tmp_path, checkpoint, capsys):
    from kdc_ros.bags.bag_writer import MessageBagWriter

    bag = tmp_path / "all_bad"
    with MessageBagWriter(bag) as writer:
        for i in range(15):
            writer.write(TOPIC, Image(header=Header(stamp=Time(sec=i)), height=2, width=2, encoding="bogus",
                                      step=6, data=bytes(12)), (i + 1) * 10**9)
    status = kdc_replay([str(bag), "--topic", TOPIC, "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                         "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 1, err
    assert err.splitlines()[-1].startswith("kdc-replay: error: nothing replayed: all 15 frames were rejected "
                                           "(first: frame 0: unknown encoding 'bogus'")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["frames"] == 0 and report["rejected_frames"] == 15 and len(report["rejected_examples"]) == 10
