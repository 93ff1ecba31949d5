"""Persistent person ids across frames: keypoint similarity (OKS) + mask overlap + constant velocity.

Pure NumPy on PoseSegResults, so the node and kdc-replay share one tracker and kdc_model stays
free of it. Ids start at 1, grow, and are never reused within a tracker's life.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdc_model import PoseSegResult
from kdc_model.skeleton import OKS_SIGMAS

# Masks are compared on a coarse grid: overlap is a tie-breaker, not a pixel-exact measure.
_MASK_GRID = 4


@dataclass
class TrackerConfig:
    max_age: float = 1.0           # s a track survives unseen (short occlusions)
    min_similarity: float = 0.2    # combined OKS/IoU below this never matches
    mask_weight: float = 0.3       # share of mask IoU in the similarity (rest is OKS)
    keypoint_threshold: float = 0.1  # keypoints below this confidence are ignored for OKS
    velocity_smoothing: float = 0.5  # weight of the newest velocity in the running estimate


@dataclass
class _Track:
    id: int
    keypoints: np.ndarray          # [17, 3] last seen (x, y, confidence)
    velocity: np.ndarray           # [17, 2] px/s
    stamp: float                   # s, last seen
    mask: np.ndarray | None        # coarse bool mask, last seen
    age: int = 1                   # frames matched

    def predict(self, stamp: float) -> np.ndarray:
        moved = self.keypoints.copy()
        moved[:, :2] += self.velocity * (stamp - self.stamp)
        return moved


def object_keypoint_similarity(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """COCO OKS between every pose in a [N,17,3] and every pose in b [M,17,3] -> [N, M].

    The scale is each pair's mean box area of their shared keypoints; keypoints under
    `threshold` confidence in either pose do not count.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    seen = (a[:, None, :, 2] >= threshold) & (b[None, :, :, 2] >= threshold)           # [N, M, 17]
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)                         # [N, M, 17]
    area = (_keypoint_area(a)[:, None] + _keypoint_area(b)[None, :]) / 2 + 1.0
    k2 = (2 * OKS_SIGMAS) ** 2
    e = np.exp(-d2 / (2 * area[..., None] * k2))
    count = seen.sum(-1)
    return np.where(count > 0, (e * seen).sum(-1) / np.maximum(count, 1), 0.0).astype(np.float32)


def _keypoint_area(poses: np.ndarray) -> np.ndarray:
    """Area of the box around each pose's confident keypoints (COCO's OKS scale), [N]."""
    area = np.zeros(len(poses), np.float32)
    for i, pose in enumerate(poses):
        seen = pose[pose[:, 2] > 0, :2]
        if len(seen) >= 2:
            w, h = seen.max(0) - seen.min(0)
            area[i] = w * h
    return area


def _mask_iou(a: list[np.ndarray | None], b: list[np.ndarray]) -> np.ndarray:
    iou = np.zeros((len(a), len(b)), np.float32)
    for i, ma in enumerate(a):
        if ma is None:
            continue
        for j, mb in enumerate(b):
            if ma.shape == mb.shape:
                union = np.count_nonzero(ma | mb)
                iou[i, j] = np.count_nonzero(ma & mb) / union if union else 0.0
    return iou


class PersonTracker:
    """Assigns a persistent id to every person of successive PoseSegResults of one camera."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks (ids still never repeat)."""
        self._tracks = []

    @property
    def active_ids(self) -> list[int]:
        return [t.id for t in self._tracks]

    def update(self, result: PoseSegResult, stamp: float) -> np.ndarray:
        """Ids [N] (uint32) for `result`'s people seen at `stamp` seconds."""
        cfg = self.config
        if self._tracks and stamp < max(t.stamp for t in self._tracks):
            self.reset()  # time went backwards (bag looped, clock reset): old motion is meaningless
        self._tracks = [t for t in self._tracks if stamp - t.stamp <= cfg.max_age]
        masks = self._coarse_masks(result)
        predicted = np.stack([t.predict(stamp) for t in self._tracks]) if self._tracks else np.zeros((0, 17, 3))
        similarity = (1 - cfg.mask_weight) * object_keypoint_similarity(
            predicted, result.keypoints, cfg.keypoint_threshold)
        similarity += cfg.mask_weight * _mask_iou([t.mask for t in self._tracks], masks)

        ids = np.zeros(len(result), np.uint32)
        matched_tracks: set[int] = set()
        # Greedy, best pair first: with few people per frame it equals the optimal assignment in
        # practice and needs no solver dependency.
        for flat in np.argsort(-similarity, axis=None):
            ti, di = np.unravel_index(flat, similarity.shape)
            if similarity[ti, di] < cfg.min_similarity:
                break
            if ti in matched_tracks or ids[di]:
                continue
            self._refresh(self._tracks[ti], result.keypoints[di], masks[di], stamp)
            ids[di] = self._tracks[ti].id
            matched_tracks.add(ti)
        for di in np.flatnonzero(ids == 0):
            track = _Track(id=self._next_id, keypoints=result.keypoints[di].copy(),
                           velocity=np.zeros((17, 2), np.float32), stamp=stamp, mask=masks[di])
            self._next_id += 1
            self._tracks.append(track)
            ids[di] = track.id
        return ids

    def _refresh(self, track: _Track, keypoints: np.ndarray, mask: np.ndarray, stamp: float) -> None:
        dt = stamp - track.stamp
        if dt > 0:
            both = (keypoints[:, 2] > 0) & (track.keypoints[:, 2] > 0)
            velocity = np.zeros_like(track.velocity)
            velocity[both] = (keypoints[both, :2] - track.keypoints[both, :2]) / dt
            a = self.config.velocity_smoothing
            track.velocity = a * velocity + (1 - a) * track.velocity
        # Keep the last known position of keypoints missing now, so prediction still has them.
        merged = np.where(keypoints[:, 2:3] > 0, keypoints, track.keypoints)
        track.keypoints, track.stamp, track.mask = merged, stamp, mask
        track.age += 1

    @staticmethod
    def _coarse_masks(result: PoseSegResult) -> list[np.ndarray]:
        coarse = result.label_map[::_MASK_GRID, ::_MASK_GRID]
        return [coarse == i + 1 for i in range(len(result))]
