"""Drawing a PoseSegResult over its image (instance masks, skeletons, joints, boxes, scores): the one
drawing function of the project. Evaluation's prediction grids use it, and kdc_ros's overlay image
should import it from here (kdc_model cannot import kdc_ros, which needs ROS).

NumPy + OpenCV only, RGB uint8 in and out.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..result import PoseSegResult
from ..skeleton import DRAW_EDGES

# Distinct colours (RGB) cycled by person index, so a person keeps its colour in every view.
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
], np.uint8)


def person_color(person_id: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in PALETTE[person_id % len(PALETTE)])


def draw_overlay(rgb: np.ndarray, result: PoseSegResult, mask_alpha: float = 0.5, ids=None) -> np.ndarray:
    """A copy of `rgb` with each person's mask tinted, skeleton, joints (confidence > 0), box and
    "id: score" drawn; line widths scale with the image size.

    ids: one id per person (track ids), which picks the colour and the label, so a tracked person
    keeps its colour from frame to frame; each person's index when None.
    """
    ids = np.arange(len(result)) if ids is None else np.asarray(ids, np.int64)
    canvas = rgb.copy()
    if len(result) and mask_alpha > 0:
        colors = np.concatenate([np.zeros((1, 3), np.uint8), PALETTE[ids % len(PALETTE)]])
        labels = np.minimum(result.label_map, len(result))
        person = labels > 0
        tint = colors[labels[person]].astype(np.float32)
        canvas[person] = (canvas[person] * (1 - mask_alpha) + tint * mask_alpha).astype(np.uint8)
    thickness = max(1, round(max(rgb.shape[:2]) / 320))
    for index, person_id in enumerate(ids.tolist()):
        color = person_color(person_id)
        keypoints = result.keypoints[index]
        found = keypoints[:, 2] > 0
        for a, b in DRAW_EDGES:
            if found[a] and found[b]:
                cv2.line(canvas, _pixel(keypoints[a]), _pixel(keypoints[b]), color, thickness, cv2.LINE_AA)
        for keypoint in keypoints[found]:
            cv2.circle(canvas, _pixel(keypoint), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
        x0, y0, x1, y1 = (int(round(v)) for v in result.boxes[index])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, 1)
        cv2.putText(canvas, f"{person_id}: {result.scores[index]:.2f}", (x0, max(y0 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, color, thickness, cv2.LINE_AA)
    return canvas


def image_grid(images: list[np.ndarray], columns: int = 4, tile_height: int = 240) -> np.ndarray:
    """Images scaled to one height, laid out in rows of `columns` tiles on black."""
    if not images:
        return np.zeros((tile_height, tile_height, 3), np.uint8)
    tiles = [cv2.resize(im, (max(1, round(im.shape[1] * tile_height / im.shape[0])), tile_height),
                        interpolation=cv2.INTER_AREA) for im in images]
    tile_width = max(t.shape[1] for t in tiles)
    columns = min(columns, len(tiles))
    rows = []
    for start in range(0, len(tiles), columns):
        row = np.zeros((tile_height, tile_width * columns, 3), np.uint8)
        for j, tile in enumerate(tiles[start:start + columns]):
            row[:, j * tile_width:j * tile_width + tile.shape[1]] = tile
        rows.append(row)
    return np.concatenate(rows, axis=0)


def _pixel(keypoint: np.ndarray) -> tuple[int, int]:
    return int(round(float(keypoint[0]))), int(round(float(keypoint[1])))
