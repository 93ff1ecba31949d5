"""Multi-scale inference: the same network at several letterbox sides, their people merged.

The network learnt people of a range of sizes in pixels: at 320 it misses people whose joints are
small at that side; at 640 it finds the small ones and loses some big ones. Running both and keeping,
for every person, the best-scored detection, its keypoints joined with those of the same person at
the other side, gives markedly better keypoints and masks on COCO photographs (docs/training.md,
entries 8 and 12) for the sum of the sides' costs. A model's default sides are its
ModelConfig.multi_scale (the default weights: 640 besides 320); load_model builds this predictor.
"""
from __future__ import annotations

import time

import numpy as np

from ..matching import box_iou
from ..result import PoseSegResult


class _Mask:
    """One person's mask as the rectangle around its pixels: (top, left) and the boolean crop."""

    def __init__(self, top: int, left: int, crop: np.ndarray) -> None:
        self.top, self.left, self.crop = top, left, crop
        self.area = int(crop.sum())

    def iou(self, other: "_Mask") -> float:
        top, left = max(self.top, other.top), max(self.left, other.left)
        bottom = min(self.top + self.crop.shape[0], other.top + other.crop.shape[0])
        right = min(self.left + self.crop.shape[1], other.left + other.crop.shape[1])
        if bottom <= top or right <= left:
            return 0.0
        mine = self.crop[top - self.top:bottom - self.top, left - self.left:right - self.left]
        theirs = other.crop[top - other.top:bottom - other.top, left - other.left:right - other.left]
        inter = int(np.count_nonzero(mine & theirs))
        return inter / max(self.area + other.area - inter, 1)


def _masks(result: PoseSegResult) -> list[_Mask | None]:
    """Every person's mask (None without pixels), from one pass over the label map: the rows and
    columns each label occupies give its rectangle, so no person costs a whole-image comparison."""
    height, width = result.image_size
    n = len(result)
    ys, xs = np.nonzero(result.label_map)
    who = result.label_map[ys, xs].astype(np.int64)
    rows = np.bincount(who * height + ys, minlength=(n + 1) * height).reshape(n + 1, height)[1:] > 0
    cols = np.bincount(who * width + xs, minlength=(n + 1) * width).reshape(n + 1, width)[1:] > 0
    masks = []
    for i in range(n):
        if not rows[i].any():
            masks.append(None)
            continue
        top, bottom = int(rows[i].argmax()), height - int(rows[i][::-1].argmax())
        left, right = int(cols[i].argmax()), width - int(cols[i][::-1].argmax())
        masks.append(_Mask(top, left, result.label_map[top:bottom, left:right] == i + 1))
    return masks


def merge_people(results: list[PoseSegResult], iou_threshold: float = 0.5,
                 keypoint_reach: float = 0.3) -> PoseSegResult:
    """One result from several results of the same image: people in score order, a person dropped
    when their box or mask overlaps a kept person's by more than `iou_threshold` (IoU). In the merged
    label map a pixel claimed by two kept people goes to the better-scored one.

    A dropped person is the same person seen at another side, and their keypoints are a second
    estimate: each kept keypoint is averaged, weighted by confidence, with the dropped duplicates'
    keypoints of its type within `keypoint_reach` x sqrt(box area) of it (farther ones are another
    joint: a left/right swap), and a keypoint the kept person lacks is taken from the most confident
    duplicate that has it (docs/training.md, entry 12: keypoint AP 0.152 -> 0.163 on 47 COCO
    photographs). 0 keeps the kept people's keypoints as they are."""
    if not results:
        raise ValueError("merge_people needs at least one result")
    shape = results[0].image_size
    if any(r.image_size != shape for r in results):
        raise ValueError(f"results of different image sizes: {sorted({r.image_size for r in results})}")
    masks = [_masks(r) for r in results]
    people = [(float(r.scores[i]), k, i) for k, r in enumerate(results) for i in range(len(r))]
    people.sort(key=lambda p: -p[0])  # stable: equal scores keep the order of `results`
    kept: list[tuple[int, int]] = []
    duplicates: list[list[np.ndarray]] = []   # per kept person: the keypoints [17, 3] of those dropped for them
    kept_boxes = np.zeros((0, 4), np.float32)
    for _, k, i in people:
        box, mask = results[k].boxes[i], masks[k][i]
        if kept:
            overlaps = box_iou(box, kept_boxes)[0]
            if overlaps.max() <= iou_threshold and mask is not None:
                overlaps = np.maximum(overlaps, [0.0 if masks[a][b] is None else mask.iou(masks[a][b])
                                                 for a, b in kept])
            if overlaps.max() > iou_threshold:
                duplicates[int(overlaps.argmax())].append(results[k].keypoints[i])
                continue
        kept.append((k, i))
        duplicates.append([])
        kept_boxes = np.concatenate([kept_boxes, box[None]])
    label_map = np.zeros(shape, np.uint16)
    for n, (k, i) in enumerate(kept):
        mask = masks[k][i]
        if mask is not None:
            window = label_map[mask.top:mask.top + mask.crop.shape[0], mask.left:mask.left + mask.crop.shape[1]]
            window[mask.crop & (window == 0)] = n + 1
    pick = lambda field: np.array([getattr(results[k], field)[i] for k, i in kept], np.float32).reshape(
        (len(kept),) + getattr(results[0], field).shape[1:])
    keypoints, boxes = pick("keypoints"), pick("boxes")
    if keypoint_reach > 0:
        for n, others in enumerate(duplicates):
            if others:
                keypoints[n] = _joined_keypoints(keypoints[n], np.stack(others), boxes[n], keypoint_reach)
    return PoseSegResult(keypoints=keypoints, scores=pick("scores"), boxes=boxes,
                         label_map=label_map, mask_scores=pick("mask_scores"))


def _joined_keypoints(own: np.ndarray, others: np.ndarray, box: np.ndarray, reach: float) -> np.ndarray:
    """A kept person's keypoints [17, 3] joined with their duplicates' [D, 17, 3] (merge_people)."""
    scale = float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0)))
    found, theirs = own[:, 2] > 0, others[..., 2] > 0                                  # [17], [D, 17]
    near = np.linalg.norm(others[..., :2] - own[:, :2], axis=-1) < reach * scale      # [D, 17]
    weight = np.where(found & theirs & near, others[..., 2], 0.0)[..., None]          # [D, 17, 1]
    total = own[:, 2:3] + weight.sum(0)
    joined = own.copy()
    joined[:, :2] = np.where(found[:, None], (own[:, :2] * own[:, 2:3] + (others[..., :2] * weight).sum(0))
                             / np.where(total > 0, total, 1.0), own[:, :2])
    # A keypoint the kept person lacks: the most confident duplicate's.
    best = others[others[..., 2].argmax(0), np.arange(own.shape[0])]                  # [17, 3]
    missing = ~found & (best[:, 2] > 0)
    joined[missing] = best[missing]
    return joined


class MultiScalePredictor:
    """Predictors of one network at several letterbox sides, called as one Predictor: each image
    goes through every side and the people are merged (merge_people). Everything else (config,
    decoder, device, backend, ...) is the first predictor's; `input_side` is the first side and
    `input_sides` all of them. last_timing sums the stages over the sides (merging counts as
    decoding)."""

    def __init__(self, predictors: list, iou_threshold: float = 0.5) -> None:
        if len(predictors) < 2:
            raise ValueError("a multi-scale predictor needs at least two sides")
        self.predictors = predictors
        self.input_sides = tuple(p.input_side for p in predictors)
        self.iou_threshold = iou_threshold
        self.last_timing: dict[str, float] = {}

    def __getattr__(self, name: str):
        # Only reached for attributes this class does not define: the first predictor's.
        if name == "predictors":
            raise AttributeError(name)
        return getattr(self.predictors[0], name)

    def __call__(self, image: np.ndarray) -> PoseSegResult:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[PoseSegResult]:
        per_side, timing = [], {}
        for predictor in self.predictors:
            per_side.append(predictor.predict_batch(images))
            for key, ms in predictor.last_timing.items():
                timing[key] = timing.get(key, 0.0) + ms
        start = time.perf_counter()
        merged = [merge_people([side[n] for side in per_side], self.iou_threshold) for n in range(len(images))]
        merge_ms = (time.perf_counter() - start) * 1e3
        # Merging is decoding work: people in, people out.
        for key in ("decode_ms", "total_ms"):
            timing[key] = timing.get(key, 0.0) + merge_ms
        self.last_timing = timing
        return merged
