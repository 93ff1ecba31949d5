"""COCO-17 keypoints, the kinematic tree KDC walks, and the per-keypoint constants.

Everything that depends on the keypoint set lives here so that targets, decoder,
visualisation and messages agree on one definition.
"""
from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# Index of each keypoint's mirror image; a horizontal flip permutes channels with it.
FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# The 16-edge tree spanning the 17 keypoints (parent, child), rooted at the nose.
TREE_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4),          # nose-eyes, eyes-ears
    (0, 5), (0, 6),                          # nose-shoulders
    (5, 7), (7, 9), (6, 8), (8, 10),         # arms
    (5, 11), (6, 12),                        # torso sides
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
)
# Mid-range offsets are predicted for both directions of every tree edge:
# directed edge d < 16 is TREE_EDGES[d], d >= 16 is TREE_EDGES[d-16] reversed.
DIRECTED_EDGES: tuple[tuple[int, int], ...] = TREE_EDGES + tuple((b, a) for a, b in TREE_EDGES)
NUM_DIRECTED_EDGES = len(DIRECTED_EDGES)

# Lines drawn for a person (COCO's usual skeleton, a superset of the tree).
DRAW_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# COCO OKS falloff per keypoint (used for keypoint scores and COCO evaluation).
OKS_SIGMAS = np.array(
    [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
     .107, .107, .087, .087, .089, .089], dtype=np.float32)

# Point-wise Gaussian optimisation sigma per keypoint, in output-map cells (paper §3.1):
# high-variance joints (elbows, wrists, knees, ankles) 0.1 <= sigma < 0.5,
# low-variance ones (face, shoulders, hips) 0.5 <= sigma < 1.
_HIGH_VARIANCE = {"left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_knee", "right_knee", "left_ankle", "right_ankle"}
PGO_SIGMAS: tuple[float, ...] = tuple(0.3 if n in _HIGH_VARIANCE else 0.7 for n in KEYPOINT_NAMES)


def flip_keypoints(keypoints: np.ndarray, width: float) -> np.ndarray:
    """Mirror [..., 17, 3] keypoints (x, y, v) horizontally in an image `width` pixels wide.

    Pixel-centre convention: x -> width - 1 - x, and left/right keypoints swap slots.
    """
    out = keypoints[..., FLIP_INDEX, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out
