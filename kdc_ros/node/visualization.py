"""What people look like in RViz: the overlay image, skeleton markers and vision_msgs detections.

Each function takes a (filtered) PoseSegResult and the people's ids (track ids, or indices: see
messages.person_ids) and returns a message or array; none keeps state, the caller holds the marker
ids it published last. A person keeps its colour and marker ids as long as it keeps its id.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from kdc_model import PoseSegResult
from kdc_model.inference.drawing import draw_overlay, person_color  # the overlay is drawn by the model package
from kdc_model.skeleton import DRAW_EDGES

from .messages import person_ids

# Markers lie on the plane z = 1 m of the camera optical frame (x right, y down, z forward), assuming
# fx = fy = image width (about 53 degrees horizontal field of view) and the principal point at the
# image centre: without camera_info that keeps proportions and puts people where the camera sees them.
IMAGE_PLANE_DISTANCE = 1.0
MARKER_NAMESPACES = ("skeleton", "joints", "score")


def image_plane_points(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N, 2] pixel coordinates -> [N, 3] metres on the image plane of the camera optical frame."""
    scale = IMAGE_PLANE_DISTANCE / width
    points = np.empty((len(xy), 3), np.float64)
    points[:, 0] = (xy[:, 0] - (width - 1) / 2) * scale
    points[:, 1] = (xy[:, 1] - (height - 1) / 2) * scale
    points[:, 2] = IMAGE_PLANE_DISTANCE
    return points


def markers_from_result(result: PoseSegResult, header, previous_ids: set[int] = frozenset(), ids=None
                        ) -> tuple[MarkerArray, set[int]]:
    """MarkerArray of skeleton lines, joints and score per person (marker id = person id in each
    namespace), plus DELETE markers for ids in `previous_ids` that are gone; returns the ids drawn."""
    ids = person_ids(result, ids)
    height, width = result.image_size
    line_width = 0.01 * IMAGE_PLANE_DISTANCE
    markers = []
    for index, person_id in enumerate(ids.tolist()):
        keypoints = result.keypoints[index]
        top = image_plane_points(result.boxes[index:index + 1, :2], width, height)[0]
        markers += _person_markers(header, person_id, image_plane_points(keypoints[:, :2], width, height),
                                   keypoints[:, 2] > 0, top - (0.0, 3 * line_width, 0.0),
                                   f"{person_id}: {result.scores[index]:.2f}", line_width)
    current = set(ids.tolist())
    return MarkerArray(markers=markers + _deletions(header, previous_ids, current)), current


# 3D skeletons: metres in the depth camera's optical frame; a line width that reads at room scale.
LINE_WIDTH_3D = 0.03
LABEL_ABOVE_HEAD_3D = 0.15


def markers_3d_from_result(result: PoseSegResult, header, points_3d: np.ndarray, valid_3d: np.ndarray,
                           previous_ids: set[int] = frozenset(), ids=None) -> tuple[MarkerArray, set[int]]:
    """The markers of markers_from_result at the people's 3D keypoints (kdc_ros.node.depth.lift_keypoints:
    points [N,17,3] m, valid [N,17]) in `header`'s frame. Only valid, finite keypoints are drawn; a person
    without any is not drawn (and is deleted if it was). Returns the array and the ids drawn."""
    ids = person_ids(result, ids)
    markers, current = [], set()
    for index, person_id in enumerate(ids.tolist()):
        points = np.asarray(points_3d[index], np.float64)
        found = np.asarray(valid_3d[index], bool) & np.isfinite(points).all(-1)
        if not found.any():
            continue
        top = points[found][np.argmin(points[found, 1])]  # y points down: the highest keypoint
        markers += _person_markers(header, person_id, points, found, top - (0.0, LABEL_ABOVE_HEAD_3D, 0.0),
                                   f"{person_id}: {result.scores[index]:.2f}", LINE_WIDTH_3D)
        current.add(person_id)
    return MarkerArray(markers=markers + _deletions(header, previous_ids, current)), current


def _person_markers(header, person_id: int, points: np.ndarray, found: np.ndarray, label_position,
                    text: str, line_width: float) -> list[Marker]:
    """Skeleton (LINE_LIST), joints (SPHERE_LIST) and a text label of one person; points [17, 3]."""
    r, g, b = (c / 255.0 for c in person_color(person_id))
    color = ColorRGBA(r=r, g=g, b=b, a=1.0)
    skeleton = _marker(header, "skeleton", person_id, Marker.LINE_LIST, color, line_width)
    skeleton.points = [_point(points[k]) for a, b_ in DRAW_EDGES if found[a] and found[b_] for k in (a, b_)]
    joints = _marker(header, "joints", person_id, Marker.SPHERE_LIST, color, 2 * line_width)
    joints.points = [_point(p) for p in points[found]]
    score = _marker(header, "score", person_id, Marker.TEXT_VIEW_FACING, color, 4 * line_width)
    score.pose.position = _point(label_position)
    score.text = text
    return [skeleton, joints, score]


def _deletions(header, previous_ids, current: set[int]) -> list[Marker]:
    """DELETE markers, in every namespace, for the ids drawn last time that are not drawn now."""
    return [Marker(header=header, ns=namespace, id=gone, action=Marker.DELETE)
            for gone in sorted(set(previous_ids) - current) for namespace in MARKER_NAMESPACES]


def _marker(header, namespace: str, marker_id: int, marker_type: int, color: ColorRGBA, size: float) -> Marker:
    marker = Marker(header=header, ns=namespace, id=marker_id, type=marker_type, action=Marker.ADD,
                    color=color, lifetime=Duration())  # lifetime 0: kept until replaced or deleted
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = size
    return marker


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def detections_from_result(result: PoseSegResult, header, vision_msgs, ids=None):
    """vision_msgs/Detection2DArray: one "person" detection per person (box, score, id).

    `vision_msgs` is the imported vision_msgs.msg module (optional dependency, passed in so this
    module imports without it). Handles both BoundingBox2D layouts: center.position.x (vision_msgs
    4+, Humble on) and center.x (3.x).
    """
    ids = person_ids(result, ids)
    detections = []
    for index in range(len(result)):
        x0, y0, x1, y1 = (float(v) for v in result.boxes[index])
        detection = vision_msgs.Detection2D(header=header, id=str(ids[index]))
        center = detection.bbox.center
        target = center.position if hasattr(center, "position") else center
        target.x, target.y = (x0 + x1) / 2, (y0 + y1) / 2
        detection.bbox.size_x, detection.bbox.size_y = x1 - x0, y1 - y0
        hypothesis = vision_msgs.ObjectHypothesisWithPose()
        scored = hypothesis.hypothesis if hasattr(hypothesis, "hypothesis") else hypothesis
        if hasattr(scored, "class_id"):
            scored.class_id = "person"
        else:  # vision_msgs 3.x: an integer/string id field
            scored.id = "person"
        scored.score = float(result.scores[index])
        detection.results = [hypothesis]
        detections.append(detection)
    return vision_msgs.Detection2DArray(header=header, detections=detections)


def import_vision_msgs():
    """vision_msgs.msg, or None where the package is not installed (it is not on PyPI)."""
    try:
        import vision_msgs.msg
    except ImportError:
        return None
    return vision_msgs.msg
