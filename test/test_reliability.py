"""Failure behaviour as a tested property (issue 7): hostile image messages, device faults, unsafe model
files, damaged bags. The README's Reliability section lists what is covered and the figures measured.

The fuzz tests send Hypothesis-generated Image / CompressedImage messages through real rclpy to a
running node (FixedPredictor: the plumbing is under test, the model is not) one at a time, and check
each outcome against kdc_ros.node.image_io run directly on the same message: a frame it refuses must be
counted as rejected, a frame it accepts must be processed, nothing may fail or crash, and after
every example the node must answer a valid frame. The default suite runs ~200 messages; the `long`
variant thousands (KDC_FUZZ_EXAMPLES overrides the number of examples).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kdc_msgs.msg import PoseSeg
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from builtin_interfaces.msg import Time

from fixed_predictor import FixedPredictor
from image_samples import compress, encode, gradient_rgb
from kdc_ros.node.image_io import SUPPORTED_ENCODINGS, ImageError, compressed_to_rgb, image_to_rgb
from node_helpers import camera_publisher, listen, log_lines, node_log, settled, stamp_key, start_node

MAX_PIXELS = 1 << 20   # the fuzzed node's max_pixels: declared sizes above are refused before any work
U32 = (1 << 32) - 1

# --- strategies: raw images ------------------------------------------------------------------------
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "mono16": 2, "16uc1": 2,
                   "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2}
UNKNOWN_ENCODINGS = ["32FC1", "16SC1", "rgb16", "bgra16", "64FC3", "jpeg", "", " rgb8", "rgb8 ", "nv12", "8UC3",
                     "bayer_rggb16", "yuv420"]
encodings = st.one_of(
    st.sampled_from(SUPPORTED_ENCODINGS),
    st.sampled_from(SUPPORTED_ENCODINGS).map(str.upper),
    st.sampled_from(UNKNOWN_ENCODINGS),
    st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=12),
)


@st.composite
def plausible_images(draw):
    """A known encoding with small sizes, then its step, data length and contents possibly wrong."""
    encoding = draw(st.sampled_from(SUPPORTED_ENCODINGS))
    height, width = draw(st.integers(0, 24)), draw(st.integers(0, 24))
    bpp = BYTES_PER_PIXEL.get(encoding, 1)
    step = draw(st.one_of(st.just(width * bpp), st.integers(width * bpp, width * bpp + 9),
                          st.integers(0, max(0, width * bpp - 1)), st.integers(0, 300)))
    length = draw(st.one_of(st.just(step * height), st.just(max(0, step * height - 1)), st.just(step * height + 1),
                            st.integers(0, 1200)))
    data = draw(st.binary(min_size=min(length, 1200), max_size=min(length, 1200)))
    return Image(height=height, width=width, encoding=draw(st.sampled_from([encoding, encoding.upper()])),
                 is_bigendian=draw(st.integers(0, 255)), step=step, data=data)


@st.composite
def huge_declared_images(draw):
    """Headers declaring up to 4G x 4G pixels (and steps) with a few bytes of data."""
    return Image(height=draw(st.integers(0, U32)), width=draw(st.integers(0, U32)), encoding=draw(encodings),
                 is_bigendian=draw(st.integers(0, 1)), step=draw(st.integers(0, U32)),
                 data=draw(st.binary(max_size=64)))


@st.composite
def random_images(draw):
    return Image(height=draw(st.integers(0, 64)), width=draw(st.integers(0, 64)), encoding=draw(encodings),
                 is_bigendian=draw(st.integers(0, 255)), step=draw(st.integers(0, 512)),
                 data=draw(st.binary(max_size=600)))


@st.composite
def mutated_valid_images(draw):
    """A correct message of a random image, then one field changed."""
    encoding = draw(st.sampled_from(["rgb8", "bgr8", "rgba8", "mono8", "mono16", "yuyv", "uyvy", "bayer_rggb8"]))
    height, width = draw(st.integers(1, 16)), 2 * draw(st.integers(1, 8))
    rgb = np.frombuffer(draw(st.binary(min_size=height * width * 3, max_size=height * width * 3)),
                        np.uint8).reshape(height, width, 3)
    msg = encode(rgb, encoding, padding=draw(st.integers(0, 3)), bigendian=draw(st.booleans()))
    field = draw(st.sampled_from(["none", "height", "width", "step", "encoding", "data", "is_bigendian"]))
    if field in ("height", "width", "step"):
        setattr(msg, field, draw(st.integers(0, U32)))
    elif field == "encoding":
        msg.encoding = draw(encodings)
    elif field == "data":
        data = bytes(msg.data)
        cut = draw(st.integers(0, len(data)))
        msg.data = draw(st.sampled_from([data[:cut], data + data[:cut], data[cut:]]))
    elif field == "is_bigendian":
        msg.is_bigendian = draw(st.integers(0, 255))
    return msg


raw_messages = st.one_of(plausible_images(), huge_declared_images(), random_images(), mutated_valid_images())

# --- strategies: compressed images -----------------------------------------------------------------
def _seed_files() -> list[bytes]:
    import cv2

    rng = np.random.default_rng(3)
    files = []
    for height, width in ((8, 8), (24, 32), (30, 40)):
        for image in (gradient_rgb(height, width), rng.integers(0, 256, (height, width, 3), dtype=np.uint8)):
            for fmt in ("jpeg", "png"):
                files.append(bytes(compress(image, fmt).data))
            for ext in (".bmp", ".tiff", ".webp"):  # every other format the node decodes
                files.append(cv2.imencode(ext, image)[1].tobytes())
    return files


SEED_FILES = _seed_files()
FORMATS = st.one_of(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "tiff", "", "bmp"]),
                    st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=20))


def _with_size(data: bytes, width: int, height: int) -> bytes:
    """Overwrite the image size in a PNG IHDR or the first JPEG SOF (a decompression-bomb header)."""
    b = bytearray(data)
    if b[:4] == b"\x89PNG":
        b[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
        return bytes(b)
    sof = next((i for i in range(2, len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2)), None)
    if sof is not None:
        b[sof + 5:sof + 9] = (height & 0xFFFF).to_bytes(2, "big") + (width & 0xFFFF).to_bytes(2, "big")
    return bytes(b)


@st.composite
def mutated_compressed(draw):
    data = bytearray(draw(st.sampled_from(SEED_FILES)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "size", "zero_tail", "fill"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "size":
            data = bytearray(_with_size(bytes(data), draw(st.integers(0, 65535)), draw(st.integers(0, 65535))))
        elif kind == "fill":  # 0xFF fill bytes, legal before any JPEG marker (they hid the SOF from the old parser)
            data[at:at] = b"\xff" * draw(st.integers(1, 8))
        else:
            data[at:] = bytes(len(data) - at)
    return CompressedImage(format=draw(FORMATS), data=bytes(data))


compressed_messages = st.one_of(
    mutated_compressed(),
    st.builds(CompressedImage, format=FORMATS, data=st.binary(max_size=700)),
    st.builds(CompressedImage, format=FORMATS,  # real magic numbers, junk after
              data=st.tuples(st.sampled_from([b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF89a",
                                              b"BM", b"II*\x00", b"MM\x00*", b"II+\x00", b"RIFF\x00\x00\x00\x00WEBP"]),
                             st.binary(max_size=300)).map(b"".join)),
)


# --- the fuzz driver -------------------------------------------------------------------------------
def expected_outcome(msg) -> str:
    """What the node must do with `msg`: 'rejected' or 'processed' (the converter run directly)."""
    convert = compressed_to_rgb if isinstance(msg, CompressedImage) else image_to_rgb
    try:
        convert(msg, MAX_PIXELS)
    except ImageError:
        return "rejected"
    return "processed"  # any other exception fails the test here: the converter must only raise ImageError


def live_node(predictor, namespace: str, message_type, **parameters):
    """(harness, camera publisher, ~/pose_seg recording) of a node whose input is reliable: every
    message sent is one the node receives."""
    harness = start_node(predictor, namespace, reliability="reliable", diagnostics_period=0.5,
                         compressed=message_type is CompressedImage, **parameters)
    topic = "camera/image_raw/compressed" if message_type is CompressedImage else "camera/image_raw"
    return harness, camera_publisher(harness, message_type, topic), listen(harness, "pose_seg", PoseSeg, keep=50)


def fuzz_node(message_type, strategy, examples: int, derandomize: bool, namespace: str) -> dict:
    """Run `examples` Hypothesis examples (1-3 messages each, then a valid frame) through a live node."""
    compressed = message_type is CompressedImage
    valid_rgb = gradient_rgb(12, 16)
    counts = {"messages": 0, "rejected": 0, "processed": 0, "examples": 0}
    live, frames_in, pose_segs = live_node(FixedPredictor(), namespace, message_type, max_pixels=MAX_PIXELS)
    with live:
        stats = live.node.cameras[0].stats
        sent = 0

        @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(strategy, min_size=1, max_size=3))
        def one_example(messages):
            nonlocal sent
            counts["examples"] += 1
            for msg in messages:
                expected = expected_outcome(msg)
                before = (stats.rejected, stats.processed)
                frames_in.publish(msg)
                sent += 1
                live.wait_for(lambda: stats.received == sent and settled(live), 10.0,
                              f"no outcome for message {sent}")
                outcome = "rejected" if stats.rejected > before[0] else "processed" if stats.processed > before[1] \
                    else "nothing"
                assert outcome == expected, (outcome, expected, stats.last_problem)
                counts["messages"] += 1
                counts[expected] += 1
            # The node still answers a valid frame.
            header = Header(stamp=Time(sec=counts["examples"], nanosec=7), frame_id="fuzz")
            valid = compress(valid_rgb, "png", header=header) if compressed else encode(valid_rgb, "rgb8",
                                                                                        header=header)
            frames_in.publish(valid)
            sent += 1
            _, reply = pose_segs.stamped(*stamp_key(header))  # the worker lives on
            assert (reply.height, reply.width) == valid_rgb.shape[:2]

        one_example()
        live.wait_for(lambda: settled(live), 10.0, "frames left without an outcome")
        assert stats.failed == 0 and stats.dropped == 0, stats.last_problem
        assert stats.rejected == counts["rejected"]
        assert stats.processed == counts["processed"] + counts["examples"]
        # ... and /diagnostics says the same.
        live.wait_for(lambda: live.diagnostic_values().get("rejected") == str(stats.rejected)
                      and live.diagnostic_values().get("processed") == str(stats.processed), 5.0,
                      "/diagnostics does not count every rejection")
        assert live.diagnostic_values()["failed"] == "0"
    return counts


def _run_fuzz(message_type, strategy, examples, derandomize, label, namespace):
    import cv2

    start = time.monotonic()
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # thousands of "can't read header"
    try:
        counts = fuzz_node(message_type, strategy, examples, derandomize, namespace)
    finally:
        cv2.utils.logging.setLogLevel(level)
    seconds = time.monotonic() - start
    print(f"\nfuzz {label}: {counts['messages']} hostile messages ({counts['rejected']} rejected, "
          f"{counts['processed']} processed) in {counts['examples']} examples + {counts['examples']} valid "
          f"frames answered, 0 crashes, {seconds:.1f} s")
    return counts


@pytest.mark.parametrize("message_type,strategy", [(Image, raw_messages), (CompressedImage, compressed_messages)],
                         ids=["raw", "compressed"])
def test_fuzzed_frames_are_counted_and_the_node_keeps_answering(message_type, strategy, namespace):
    counts = _run_fuzz(message_type, strategy, 70, True, f"{message_type.__name__} (default suite)", namespace)
    assert counts["messages"] >= 70 and counts["rejected"] > 0


@pytest.mark.long
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("message_type,strategy", [(Image, raw_messages), (CompressedImage, compressed_messages)],
                         ids=["raw", "compressed"])
def test_long_fuzz(message_type, strategy, namespace):
    examples = int(os.environ.get("KDC_FUZZ_EXAMPLES", "1500"))
    counts = _run_fuzz(message_type, strategy, examples, False, f"{message_type.__name__} (long)", namespace)
    assert counts["messages"] >= examples and counts["rejected"] > 0 and counts["processed"] > 0


# --- strings and buffers from messages are bounded (issue 14) -----------------------------------------
def test_hostile_strings_reach_diagnostics_and_logs_cut_short(namespace):
    """A 4 MiB encoding or format used to become a 16 MiB /diagnostics message every second, for good."""
    huge = "x" * (4 << 20)
    lines = []
    for message_type, hostile in ((Image, Image(height=2, width=2, encoding=huge, step=6, data=bytes(12))),
                                  (CompressedImage, CompressedImage(format=huge, data=b"GIF89a" + bytes(64)))):
        live, frames_in, _ = live_node(FixedPredictor(), f"{namespace}_{message_type.__name__}", message_type)
        with live:
            log = node_log(live)
            stats = live.node.cameras[0].stats
            frames_in.publish(hostile)
            live.wait_for(lambda: stats.rejected == 1, 10.0, "hostile frame not rejected")
            live.wait_for(lambda: live.diagnostic_values().get("rejected") == "1", 5.0, "no diagnostics")
            live.wait_for(lambda: any("rejected" in line for line in log_lines(log, live)), 5.0, "no log line")
            values = live.diagnostic_values()
            status = next(s for a in reversed(live.diagnostics) for s in a.status if s.name.endswith(": camera"))
            lines += log_lines(log, live)
        assert f"({4 << 20} characters)" in values["last_problem"] and len(values["last_problem"]) <= 310
        assert len(status.message) < 400 and sum(len(kv.value) for kv in status.values) < 2000
    assert lines and all(len(line) < 500 for line in lines), max(len(line) for line in lines)


def depth_frame(stamp_s: int, width: int = 160, height: int = 120, encoding: str = "32FC1",
                data: bytes | None = None) -> Image:
    bytes_per_pixel = 2 if encoding.upper() == "16UC1" else 4
    return Image(header=Header(stamp=Time(sec=stamp_s)), height=height, width=width, encoding=encoding,
                 step=width * bytes_per_pixel, data=bytes(width * height * bytes_per_pixel) if data is None else data)


def test_depth_frames_are_checked_before_they_are_kept_and_the_cache_is_bounded_in_bytes(namespace):
    """40 x 40 MB invalid depth frames used to be held (+1.28 GB); now nothing invalid is stored, and
    valid frames are held up to depth_cache_mb."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo

    live, frames_in, pose_segs = live_node(FixedPredictor(), namespace, Image, depth_topic="depth",
                                           camera_info_topic="depth/info", depth_cache_mb=1,
                                           depth_cache_size=1000, max_pixels=MAX_PIXELS)
    with live:
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        depth_out = camera_publisher(live, Image, "depth", qos)
        info_out = camera_publisher(live, CameraInfo, "depth/info", qos)
        depth = live.node.cameras[0].depth
        cache, stats = depth.frames, live.node.cameras[0].stats
        bad = [depth_frame(1, data=bytes(4 << 20)),                            # data length does not fit
               depth_frame(2, encoding="rgb8"),                                  # not a depth encoding
               depth_frame(3, encoding="e" * (4 << 20)),                         # ... 4 MiB long
               depth_frame(4, width=2048, height=1024),                          # above max_pixels
               depth_frame(5, width=640, height=480)]                            # 1.2 MB > depth_cache_mb
        for count, msg in enumerate(bad, 1):  # one at a time: the depth input queue keeps the last 5
            depth_out.publish(msg)
            live.wait_for(lambda: stats.depth_rejected == count, 10.0, f"bad depth frame {count} not rejected")
        assert len(cache) == 0 and cache.bytes == 0
        assert "larger than the whole depth cache" in stats.last_depth_problem
        for second in range(10, 30):                                             # 76.8 kB each
            depth_out.publish(depth_frame(second))
            live.wait_for(lambda: cache.match(second * 10**9, 0) is not None, 10.0, "valid depth frame not stored")
            assert cache.bytes <= 1 << 20
        assert len(cache) == (1 << 20) // (160 * 120 * 4) == 13 and cache.match(17 * 10**9, 0) is not None
        assert stats.depth_rejected == len(bad)

        info_out.publish(CameraInfo(height=120, width=160, k=[float("nan"), 0, 80, 0, 100, 60, 0, 0, 1]))
        live.wait_for(lambda: "not finite" in (depth.info_problem or ""), 10.0, "NaN K kept")
        frames_in.publish(encode(gradient_rgb(120, 160), "rgb8", header=Header(stamp=Time(sec=29))))
        pose_segs.stamped(29, 0)
        assert "camera intrinsics are not finite" in stats.last_depth_problem and stats.depth_unmatched == 1
        live.wait_for(lambda: live.diagnostic_values().get("depth_rejected") == str(len(bad)), 5.0,
                      "/diagnostics has no depth_rejected")


# --- device faults ---------------------------------------------------------------------------------
class RunsOutOfMemory(FixedPredictor):
    """FixedPredictor that raises torch.OutOfMemoryError on frames above `limit` pixels, like a GPU would."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.ooms = 0

    def __call__(self, rgb):
        import torch

        if rgb.shape[0] * rgb.shape[1] > self.limit:
            self.ooms += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB "
                                         "total capacity)\nSee documentation for Memory Management")
        return super().__call__(rgb)


def test_out_of_memory_on_a_giant_frame_drops_it_and_the_next_frame_is_answered(namespace):
    predictor = RunsOutOfMemory(limit=64 * 64)
    live, frames_in, pose_segs = live_node(predictor, namespace, Image)
    with live:
        stats = live.node.cameras[0].stats
        for index in range(3):  # three giant frames, each followed by a small one
            giant = encode(np.zeros((100, 120, 3), np.uint8), "rgb8", header=Header(stamp=Time(sec=100 + index)))
            frames_in.publish(giant)
            live.wait_for(lambda: stats.oom == index + 1, 10.0, "out of memory not counted")
            small = encode(gradient_rgb(24, 32), "rgb8", header=Header(stamp=Time(sec=index)))
            frames_in.publish(small)
            assert pose_segs.stamped(index, 0)[1].width == 32
        live.wait_for(lambda: live.diagnostic_values().get("oom") == "3", 5.0, "/diagnostics has no oom count")
        values = live.diagnostic_values()
    assert predictor.ooms == 3 and stats.oom == stats.failed == 3 and stats.processed == 3
    assert values["failed"] == "3" and "out of memory" in values["last_problem"]
    assert "\n" not in values["last_problem"]
    assert not any(stamp_key(m.header)[0] >= 100 for m in pose_segs), "a failed frame was published"


def test_out_of_memory_is_told_from_other_errors():
    import torch

    from kdc_ros.node.faults import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough "
                                         "memory: you tried to allocate 1 bytes"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_cuda_requested_but_absent_falls_back_to_cpu_or_stops_by_parameter(small_checkpoint, namespace):
    import torch

    absent = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: absent on every machine
    with start_node(None, namespace, model=str(small_checkpoint), device=absent) as harness:
        node, log = harness.node, node_log(harness)
        assert node.settings["device_fallback"] is True and node.predictor.device.type == "cpu"
        warning = f"device {absent} is not available; running on CPU"
        harness.wait_for(lambda: warning in log_lines(log, harness), 5.0, "no warning logged")
    with pytest.raises(ValueError) as refused:
        start_node(None, namespace, model=str(small_checkpoint), device=absent, device_fallback=False)
    message = str(refused.value)
    assert absent in message and "not available" in message and "device_fallback" in message
    assert "\n" not in message


def test_the_node_sets_its_inference_threads_when_it_builds_its_model(small_checkpoint, namespace):
    import torch

    from kdc_model.inference.backends import default_threads

    before = torch.get_num_threads()
    try:
        for setting, expected in ((3, 3), (0, default_threads())):
            torch.set_num_threads(2 if expected != 2 else 4)  # something else, so the node must change it
            with start_node(None, namespace, model=str(small_checkpoint), threads=setting):
                assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_default_threads_leave_a_core_free():
    from kdc_model.inference.backends import default_threads

    for cores, threads in ((0, 1), (1, 1), (2, 1), (4, 3), (64, 8)):
        assert default_threads(cores) == threads


# --- model files -----------------------------------------------------------------------------------
class _TouchesSentinel:
    """Unpickling this calls Path.touch(sentinel): the proof that a loader ran code from the file."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (type(self.sentinel).touch, (self.sentinel,))


@pytest.fixture(scope="module")
def bad_model_files(tmp_path_factory, small_checkpoint):
    """{problem: (path, sentinel or None, what the one-line error must say)}."""
    import json

    import torch
    from safetensors.torch import save_file

    from kdc_model import KDCNet, ModelConfig, load_checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("bad_models")
    config, state = load_checkpoint(small_checkpoint)
    files = {}
    sentinel = root / "code_ran"
    evil = root / "evil.pt"
    torch.save({"config": config.to_dict(), "state_dict": state, "hook": _TouchesSentinel(sentinel)}, evil)
    files["pickled code (.pt)"] = (evil, sentinel, "refused: the file holds pickled objects")
    evil_st = root / "evil.safetensors"  # a pickle wearing a safetensors name
    evil_st.write_bytes(pickle.dumps({"hook": _TouchesSentinel(sentinel)}))
    files["pickled code (.safetensors)"] = (evil_st, sentinel, "truncated or corrupt safetensors")
    cut = root / "cut.safetensors"
    data = small_checkpoint.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    files["truncated"] = (cut, None, "truncated or corrupt")
    narrow = root / "narrow.safetensors"  # the config says 32 neck channels, the weights have 16
    save_checkpoint(narrow, KDCNet(config), ModelConfig(input_size=64, neck_channels=32, head_channels=16))
    files["config/weights mismatch"] = (narrow, None, "weights do not fit the stored config")
    other = root / "resnet.safetensors"  # a KDC config over the weights of another network
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(other),
              metadata={"config": json.dumps(config.to_dict())})
    files["wrong architecture"] = (other, None, "weights do not fit the stored config")
    classifier = root / "classifier.safetensors"  # plain weights of another model, no KDC config
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(classifier))
    files["not a KDC checkpoint"] = (classifier, None, "not a KDC checkpoint")
    return files


PROBLEMS = ["pickled code (.pt)", "pickled code (.safetensors)", "truncated", "config/weights mismatch",
            "wrong architecture", "not a KDC checkpoint"]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_model_file_gives_one_line_naming_it_via_load_model_and_node(bad_model_files, problem, namespace):
    from kdc_model import CheckpointError, load_model

    path, sentinel, says = bad_model_files[problem]
    with pytest.raises(CheckpointError) as direct:
        load_model(path, device="cpu")
    with pytest.raises(ValueError) as via_node:
        start_node(None, namespace, model=str(path), device="cpu")
    for err in (direct.value, via_node.value):
        text = str(err)
        assert "\n" not in text and str(path) in text and says in text, text
    if sentinel is not None:
        assert not sentinel.exists(), "loading the model executed code from the file"


def test_node_startup_refuses_pickled_code_with_one_fatal_line(bad_model_files):
    path, sentinel, _ = bad_model_files["pickled code (.pt)"]
    result = subprocess.run([sys.executable, "-m", "kdc_ros.node", "--ros-args", "-p", f"model:={path}",
                             "-p", "device:=cpu"], capture_output=True, text=True, timeout=120)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    fatal = [line for line in output.splitlines() if "cannot start" in line]
    assert len(fatal) == 1 and str(path) in fatal[0] and "pickled objects" in fatal[0], output
    assert "Traceback" not in output and not sentinel.exists()


# --- damaged bags through kdc-replay ----------------------------------------------------------------
def test_kdc_replay_names_zero_length_and_wrong_type_bags(tmp_path, small_checkpoint, capsys):
    from std_msgs.msg import String

    from kdc_ros.bags.bag_writer import MessageBagWriter
    from kdc_ros.replay.cli import main as kdc_replay

    empty = tmp_path / "empty.mcap"
    empty.touch()
    strings = tmp_path / "strings"
    with MessageBagWriter(strings) as writer:
        writer.write("/cam/image_raw", String(data="not an image"), 1)
    for bag, says in ((empty, "empty.mcap"), (strings, "/cam/image_raw carries std_msgs/msg/String")):
        status = kdc_replay([str(bag), "--topic", "/cam/image_raw", "--out", str(tmp_path / "out"),
                             "--checkpoint", str(small_checkpoint), "--device", "cpu", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert status == 1 and says in err and len(err.splitlines()) == 1, err
