"""kdc-bag (video / image folder -> rosbag2) and reading image topics back, damaged bags included."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from std_msgs.msg import String

from bag_samples import START_TIME, TOPIC, truncate, write_frame_folder, write_video
from kdc_ros.bags.bag_writer import MessageBagWriter
from kdc_ros.bags.image_bag import BagError, ImageBag
from kdc_ros.bags.make_bag import main as kdc_bag
from kdc_ros.node.image_io import compressed_to_rgb, image_to_rgb


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("footage") / "frames"
    return folder, write_frame_folder(folder)


@pytest.fixture(scope="module")
def folder_bag(frames, tmp_path_factory):
    folder, _ = frames
    bag = tmp_path_factory.mktemp("bags") / "folder_bag"
    assert kdc_bag([str(folder), str(bag), "--topic", TOPIC, "--fps", "5", "--start-time", str(START_TIME)]) == 0
    return bag


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_image_folder_to_bag_keeps_pixels_order_and_stamps(frames, tmp_path, encoding):
    folder, rgbs = frames
    bag = tmp_path / "bag"
    assert kdc_bag([str(folder), str(bag), "--topic", TOPIC, "--encoding", encoding, "--fps", "5",
                    "--start-time", str(START_TIME), "--frame-id", "cam_optical"]) == 0
    with ImageBag(bag, TOPIC) as reader:
        assert reader.msgtype == "sensor_msgs/msg/Image" and reader.count == len(rgbs)
        assert reader.frame_names() == [f"{i:06d}.png" for i in range(len(rgbs))]
        read = list(reader.frames())
    for i, frame in enumerate(read):
        stamp_ns = round(START_TIME * 1e9) + i * 200_000_000  # 5 fps
        assert frame.index == i and frame.log_time_ns == stamp_ns
        assert frame.msg.header.stamp.sec * 10**9 + frame.msg.header.stamp.nanosec == stamp_ns
        assert frame.msg.header.frame_id == "cam_optical" and frame.msg.encoding == encoding
        np.testing.assert_array_equal(image_to_rgb(frame.msg), rgbs[i])


def test_video_to_compressed_sqlite_bag_at_the_video_rate(frames, tmp_path):
    _, rgbs = frames
    video = write_video(tmp_path / "clip.avi", rgbs, fps=12)
    bag = tmp_path / "bag"
    assert kdc_bag([str(video), str(bag), "--topic", TOPIC, "--compressed", "--storage", "sqlite3",
                    "--max-frames", "4"]) == 0
    assert list(bag.glob("*.db3"))
    with ImageBag(bag, TOPIC) as reader:
        assert reader.compressed and reader.count == 4
        read = list(reader.frames())
    assert [f.msg.format for f in read] == ["jpeg"] * 4
    steps = np.diff([f.log_time_ns for f in read])
    np.testing.assert_allclose(steps, 1e9 / 12, atol=1)
    # JPEG twice (video codec, then the bag) is lossy: close, not equal.
    assert np.abs(compressed_to_rgb(read[0].msg).astype(int) - rgbs[0]).mean() < 12


def test_kdc_bag_refuses_existing_output_and_empty_folder(folder_bag, tmp_path, capsys):
    assert kdc_bag([str(tmp_path), str(tmp_path / "x"), "--topic", TOPIC]) == 1
    assert "no images" in capsys.readouterr().err
    frames_dir = tmp_path / "one"
    write_frame_folder(frames_dir, frames=1)
    assert kdc_bag([str(frames_dir), str(folder_bag), "--topic", TOPIC]) == 1
    assert "already exists" in capsys.readouterr().err


def test_missing_topic_is_named_with_the_topics_present(folder_bag):
    with pytest.raises(BagError, match=rf"no topic /other.*{TOPIC} \(sensor_msgs/msg/Image\)"):
        ImageBag(folder_bag, "/other")


def test_wrong_message_type_is_named(tmp_path):
    bag = tmp_path / "strings"
    with MessageBagWriter(bag) as writer:
        writer.write(TOPIC, String(data="not an image"), 1)
    with pytest.raises(BagError, match=rf"{TOPIC} carries std_msgs/msg/String, expected"):
        ImageBag(bag, TOPIC)


def test_zero_length_and_garbage_files_are_named(tmp_path):
    empty = tmp_path / "empty.mcap"
    empty.touch()
    with pytest.raises(BagError, match="empty.mcap.*empty"):
        ImageBag(empty, TOPIC)
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"not a bag at all" * 64)
    with pytest.raises(BagError, match="garbage.mcap"):
        ImageBag(garbage, TOPIC)
    with pytest.raises(BagError, match="no such bag"):
        ImageBag(tmp_path / "absent", TOPIC)


def test_truncated_bag_yields_the_frames_before_the_damage(folder_bag, tmp_path):
    bag = tmp_path / "truncated"
    shutil.copytree(folder_bag, bag)
    mcap = truncate(bag, 0.6)
    with ImageBag(folder_bag, TOPIC) as intact:
        originals = list(intact.frames())
    with ImageBag(bag, TOPIC) as reader:
        assert reader.damage is not None and str(mcap) in reader.damage and "damaged at byte" in reader.damage
        read = list(reader.frames())
    assert 0 < len(read) < len(originals)
    for frame, original in zip(read, originals):
        assert frame.log_time_ns == original.log_time_ns
        assert bytes(frame.msg.data) == bytes(original.msg.data)


def test_truncated_before_any_frame_names_the_file(folder_bag, tmp_path):
    bag = tmp_path / "stub"
    shutil.copytree(folder_bag, bag)
    truncate(bag, 0.001)
    with pytest.raises(BagError, match=f"no topic {TOPIC} before the damage.*folder_bag.mcap: damaged at byte"):
        ImageBag(bag, TOPIC)


def test_written_mcap_bags_carry_real_crcs_and_a_flipped_bit_is_caught(folder_bag, frames, tmp_path):
    """rosbags writes CRC 0 ("none") everywhere, so a damaged frame read back as a good one."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from kdc_ros.bags.mcap_crc import crc_problems
    from kdc_ros.bags.typestore import bag_typestore

    (mcap,) = folder_bag.glob("*.mcap")
    assert crc_problems(mcap) == []
    plain = tmp_path / "plain"  # the library writer alone: the checker does see missing CRCs
    with Writer(plain, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/s", "std_msgs/msg/String", typestore=bag_typestore())
        writer.write(connection, 1, b"\x00\x01\x00\x00\x02\x00\x00\x00x\x00")
    assert {p.split(":")[0] for p in crc_problems(next(plain.glob("*.mcap")))} >= {"data section", "summary"}

    damaged = tmp_path / "damaged"
    shutil.copytree(folder_bag, damaged)
    (copy,) = damaged.glob("*.mcap")
    data = bytearray(copy.read_bytes())
    _, rgbs = frames
    last = image_to_rgb(next(f for f in ImageBag(folder_bag, TOPIC).frames() if f.index == len(rgbs) - 1).msg)
    at = data.rindex(np.ascontiguousarray(last[..., ::-1]).tobytes()[:64])  # inside the last frame's pixels
    data[at + 10] ^= 0x01
    copy.write_bytes(bytes(data))
    assert any("CRC" in p and "the bytes give" in p for p in crc_problems(copy))
    with ImageBag(damaged, TOPIC) as reader:
        read = list(reader.frames())
        assert reader.damage is not None and "checksum mismatch" in reader.damage
    assert len(read) < len(rgbs)  # the damaged chunk is not read as good frames
    for frame in read:
        np.testing.assert_array_equal(image_to_rgb(frame.msg), rgbs[frame.index])
