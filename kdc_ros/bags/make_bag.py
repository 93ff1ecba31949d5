"""kdc-bag: camera footage (a video file or an image folder) -> a rosbag2 of camera images.

Frame i is stamped start + i / fps (header stamp = bag log time), so the bag plays at the footage's
rate. The frame names (see frame_source) are kept in the bag's metadata under FRAME_NAMES_KEY, so
COCO annotations of the source images can be matched to the frames later (kdc-replay --annotations).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from tqdm import tqdm

from ..node.image_io import rgb_to_image
from .bag_writer import STORAGES, MessageBagWriter
from .frame_source import FrameSourceError, open_frames

FRAME_NAMES_KEY = "kdc_ros.frame_names"
ENCODINGS = ("bgr8", "rgb8")
JPEG_QUALITY = 90


@dataclass
class BagSummary:
    path: Path
    topic: str
    frames: int
    fps: float


def image_message(bgr: np.ndarray, header: Header, encoding: str = "bgr8", compressed: bool = False):
    """sensor_msgs/Image (rgb8 or bgr8) or CompressedImage (JPEG) of an OpenCV BGR frame."""
    if compressed:
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        return CompressedImage(header=header, format="jpeg", data=jpeg.tobytes())
    if encoding == "rgb8":
        return rgb_to_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), header)
    if encoding != "bgr8":
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    height, width = bgr.shape[:2]
    return Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0,
                 step=3 * width, data=np.ascontiguousarray(bgr).tobytes())


def write_image_bag(source: str | Path, out_bag: str | Path, topic: str, *, compressed: bool = False,
                    encoding: str = "bgr8", frame_id: str = "camera", storage: str = "mcap",
                    fps: float | None = None, max_frames: int | None = None, start_time: float | None = None,
                    progress: bool = True) -> BagSummary:
    """Write the frames of `source` to a new bag at `out_bag`; start_time (seconds) defaults to now."""
    frames = open_frames(source, fps=fps, max_frames=max_frames)
    start_ns = round((time.time() if start_time is None else start_time) * 1e9)
    period_ns = 1e9 / frames.fps
    names = []
    with MessageBagWriter(out_bag, storage) as bag:
        for index, (name, bgr) in enumerate(tqdm(frames.frames, total=frames.count, unit="frame",
                                                 desc=f"writing {topic}", disable=not progress)):
            stamp_ns = start_ns + round(index * period_ns)
            header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                            frame_id=frame_id)
            bag.write(topic, image_message(bgr, header, encoding, compressed), stamp_ns)
            names.append(name)
        if not names:
            raise FrameSourceError(f"{source}: no frames could be read")
        bag.set_custom_data(FRAME_NAMES_KEY, json.dumps(names))
    return BagSummary(Path(out_bag), topic, len(names), frames.fps)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kdc-bag", description="Turn a video file or an image folder into "
                                     "a rosbag2 of sensor_msgs/Image (or CompressedImage) stamped at the footage's rate.")
    parser.add_argument("source", type=Path, help="video file (anything OpenCV reads) or folder of images "
                        "(taken in sorted file-name order)")
    parser.add_argument("out_bag", type=Path, help="bag folder to create (must not exist)")
    parser.add_argument("--topic", required=True, help="image topic, e.g. /camera/image_raw")
    parser.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage (JPEG)")
    parser.add_argument("--encoding", choices=ENCODINGS, default="bgr8", help="raw image encoding (default bgr8)")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id (default camera)")
    parser.add_argument("--storage", choices=tuple(STORAGES), default="mcap", help="bag storage (default mcap)")
    parser.add_argument("--fps", type=float, help="stamp rate; default: the video's own rate, 30 for a folder")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--start-time", type=float, help="stamp of the first frame, seconds since the epoch "
                        "(default: now)")
    args = parser.parse_args(argv)
    if args.fps is not None and args.fps <= 0:
        parser.error("--fps must be positive")
    if args.max_frames is not None and args.max_frames <= 0:
        parser.error("--max-frames must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = write_image_bag(args.source, args.out_bag, args.topic, compressed=args.compressed,
                                  encoding=args.encoding, frame_id=args.frame_id, storage=args.storage,
                                  fps=args.fps, max_frames=args.max_frames, start_time=args.start_time)
    except (FrameSourceError, FileExistsError, ValueError) as err:
        print(f"kdc-bag: error: {err}", file=sys.stderr)
        return 1
    kind = "CompressedImage" if args.compressed else f"Image ({args.encoding})"
    print(f"wrote {summary.frames} frames of sensor_msgs/{kind} on {summary.topic} at {summary.fps:g} fps "
          f"to {summary.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
