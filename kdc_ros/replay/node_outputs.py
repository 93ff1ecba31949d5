"""What the kdc node publishes for one frame, built outside a node (offline replay).

The same steps as KdcNode._process after inference: the node's thresholds (config/kdc.yaml),
the shared tracker, the kdc_ros.messages builders and the overlay drawer, so an offline replay
publishes what the node would have published for the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from kdc_msgs.msg import PoseSeg

from kdc_model import PoseSegResult

from .. import params
from ..messages import filter_result, pose_seg_from_result
from ..tracking import PersonTracker
from ..visualization import draw_overlay


@dataclass
class FrameOutputs:
    result: PoseSegResult          # after the node's thresholds
    pose_seg: PoseSeg
    overlay: np.ndarray | None     # RGB uint8, None when overlays are off


class NodeOutputs:
    """Per-frame outputs of one camera, with the node's default parameters (or `settings`)."""

    def __init__(self, settings: dict | None = None, overlay: bool = True) -> None:
        self.settings = settings if settings is not None else params.load_defaults()
        self.overlay = overlay
        self.tracker = PersonTracker()

    def __call__(self, rgb: np.ndarray, result: PoseSegResult, header) -> FrameOutputs:
        s = self.settings
        result = filter_result(result, s["min_person_score"], s["keypoint_threshold"])
        ids = None
        if s.get("tracking"):
            ids = self.tracker.update(result, header.stamp.sec + header.stamp.nanosec * 1e-9)
        pose_seg = pose_seg_from_result(result, header, s["publish_mask"], ids)
        overlay = draw_overlay(rgb, result, s["overlay_mask_alpha"], ids) if self.overlay else None
        return FrameOutputs(result, pose_seg, overlay)
