"""Matching people between two sets: box IoU and a greedy one-to-one pairing, best pair first.

Used by tracking metrics (frame to frame), the teacher's pseudo-labels (teacher to label) and
multi-scale inference (one image's people found at two sides).
"""
from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4] (x_min, y_min, x_max, y_max) -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_pairs(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """(row, column) pairs, best IoU first, each row and column used once, IoU >= min_iou."""
    pairs, rows, columns = [], set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i not in rows and j not in columns:
            pairs.append((int(i), int(j)))
            rows.add(i)
            columns.add(j)
    return pairs
