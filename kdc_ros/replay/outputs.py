"""What a replay leaves in its output folder: bag/, overlay.mp4 and report.json.

bag/ holds the input images, kdc_msgs/PoseSeg on /kdc/pose_seg and the overlays on /kdc/overlay,
each logged at its header stamp, so the three line up in any bag viewer (Foxglove, rqt_bag).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..bags.bag_writer import MessageBagWriter, stamp_nanoseconds

POSE_SEG_TOPIC = "/kdc/pose_seg"
OVERLAY_TOPIC = "/kdc/overlay"
BAG_NAME, VIDEO_NAME, REPORT_NAME = "bag", "overlay.mp4", "report.json"


class OverlayVideo:
    """An mp4 (mp4v) of RGB frames; the size is the first frame's, later frames are fitted to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self._size = (rgb.shape[1], rgb.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise RuntimeError(f"{self.path}: OpenCV cannot write an mp4v video here")
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size)
        self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class ReplayOutputs:
    """The output folder of one replay (an existing bag/ and video in it are replaced)."""

    def __init__(self, out_dir: str | Path, fps: float, overlay: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.bag_path, ignore_errors=True)
        self.video_path.unlink(missing_ok=True)
        self.bag = MessageBagWriter(self.bag_path)
        self.video = OverlayVideo(self.video_path, fps if fps > 0 else 30.0) if overlay else None

    @property
    def bag_path(self) -> Path:
        return self.out_dir / BAG_NAME

    @property
    def video_path(self) -> Path:
        return self.out_dir / VIDEO_NAME

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    def write_input(self, topic: str, msg, log_time_ns: int) -> None:
        self.bag.write(topic, msg, log_time_ns)

    def write_pose_seg(self, pose_seg) -> None:
        self.bag.write(POSE_SEG_TOPIC, pose_seg, stamp_nanoseconds(pose_seg.header))

    def write_overlay(self, overlay) -> None:
        """An overlay sensor_msgs/Image into the bag (the video is written separately: `video`)."""
        self.bag.write(OVERLAY_TOPIC, overlay, stamp_nanoseconds(overlay.header))

    def write_report(self, report: dict) -> Path:
        self.report_path.write_text(json.dumps(_finite(report), indent=2) + "\n")
        return self.report_path

    def close(self) -> None:
        self.bag.close()
        if self.video is not None:
            self.video.close()


def _finite(value):
    """NaN/inf -> None: report.json must stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
