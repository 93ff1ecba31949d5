"""How well person ids persist over a sequence of frames: track lengths and id switches.

Pure NumPy, no ground truth needed: people are matched from one frame to the next by box IoU
(greedy, best pair first, IoU >= `min_iou`); a matched pair whose ids differ is an id switch.
kdc-replay puts the result into report.json as `tracking`.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from kdc_model.matching import box_iou, greedy_pairs


def tracking_summary(frames: Iterable[tuple[Sequence[int], np.ndarray]], min_iou: float = 0.5) -> dict:
    """`frames`: per frame in order, (ids [N], boxes [N,4]) of its people.

    tracks: distinct ids; mean/max_track_length: frames each id appears in; id_switches: matched
    pairs of consecutive frames whose id changed; id_kept_fraction: matched pairs keeping their id
    (None when no pair matched).
    """
    tracking = TrackingStats(min_iou)
    for ids, boxes in frames:
        tracking.add(ids, boxes)
    return tracking.summary()


class TrackingStats:
    """tracking_summary fed one frame at a time (kdc-replay adds each output as it comes, so a long
    bag costs a counter per id, not every frame's people)."""

    def __init__(self, min_iou: float = 0.5) -> None:
        self.min_iou = min_iou
        self.lengths: Counter = Counter()
        self.switches = self.pairs = 0
        self._previous: tuple[list[int], np.ndarray] | None = None

    def add(self, ids: Sequence[int], boxes) -> None:
        """The next frame's people: their ids [N] and boxes [N, 4]."""
        ids = [int(i) for i in ids]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(ids) != len(boxes):
            raise ValueError(f"{len(ids)} ids but {len(boxes)} boxes in one frame")
        self.lengths.update(set(ids))
        if self._previous is not None:
            for i, j in greedy_pairs(box_iou(self._previous[1], boxes), self.min_iou):
                self.pairs += 1
                self.switches += self._previous[0][i] != ids[j]
        self._previous = (ids, boxes)

    def add_pose_seg(self, msg) -> None:
        self.add(*pose_seg_frame(msg))

    def summary(self) -> dict:
        track_lengths = list(self.lengths.values())
        return {
            "tracks": len(track_lengths),
            "mean_track_length": round(float(np.mean(track_lengths)), 3) if track_lengths else 0.0,
            "max_track_length": max(track_lengths, default=0),
            "id_switches": int(self.switches),
            "id_kept_fraction": round(1 - self.switches / self.pairs, 4) if self.pairs else None,
        }


def pose_seg_frame(msg) -> tuple[list[int], np.ndarray]:
    """(ids, boxes) of one kdc_msgs/PoseSeg's people."""
    return ([p.id for p in msg.people],
            np.array([(p.x_min, p.y_min, p.x_max, p.y_max) for p in msg.people], np.float64).reshape(-1, 4))


def pose_seg_frames(pose_segs) -> list[tuple[list[int], np.ndarray]]:
    """(ids, boxes) of each kdc_msgs/PoseSeg, for tracking_summary."""
    return [pose_seg_frame(msg) for msg in pose_segs]
