"""What the kdc node publishes for one frame, made from the model's result: one function, used by the
node and by kdc-replay, so a replay publishes what the node would have published.

  the node's thresholds (min_person_score, keypoint_threshold)
  -> person ids (tracking: capture time drives the motion model; arrival time for unstamped frames)
  -> 3D keypoints (the camera's aligned depth, when it has one)
  -> PoseSeg, then overlay, markers, 3D markers and detections, each only where it is wanted

A camera's outputs remember across frames who was tracked and which markers were drawn
(CameraMemory); the caller keeps one per camera.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from std_msgs.msg import Header

from kdc_model import PoseSegResult

from .image_io import rgb_to_image
from .messages import filter_result, pose_seg_from_result
from .tracking import PersonTracker
from .visualization import detections_from_result, draw_overlay, markers_3d_from_result, markers_from_result

# Every output a frame can have; pose_seg is always made, the others only when wanted.
OUTPUTS = ("pose_seg", "overlay", "markers", "markers_3d", "detections")


@dataclass
class CameraMemory:
    """What one camera's outputs carry from frame to frame."""

    tracker: PersonTracker = field(default_factory=PersonTracker)
    marker_ids: set = field(default_factory=set)      # ids drawn last frame, to DELETE those that left
    marker_3d_ids: set = field(default_factory=set)


@dataclass
class FrameOutputs:
    result: PoseSegResult                   # after the node's thresholds
    ids: np.ndarray | None                  # person ids (None without tracking: rank in the frame)
    messages: dict                          # output name (OUTPUTS) -> message
    overlay: np.ndarray | None = None       # the overlay's RGB pixels, when an overlay was made


def frame_outputs(rgb: np.ndarray, result: PoseSegResult, header, settings: dict, memory: CameraMemory, *,
                  wanted: Callable[[str], bool] = lambda name: True, arrived: float = 0.0, lift=None,
                  vision_msgs=None, lap: Callable[[str], None] = lambda stage: None) -> FrameOutputs:
    """The messages of one frame (`header`: the input image's, kept by every output).

    settings: the node's parameters (kdc_ros.node.params). wanted(name): whether to make an output besides
    PoseSeg (the node asks whether anyone subscribes). arrived: seconds the frame arrived at, for the
    tracker when the frame has no stamp. lift(result, header): the camera's 3D keypoints
    (kdc_ros.node.depth_input.DepthInput.lift), None without depth. vision_msgs: the module, where installed.
    lap(stage): called after "tracking", "depth" and "messages", for stage clocks.
    """
    result = filter_result(result, settings["min_person_score"], settings["keypoint_threshold"])
    ids = None
    if settings["tracking"]:
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        ids = memory.tracker.update(result, stamp or arrived)
    lap("tracking")
    lifted = lift(result, header) if lift is not None else None
    lap("depth")
    points, valid = (lifted.points, lifted.valid) if lifted is not None else (None, None)
    messages = {"pose_seg": pose_seg_from_result(result, header, settings["publish_mask"], ids, points, valid)}
    overlay = None
    if wanted("overlay"):
        overlay = draw_overlay(rgb, result, settings["overlay_mask_alpha"], ids)
        messages["overlay"] = rgb_to_image(overlay, header)
    if wanted("markers"):
        messages["markers"], memory.marker_ids = markers_from_result(result, header, memory.marker_ids, ids)
    if lifted is not None and lifted.problem is None and wanted("markers_3d"):
        # Unmatched frames leave the last 3D skeletons up rather than blink them away.
        messages["markers_3d"], memory.marker_3d_ids = markers_3d_from_result(
            result, Header(stamp=header.stamp, frame_id=lifted.frame_id), points, valid, memory.marker_3d_ids, ids)
    if vision_msgs is not None and wanted("detections"):
        messages["detections"] = detections_from_result(result, header, vision_msgs, ids)
    lap("messages")
    return FrameOutputs(result, ids, messages, overlay)
