"""PoseSegResult: the one contract between the model and everything that consumes it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import NUM_KEYPOINTS


@dataclass
class PoseSegResult:
    """People found in one image, in that image's pixel coordinates.

    keypoints:   [N, 17, 3] float32, (x, y, confidence) per COCO keypoint, x/y in input pixels
                 (pixel centres at integer coordinates), confidence in [0, 1].
    scores:      [N] float32 person scores in [0, 1], sorted descending.
    boxes:       [N, 4] float32 (x0, y0, x1, y1) in input pixels, around keypoints and mask.
    label_map:   [H, W] uint16 instance labels, 0 = background, i + 1 = person i.
    mask_scores: [N] float32 mean segmentation probability over each person's mask pixels
                 (0 when the person has no mask pixels).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    label_map: np.ndarray
    mask_scores: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.keypoints.shape != (n, NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints shape {self.keypoints.shape}, expected ({n}, {NUM_KEYPOINTS}, 3)")
        if self.boxes.shape != (n, 4) or self.mask_scores.shape != (n,):
            raise ValueError("boxes must be [N, 4] and mask_scores [N]")
        if self.label_map.ndim != 2:
            raise ValueError("label_map must be [H, W]")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image the result describes."""
        return self.label_map.shape[0], self.label_map.shape[1]

    def masks(self) -> np.ndarray:
        """[N, H, W] bool instance masks derived from the label map."""
        labels = np.arange(1, len(self) + 1, dtype=self.label_map.dtype)
        return self.label_map[None] == labels[:, None, None]

    @classmethod
    def empty(cls, height: int, width: int) -> "PoseSegResult":
        return cls(
            keypoints=np.zeros((0, NUM_KEYPOINTS, 3), np.float32),
            scores=np.zeros((0,), np.float32),
            boxes=np.zeros((0, 4), np.float32),
            label_map=np.zeros((height, width), np.uint16),
            mask_scores=np.zeros((0,), np.float32),
        )
