"""kdc_msgs/PoseSeg -> PoseSegResult: read back what the node published (for COCO evaluation and checks).

The inverse of kdc_ros.node.messages.pose_seg_from_result; a PoseSeg without a mask gives an empty label map.
"""
from __future__ import annotations

import numpy as np

from kdc_model import PoseSegResult


def result_from_pose_seg(msg) -> PoseSegResult:
    people = msg.people
    keypoints = np.array([[(k.x, k.y, k.confidence) for k in p.keypoints] for p in people],
                         np.float32).reshape(len(people), 17, 3)
    boxes = np.array([(p.x_min, p.y_min, p.x_max, p.y_max) for p in people], np.float32).reshape(-1, 4)
    mask = msg.mask
    if mask.width and mask.height:
        dtype = np.dtype(">u2" if mask.is_bigendian else "<u2")
        rows = np.frombuffer(bytes(mask.data), np.uint8).reshape(mask.height, mask.step)[:, :2 * mask.width]
        label_map = rows.copy().view(dtype).astype(np.uint16)
    else:
        label_map = np.zeros((msg.height, msg.width), np.uint16)
    return PoseSegResult(keypoints=keypoints, scores=np.array([p.score for p in people], np.float32),
                         boxes=boxes, label_map=label_map,
                         mask_scores=np.array([p.mask_score for p in people], np.float32))
