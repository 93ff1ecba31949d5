"""Figures for the README's Reliability section (issue 14): what the resource bounds cost and save.

    source env.sh && python scripts/measure_bounds.py [--replay-frames 600]

Prints one line per measurement. RSS is this process's VmRSS (/proc/self/status). Nothing here is a
test: the tests (test_image_header.py, test_onnx_cache.py, test_reliability.py, test_replay.py,
test_bags.py) assert the behaviour; this measures it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def depth_cache() -> None:
    """The issue's 40 x 40 MB invalid depth frames, through the node's depth callback."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from builtin_interfaces.msg import Time

    from kdc_ros.node.depth_input import DepthInput

    depth = DepthInput("/depth", "/info", capacity=30, max_bytes=128 << 20)
    data = bytes(40 << 20)
    before, refused = rss_mb(), 0
    for i in range(40):  # a 4096 x 2561 32FC1 header over 40 MiB of data: the length does not fit
        msg = Image(header=Header(stamp=Time(sec=i)), height=2561, width=4096, encoding="32FC1", step=16384,
                    data=data)
        refused += depth.on_depth(msg) is not None
        del msg
    print(f"depth cache: 40 invalid 40 MiB depth frames: {refused} refused, {len(depth.frames)} kept, "
          f"{depth.frames.bytes} bytes held, RSS {before:.0f} -> {rss_mb():.0f} MB")
    frame = bytes(1920 * 1080 * 2)
    for i in range(100):  # valid 1080p 16UC1 frames: the byte budget decides
        depth.on_depth(Image(header=Header(stamp=Time(sec=100 + i)), height=1080, width=1920, encoding="16UC1",
                             step=3840, data=frame))
    print(f"depth cache: 100 valid 1920x1080 16UC1 frames (4.1 MB each), depth_cache_size 30, depth_cache_mb 128: "
          f"{len(depth.frames)} kept, {depth.frames.bytes / 2**20:.1f} MiB held")


def aspect_and_strings() -> None:
    from sensor_msgs.msg import CompressedImage, Image

    from kdc_ros.node.diagnostics import FrameStats
    from kdc_ros.node.image_io import ImageError, compressed_to_rgb, image_to_rgb

    line = Image(height=1, width=16_000_000, encoding="rgb8", step=48_000_000, data=bytes(48_000_000))
    start = time.perf_counter()
    try:
        image_to_rgb(line)
    except ImageError as err:
        print(f"aspect: 16000000x1 rgb8 frame refused in {(time.perf_counter() - start) * 1e3:.3f} ms: {err}")
    stats = FrameStats()
    for msg, convert in ((Image(height=2, width=2, encoding="x" * (4 << 20), step=6, data=bytes(12)), image_to_rgb),
                         (CompressedImage(format="x" * (4 << 20), data=b"GIF89a" + bytes(64)), compressed_to_rgb)):
        try:
            convert(msg)
        except ImageError as err:
            stats.count_rejected(str(err))
        status = stats.summary("/kdc: camera", "/camera/image_raw")
        size = len(status.message) + sum(len(kv.key) + len(kv.value) for kv in status.values)
        print(f"strings: {type(msg).__name__} with a 4 MiB {'encoding' if convert is image_to_rgb else 'format'}: "
              f"last_problem {len(stats.last_problem)} characters, diagnostics status text {size} characters")


def letterbox_cost() -> None:
    """A frame at the aspect bound costs what any frame of its pixel count costs (model ModelConfig())."""
    import torch

    from kdc_model import ModelConfig, load_model

    torch.set_num_threads(1)
    predictor = load_model(ModelConfig(), device="cpu")
    # The last one is refused by image_io now; here it goes straight to the model, as it did before.
    for height, width in ((4096, 4096), (724, 23168), (1, 16_000_000)):
        rgb = np.zeros((height, width, 3), np.uint8)
        before = rss_mb()
        start = time.perf_counter()
        predictor(rgb)
        seconds, aspect = time.perf_counter() - start, max(height, width) / min(height, width)
        print(f"letterbox: {width}x{height} ({width * height / 1e6:.1f} Mpx, {aspect:.0f}:1) through the model at "
              f"input 320: {seconds:.2f} s, RSS {before:.0f} -> {rss_mb():.0f} MB")


class StubPredictor:
    """Three people and a full-size label map per frame, without a network (replay plumbing only)."""

    device = "cpu"
    last_timing: dict = {}

    def __init__(self) -> None:
        self.rss = []

    def __call__(self, rgb):
        from kdc_model import PoseSegResult

        self.rss.append(rss_mb())
        h, w = rgb.shape[:2]
        label_map = np.zeros((h, w), np.uint16)
        boxes = np.array([[w * (0.05 + 0.3 * i), h * 0.1, w * (0.3 + 0.3 * i), h * 0.9] for i in range(3)], np.float32)
        keypoints = np.zeros((3, 17, 3), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            keypoints[i, :, :2] = ((x0 + x1) / 2, (y0 + y1) / 2)
            keypoints[i, :, 2] = 0.8
            label_map[int(y0):int(y1), int(x0):int(x1)] = i + 1
        return PoseSegResult(keypoints=keypoints, scores=np.full(3, 0.9, np.float32), boxes=boxes,
                             label_map=label_map, mask_scores=np.full(3, 0.7, np.float32))


def replay_memory(frames: int) -> None:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from kdc_ros.bags.bag_writer import MessageBagWriter
    from kdc_ros.bags.mcap_crc import crc_problems, write_section_crcs
    from kdc_ros.replay.offline import replay_offline

    with tempfile.TemporaryDirectory() as folder:
        bag, topic = Path(folder) / "bag", "/cam/image_raw/compressed"
        jpeg = cv2.imencode(".jpg", np.full((480, 640, 3), 90, np.uint8))[1].tobytes()
        with MessageBagWriter(bag) as writer:
            for i in range(frames):
                header = Header(stamp=Time(sec=1000 + i // 30, nanosec=(i % 30) * 33_333_333))
                writer.write(topic, CompressedImage(header=header, format="jpeg", data=jpeg), 10**12 + i * 33_333_333)
        stub = StubPredictor()
        start = time.perf_counter()
        report = replay_offline(bag, topic, Path(folder) / "out", stub, batch_size=4, overlay=False, progress=False)
        seconds = time.perf_counter() - start
        early = min(50, frames // 4)
        print(f"replay: offline, {report['frames']} frames of 640x480 (masks published, no overlay), {seconds:.1f} s: "
              f"RSS {stub.rss[early]:.0f} MB at frame {early}, {stub.rss[-1]:.0f} MB at frame {frames} "
              f"({(stub.rss[-1] - stub.rss[early]) / (frames - early) * 1024:+.1f} kB a frame)")
        (mcap,) = (Path(folder) / "out" / "bag").glob("*.mcap")
        start = time.perf_counter()
        write_section_crcs(mcap)
        crc_s = time.perf_counter() - start
        print(f"replay: output bag {mcap.stat().st_size / 1e6:.0f} MB; data section + summary CRC pass at close "
              f"{crc_s:.2f} s; CRC problems found: {crc_problems(mcap) or 'none'}")


def onnx_cache() -> None:
    from kdc_model import DEFAULT_WEIGHTS, load_model
    from kdc_model.inference.runtime import cached_export, onnx_cache_path

    if not DEFAULT_WEIGHTS.installed:
        print("onnx cache: default weights not installed, skipped")
        return
    load_model("default", device="cpu", backend="onnxruntime")  # make sure the cache entry exists
    model = load_model("default", device="cpu").model
    path = onnx_cache_path(DEFAULT_WEIGHTS.file, 320)
    start = time.perf_counter()
    data = cached_export(path, model, 320)
    verify_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    load_model("default", device="cpu", backend="onnxruntime")
    print(f"onnx cache: verifying the default model's cached export ({len(data) / 1e6:.1f} MB: owner, mode, "
          f"weights and export SHA-256) {verify_ms:.0f} ms; whole load_model(backend onnxruntime) "
          f"{time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay-frames", type=int, default=600)
    args = parser.parse_args()
    depth_cache()
    aspect_and_strings()
    onnx_cache()
    replay_memory(args.replay_frames)
    letterbox_cost()


if __name__ == "__main__":
    main()
