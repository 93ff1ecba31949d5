"""PoseSegResults of scripted poses, for tests of what happens after the model (tracking, 3D, ids)."""
import numpy as np

from kdc_model import PoseSegResult


def result_from_poses(poses: list[np.ndarray], height: int, width: int) -> PoseSegResult:
    """A PoseSegResult holding `poses` ([17, 2] each, confidence 0.9) with box-shaped masks; later
    people are in front."""
    n = len(poses)
    keypoints = np.zeros((n, 17, 3), np.float32)
    label_map = np.zeros((height, width), np.uint16)
    boxes = np.zeros((n, 4), np.float32)
    for i, pose in enumerate(poses):
        keypoints[i, :, :2], keypoints[i, :, 2] = pose, 0.9
        x0, y0 = np.clip(pose.min(0), 0, [width - 1, height - 1]).astype(int)
        x1, y1 = np.clip(pose.max(0), 0, [width - 1, height - 1]).astype(int)
        label_map[y0:y1 + 1, x0:x1 + 1] = i + 1
        boxes[i] = x0, y0, x1, y1
    return PoseSegResult(keypoints=keypoints, scores=np.full(n, 0.9, np.float32), boxes=boxes,
                         label_map=label_map, mask_scores=np.full(n, 0.9, np.float32))
