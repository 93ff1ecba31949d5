"""PoseSegResult (kdc_model's contract) -> kdc_msgs/PoseSeg: pure functions, no node state.

`filter_result` applies the node's run-time thresholds on the model output, so they can change
without touching the model; the parse_* helpers each build one part of the message.
"""
from __future__ import annotations

import numpy as np
from kdc_msgs.msg import Person, PoseSeg
from sensor_msgs.msg import Image

from kdc_model import PoseSegResult

from .image_io import pixels_to_image


def filter_result(result: PoseSegResult, min_person_score: float, keypoint_threshold: float) -> PoseSegResult:
    """People scoring at least `min_person_score`, keypoints under `keypoint_threshold` zeroed.

    Dropped people's mask pixels become background and the labels of the kept ones are renumbered,
    so label i + 1 is still person i.
    """
    keep = np.flatnonzero(result.scores >= min_person_score)
    keypoints = result.keypoints[keep].copy()
    keypoints[keypoints[..., 2] < keypoint_threshold] = 0.0  # (x, y, c) = 0: "not found"
    label_map = result.label_map
    if len(keep) != len(result):
        if np.array_equal(keep, np.arange(len(keep))):
            # The best people kept (the model sorts by score): labels 1..len(keep) stay, the rest go.
            # A mask of the map, many times cheaper than a gather through a relabelling table.
            label_map = label_map * (label_map <= len(keep))
        else:
            relabel = np.zeros(max(int(label_map.max(initial=0)), len(result)) + 1, np.uint16)
            relabel[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.uint16)
            label_map = relabel[label_map]
    return PoseSegResult(keypoints=keypoints, scores=result.scores[keep], boxes=result.boxes[keep],
                         label_map=label_map, mask_scores=result.mask_scores[keep])


def person_ids(result: PoseSegResult, ids=None) -> np.ndarray:
    """`ids` (track ids from kdc_ros.node.tracking) as uint32, or each person's index when None."""
    return np.arange(len(result), dtype=np.uint32) if ids is None else np.asarray(ids, np.uint32)


def parse_people(result: PoseSegResult, ids=None, points_3d=None, valid_3d=None) -> list[Person]:
    """One kdc_msgs/Person per person, all 17 keypoints each; id = track id, or index without tracking.

    `points_3d` [N,17,3] metres and `valid_3d` [N,17] (kdc_ros.node.depth.lift_keypoints) fill
    keypoints_3d; without them every Keypoint3D is invalid and 0. Invalid or non-finite points
    are always published as 0, never NaN.
    """
    ids = person_ids(result, ids)
    have_3d = points_3d is not None and valid_3d is not None
    if have_3d:
        points_3d, valid_3d = _points_3d(len(result), points_3d, valid_3d)
    # Counting only the labelled pixels: people cover a small part of most images, and bincount
    # first copies whatever it is given into an int64 array.
    labelled = result.label_map[result.label_map > 0]
    areas = np.bincount(labelled, minlength=len(result) + 1)[1:len(result) + 1]
    people = []
    for index in range(len(result)):
        x_min, y_min, x_max, y_max = (float(v) for v in result.boxes[index])
        person = Person(id=int(ids[index]), score=float(result.scores[index]), x_min=x_min, y_min=y_min,
                        x_max=x_max, y_max=y_max, mask_score=float(result.mask_scores[index]),
                        mask_area=int(areas[index]))
        # A new Person holds 17 Keypoint and 17 Keypoint3D, all 0 (the 3D ones invalid): they are
        # filled in place, which costs a third of making 34 more messages.
        for keypoint, (x, y, c) in zip(person.keypoints, result.keypoints[index].tolist()):
            keypoint.x, keypoint.y, keypoint.confidence = x, y, c
        if have_3d:
            for keypoint, (x, y, z), v in zip(person.keypoints_3d, points_3d[index].tolist(),
                                             valid_3d[index].tolist()):
                keypoint.x, keypoint.y, keypoint.z, keypoint.valid = x, y, z, v
        people.append(person)
    return people


def _points_3d(n: int, points, valid) -> tuple[np.ndarray, np.ndarray]:
    if points is None or valid is None:
        return np.zeros((n, 17, 3), np.float64), np.zeros((n, 17), bool)
    points = np.asarray(points, np.float64).reshape(n, 17, 3)
    valid = np.asarray(valid, bool).reshape(n, 17) & np.isfinite(points).all(-1)
    return np.where(valid[..., None], points, 0.0), valid


def parse_mask(label_map: np.ndarray, header) -> Image:
    """The instance label image as sensor_msgs/Image mono16 (0 = background, i + 1 = person i)."""
    return pixels_to_image(np.asarray(label_map, dtype="<u2"), "mono16", header)  # mono16 here is little-endian


def pose_seg_from_result(result: PoseSegResult, header, publish_mask: bool = True, ids=None,
                         points_3d=None, valid_3d=None) -> PoseSeg:
    """kdc_msgs/PoseSeg of `result` with `header` (the input image's: stamp and frame survive);
    `points_3d`/`valid_3d` fill Person.keypoints_3d (see parse_people)."""
    height, width = result.image_size
    mask = parse_mask(result.label_map, header) if publish_mask else Image(header=header)
    return PoseSeg(header=header, height=height, width=width, people=parse_people(result, ids, points_3d, valid_3d), mask=mask)
