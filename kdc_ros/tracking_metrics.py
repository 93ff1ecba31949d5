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
    lengths: Counter = Counter()
    switches = pairs_total = 0
    previous = None
    for ids, boxes in frames:
        ids = [int(i) for i in ids]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(ids) != len(boxes):
            raise ValueError(f"{len(ids)} ids but {len(boxes)} boxes in one frame")
        lengths.update(set(ids))
        if previous is not None:
            for i, j in greedy_pairs(box_iou(previous[1], boxes), min_iou):
                pairs_total += 1
                switches += previous[0][i] != ids[j]
        previous = (ids, boxes)
    track_lengths = list(lengths.values())
    return {
        "tracks": len(track_lengths),
        "mean_track_length": round(float(np.mean(track_lengths)), 3) if track_lengths else 0.0,
        "max_track_length": max(track_lengths, default=0),
        "id_switches": int(switches),
        "id_kept_fraction": round(1 - switches / pairs_total, 4) if pairs_total else None,
    }


def pose_seg_frames(pose_segs) -> list[tuple[list[int], np.ndarray]]:
    """(ids, boxes) of each kdc_msgs/PoseSeg, for tracking_summary."""
    return [([p.id for p in msg.people],
             np.array([(p.x_min, p.y_min, p.x_max, p.y_max) for p in msg.people], np.float64).reshape(-1, 4))
            for msg in pose_segs]
