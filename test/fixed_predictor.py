"""A test double of kdc_model.Predictor for node PLUMBING tests only (the model itself is tested in
test_predictor.py, and test_node.py also runs the node on a real random-init Predictor)."""
from __future__ import annotations

import threading
import time

import numpy as np

from kdc_model import PoseSegResult

# Normalised (x, y) of the 17 COCO keypoints of a standing person in a unit box.
_POSE = np.array([
    (.5, .08), (.46, .05), (.54, .05), (.42, .07), (.58, .07), (.35, .22), (.65, .22), (.28, .4), (.72, .4),
    (.25, .55), (.75, .55), (.4, .58), (.6, .58), (.4, .78), (.6, .78), (.4, .97), (.6, .97)], np.float32)


class FixedPredictor:
    """Returns the same people, scaled to each image: two above and one below the default
    min_person_score (0.15). `delay` seconds per call simulates a slow model."""

    scores = np.array([0.9, 0.6, 0.05], np.float32)

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.image_shapes: list[tuple] = []
        self.last_timing: dict[str, float] = {}
        self._busy = threading.Lock()
        self.concurrent_calls = 0  # calls that overlapped another: must stay 0 (one model, one worker)

    def __call__(self, rgb: np.ndarray) -> PoseSegResult:
        if not self._busy.acquire(blocking=False):
            self.concurrent_calls += 1
            self._busy.acquire()
        try:
            self.calls += 1
            self.image_shapes.append(rgb.shape)
            if self.delay:
                time.sleep(self.delay)
            self.last_timing = {"preprocess_ms": 1.0, "network_ms": 2.0, "decode_ms": 0.5, "total_ms": 3.5}
            return self.result_for(*rgb.shape[:2])
        finally:
            self._busy.release()

    @classmethod
    def result_for(cls, height: int, width: int) -> PoseSegResult:
        n = len(cls.scores)
        boxes = np.array([[width * (0.05 + 0.3 * i), height * 0.1, width * (0.3 + 0.3 * i), height * 0.9]
                          for i in range(n)], np.float32)
        keypoints = np.zeros((n, 17, 3), np.float32)
        label_map = np.zeros((height, width), np.uint16)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            keypoints[i, :, :2] = (x0, y0) + _POSE * (x1 - x0, y1 - y0)
            keypoints[i, :, 2] = 0.8
            keypoints[i, 9, 2] = 0.05  # one unconfident wrist: published with confidence 0
            label_map[int(y0):int(y1), int(x0):int(x1)] = i + 1
        return PoseSegResult(keypoints=keypoints, scores=cls.scores.copy(), boxes=boxes, label_map=label_map,
                             mask_scores=np.full(n, 0.7, np.float32))
