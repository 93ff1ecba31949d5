"""One camera's depth input for the node: recent aligned depth frames + intrinsics -> 3D keypoints.

Subscription callbacks store depth images (kdc_ros.node.stamp_cache, bounded in frames and bytes; a frame
whose encoding, size or data length is wrong is refused before it is stored) and the newest CameraInfo;
the inference worker asks for the 3D keypoints of a colour frame's people (`lift`): the depth frame
with the same stamp (or the nearest within a tolerance) is converted with NumPy (no cv_bridge) and
kdc_ros.node.depth.lift_keypoints does the rest. When anything is missing the answer says why and holds
all-invalid, all-zero points, so the frame still gets its 2D output.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from kdc_model import PoseSegResult

from .depth import PinholeCamera, depth_to_metres, lift_keypoints
from .image_io import DEFAULT_MAX_PIXELS, ImageError, shown
from .stamp_cache import StampCache, stamp_ns

# Encoding -> (dtype of one little-endian sample, depth_to_metres' encoding).
_DEPTH_ENCODINGS = {"16uc1": ("<u2", "16UC1"), "mono16": ("<u2", "16UC1"), "32fc1": ("<f4", "32FC1")}


def check_depth_image(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.dtype, str]:
    """(sample dtype, depth_to_metres' encoding) of a depth sensor_msgs/Image whose encoding, size and
    data length are right; ImageError naming the problem otherwise. Header fields only: no pixel work."""
    encoding = msg.encoding.lower()
    if encoding not in _DEPTH_ENCODINGS:
        raise ImageError(f"depth encoding {shown(msg.encoding)} is not supported (use 16UC1 mm or 32FC1 m)")
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ImageError(f"empty depth image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"depth image too large: {width}x{height} > max_pixels {max_pixels}")
    dtype, canonical = _DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    if step < width * dtype.itemsize or len(msg.data) != step * height:
        raise ImageError(f"depth image {width}x{height} {encoding}: step {step} and {len(msg.data)} bytes "
                         f"do not fit")
    return dtype, canonical


def depth_image_to_metres(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """float32 metres [H, W] (NaN = no reading) of a sensor_msgs/Image in 16UC1 (mm) or 32FC1 (m)."""
    dtype, canonical = check_depth_image(msg, max_pixels)
    height, width, step = msg.height, msg.width, msg.step
    rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)[:, :width * dtype.itemsize]
    return depth_to_metres(rows.copy().view(dtype).astype(dtype.newbyteorder("=")), canonical)


@dataclass
class Lifted:
    """3D keypoints of one frame's people (kdc_ros.node.depth.lift_keypoints), or why there are none."""

    points: np.ndarray            # [N, 17, 3] metres, 0 where invalid
    valid: np.ndarray             # [N, 17] bool
    frame_id: str = ""            # frame of the points (the depth image's)
    problem: str | None = None    # None when a depth frame was matched and used

    @classmethod
    def missing(cls, people: int, problem: str) -> "Lifted":
        return cls(np.zeros((people, 17, 3), np.float32), np.zeros((people, 17), bool), "", problem)


class DepthInput:
    """Depth frames and intrinsics of one camera (thread-safe: callbacks feed, the worker lifts).
    At most `capacity` depth frames and `max_bytes` bytes of them are kept."""

    def __init__(self, depth_topic: str, camera_info_topic: str, capacity: int = 30,
                 max_bytes: int | None = None) -> None:
        self.depth_topic, self.camera_info_topic = depth_topic, camera_info_topic
        self.frames = StampCache(capacity, max_bytes)
        self._lock = threading.Lock()
        self._camera: PinholeCamera | None = None
        self._info_size: tuple[int, int] = (0, 0)
        self._info_problem = f"no CameraInfo received on {camera_info_topic}"

    @property
    def intrinsics(self) -> PinholeCamera | None:
        """The intrinsics of the newest usable CameraInfo, None until one came."""
        with self._lock:
            return self._camera

    @property
    def info_problem(self) -> str | None:
        """Why there are no intrinsics (no CameraInfo yet, or a bad K), None when there are."""
        with self._lock:
            return self._info_problem

    def on_depth(self, msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
        """Keep a depth frame for matching; the reason when it is refused instead (a wrong encoding,
        size or data length is found now, before its bytes are held)."""
        try:
            check_depth_image(msg, max_pixels)
        except ImageError as err:
            return str(err)
        size = len(msg.data)
        if not self.frames.put(stamp_ns(msg.header.stamp), msg, size):
            return (f"depth frame of {size / 2**20:.1f} MiB is larger than the whole depth cache "
                    f"({self.frames.max_bytes / 2**20:.1f} MiB, depth_cache_mb)")
        return None

    def on_camera_info(self, msg) -> None:
        try:
            camera, problem = PinholeCamera.from_k(msg.k), None
        except ValueError as err:
            camera, problem = None, f"{self.camera_info_topic}: {err}"
        with self._lock:
            self._camera, self._info_problem = camera, problem
            self._info_size = (msg.width, msg.height)

    def lift(self, result: PoseSegResult, header, tolerance_s: float, wait_s: float = 0.0,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> Lifted:
        """3D keypoints of `result` (people of the colour image stamped `header.stamp`)."""
        with self._lock:
            camera, info_problem, info_size = self._camera, self._info_problem, self._info_size
        n = len(result)
        if camera is None:
            return Lifted.missing(n, info_problem)
        found = self.frames.match(stamp_ns(header.stamp), int(round(tolerance_s * 1e9)), wait_s)
        if found is None:
            return Lifted.missing(n, f"no depth frame on {self.depth_topic} within {tolerance_s * 1e3:.0f} ms "
                                     f"of {header.stamp.sec}.{header.stamp.nanosec:09d}")
        _, msg = found
        if info_size != (0, 0) and info_size != (msg.width, msg.height):
            return Lifted.missing(n, f"CameraInfo is for {info_size[0]}x{info_size[1]} but the depth image "
                                     f"is {msg.width}x{msg.height}")
        try:
            depth = depth_image_to_metres(msg, max_pixels)
            points, valid = lift_keypoints(result, depth, camera)
        except ValueError as err:  # ImageError included: bad depth message, or not aligned to the colour image
            return Lifted.missing(n, str(err))
        return Lifted(points, valid, msg.header.frame_id or header.frame_id)
