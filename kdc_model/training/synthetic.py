"""Deterministic synthetic scenes of people, for tests, training smoke tests and benchmarks, and the
maps of a texture the decoder finds hardest (texture_maps).

Each person is a plausible COCO-17 skeleton (standing, walking, arm poses; random scale, position
and lean) drawn as filled torso, head and limbs in distinct colours over a textured background.
Everyone faces the camera, so a person's left_* keypoints lie at larger x than the right_* ones.
People are painted back to front (feet lower in the image = closer), so the instance masks are the
visible pixels of each body and never overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..network.config import ModelConfig
from ..skeleton import DRAW_EDGES, KEYPOINT_NAMES, NUM_DIRECTED_EDGES, NUM_KEYPOINTS

# Body proportions as fractions of the person's height (top of head to ankles).
_HIP_HALF_WIDTH = 0.085
_SHOULDER_HALF_WIDTH = 0.125
_TORSO = 0.30             # hip centre to shoulder line
_NECK_TO_NOSE = 0.13      # shoulder line to nose
_UPPER_ARM, _FOREARM = 0.17, 0.15
_THIGH, _SHIN = 0.24, 0.23
_HEAD_RADIUS = 0.075
_ARM_THICKNESS, _LEG_THICKNESS = 0.08, 0.10

# Keypoint index groups used for drawing.
_LEFT_ARM, _RIGHT_ARM = (5, 7, 9), (6, 8, 10)
_LEFT_LEG, _RIGHT_LEG = (11, 13, 15), (12, 14, 16)


@dataclass
class Scene:
    """One synthetic image and its annotation (COCO conventions)."""

    image: np.ndarray      # [H, W, 3] uint8 RGB
    keypoints: np.ndarray  # [N, 17, 3] float32 (x, y, v); v=0 unlabelled (x = y = 0), 1 occluded, 2 visible
    masks: np.ndarray      # [N, H, W] bool visible body of each person, mutually disjoint
    ignore: np.ndarray     # [H, W] bool crowd region (unannotated people), may be empty


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    """Rotate 2D vector(s) by `angle` radians (image coordinates, y down)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def _down(angle: float) -> np.ndarray:
    """Unit vector pointing down (+y) turned by `angle` radians towards +x."""
    return np.array([np.sin(angle), np.cos(angle)])


def random_pose(rng: np.random.Generator, centre: np.ndarray, height: float) -> np.ndarray:
    """[17, 2] keypoints of a person facing the camera, hip centre at `centre`, `height` px tall."""
    h = height
    width_factor = rng.uniform(0.85, 1.15)
    kp = np.zeros((NUM_KEYPOINTS, 2))
    hip_y = 0.0
    shoulder_y = hip_y - _TORSO * h
    # The person's left side is at image +x when facing the camera.
    kp[11] = (_HIP_HALF_WIDTH * h * width_factor, hip_y)
    kp[12] = (-_HIP_HALF_WIDTH * h * width_factor, hip_y)
    kp[5] = (_SHOULDER_HALF_WIDTH * h * width_factor, shoulder_y)
    kp[6] = (-_SHOULDER_HALF_WIDTH * h * width_factor, shoulder_y)
    head_turn = rng.uniform(-0.03, 0.03) * h
    nose = np.array([head_turn, shoulder_y - _NECK_TO_NOSE * h])
    kp[0] = nose
    kp[1] = nose + (0.028 * h, -0.028 * h)
    kp[2] = nose + (-0.028 * h, -0.028 * h)
    kp[3] = nose + (0.055 * h - head_turn * 0.3, -0.012 * h)
    kp[4] = nose + (-0.055 * h - head_turn * 0.3, -0.012 * h)

    # Arms: angle from hanging straight down, positive = away from the body; elbow bend adds to it.
    for side, (s, e, w) in ((+1, _LEFT_ARM), (-1, _RIGHT_ARM)):
        style = rng.random()
        if style < 0.5:
            upper = rng.uniform(0.05, 0.5)                 # hanging, slightly out
        elif style < 0.8:
            upper = rng.uniform(0.5, 1.7)                  # raised sideways
        else:
            upper = rng.uniform(1.7, 2.8)                  # raised overhead
        bend = rng.uniform(-0.3, 1.6) * rng.choice([-1, 1])
        kp[e] = kp[s] + _UPPER_ARM * h * _down(side * upper)
        kp[w] = kp[e] + _FOREARM * h * _down(side * (upper + bend))

    # Legs: angle out from vertical (away from the body), shin bent back in at the knee.
    walking = rng.random() < 0.5
    for side, (hp, k, a) in ((+1, _LEFT_LEG), (-1, _RIGHT_LEG)):
        out = rng.uniform(-0.05, 0.35) if walking else rng.uniform(0.0, 0.15)
        knee_bend = rng.uniform(0.0, 0.3) if walking else rng.uniform(0.0, 0.05)
        kp[k] = kp[hp] + _THIGH * h * _down(side * out)
        kp[a] = kp[k] + _SHIN * h * _down(side * (out - knee_bend))

    lean = rng.uniform(-0.15, 0.15)
    return _rotate(kp, lean) + centre


def _person_colours(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    """Distinct colours per body part; left and right limbs in different colour families."""
    skin = np.array([224, 172, 130]) * rng.uniform(0.45, 1.1)
    shirt = rng.integers(40, 255, 3)
    left = np.array([200, 60, 50]) * rng.uniform(0.6, 1.2)    # reddish
    right = np.array([50, 90, 210]) * rng.uniform(0.6, 1.2)   # bluish
    as_tuple = lambda c: tuple(int(x) for x in np.clip(c, 0, 255))
    return {"skin": as_tuple(skin), "shirt": as_tuple(shirt), "left": as_tuple(left), "right": as_tuple(right)}


def _draw_person(image: np.ndarray, labels: np.ndarray, label: int, kp: np.ndarray, height: float,
                 colours: dict) -> None:
    """Paint one body into `image` and write `label` into `labels` over the same pixels."""
    shift = 4  # cv2 sub-pixel precision bits
    pt = lambda p: (int(round(p[0] * (1 << shift))), int(round(p[1] * (1 << shift))))
    arm_t = max(2, int(round(_ARM_THICKNESS * height)))
    leg_t = max(2, int(round(_LEG_THICKNESS * height)))

    def paint(fn, colour):
        fn(image, colour)
        fn(labels, label)

    torso = np.array([kp[5], kp[6], kp[12], kp[11]])
    poly = np.round(torso * (1 << shift)).astype(np.int32)[None]
    paint(lambda im, c: cv2.fillPoly(im, poly, c, cv2.LINE_8, shift), colours["shirt"])
    neck_top = kp[0] + (0, 0.04 * height)
    neck_base = (kp[5] + kp[6]) / 2
    paint(lambda im, c: cv2.line(im, pt(neck_base), pt(neck_top), c, arm_t, cv2.LINE_8, shift), colours["skin"])
    for chain, thickness, colour in ((_LEFT_LEG, leg_t, "left"), (_RIGHT_LEG, leg_t, "right"),
                                     (_LEFT_ARM, arm_t, "left"), (_RIGHT_ARM, arm_t, "right")):
        for a, b in zip(chain[:-1], chain[1:]):
            paint(lambda im, c: cv2.line(im, pt(kp[a]), pt(kp[b]), c, thickness, cv2.LINE_8, shift), colours[colour])
    head_centre = kp[0] + (0, -0.02 * height)
    radius = int(round(_HEAD_RADIUS * height * (1 << shift)))
    paint(lambda im, c: cv2.circle(im, pt(head_centre), radius, c, -1, cv2.LINE_8, shift), colours["skin"])
    # Eyes as dark dots so the face side is recognisable.
    eye_r = max(1, int(round(0.012 * height * (1 << shift))))
    for e in (1, 2):
        cv2.circle(image, pt(kp[e]), eye_r, (20, 20, 20), -1, cv2.LINE_8, shift)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random colour field plus pixel noise and a few muted clutter shapes."""
    coarse = rng.uniform(60, 200, (rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.float32)
    bg = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    bg += rng.normal(0, 8, (height, width, 3)).astype(np.float32)
    for _ in range(rng.integers(2, 8)):
        colour = tuple(float(c) for c in rng.uniform(70, 170, 3))
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(5, max(6, width // 4)), y0 + rng.integers(5, max(6, height // 4))
        cv2.rectangle(bg, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
    return np.clip(bg, 0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, height: int, width: int, num_people: int, *,
               min_height: float = 80.0, max_height: float = 200.0, allow_outside: bool = True,
               unlabelled_fraction: float = 0.1, crowd_probability: float = 0.2) -> Scene:
    """A random scene of `num_people` annotated people (plus, sometimes, an unannotated crowd).

    allow_outside: people may extend past the image border (their hip centre stays inside);
    otherwise each body lies wholly inside the image. Keypoints outside the image and a random
    `unlabelled_fraction` of the others are unlabelled (v = 0).
    """
    image = _background(rng, height, width)
    labels = np.zeros((height, width), np.int32)   # 0 background, i + 1 person i, -1 crowd
    ignore = np.zeros((height, width), bool)

    if rng.random() < crowd_probability:
        # A cluster of small unannotated people behind everyone, marked as a crowd region.
        ch = rng.uniform(0.25, 0.45) * min_height
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        crowd_labels = np.zeros_like(labels)
        for _ in range(rng.integers(3, 7)):
            centre = np.array([cx + rng.normal(0, ch * 0.6), cy + rng.normal(0, ch * 0.3)])
            _draw_person(image, crowd_labels, 1, random_pose(rng, centre, ch), ch, _person_colours(rng))
        ys, xs = np.nonzero(crowd_labels)
        if len(xs):
            ignore[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            labels[crowd_labels > 0] = -1

    heights = rng.uniform(min_height, max_height, num_people)
    poses = []
    for h in heights:
        if allow_outside:
            centre = np.array([rng.uniform(0, width - 1), rng.uniform(0, height - 1)])
        else:
            # Hip centre such that head top (~0.52 h above) and ankles (~0.47 h below) stay inside.
            margin_x = 0.45 * h
            centre = np.array([rng.uniform(margin_x, max(margin_x, width - 1 - margin_x)),
                               rng.uniform(0.55 * h, max(0.55 * h, height - 1 - 0.5 * h))])
        poses.append(random_pose(rng, centre, h))
    poses = np.array(poses).reshape(num_people, NUM_KEYPOINTS, 2)

    # Paint back to front: the person whose feet are lowest is nearest the camera.
    feet_y = poses[:, 15:17, 1].max(axis=1) if num_people else np.zeros(0)
    for i in np.argsort(feet_y, kind="stable"):
        _draw_person(image, labels, int(i) + 1, poses[i], heights[i], _person_colours(rng))

    masks = labels[None] == np.arange(1, num_people + 1)[:, None, None]
    keypoints = np.zeros((num_people, NUM_KEYPOINTS, 3), np.float32)
    keypoints[..., :2] = poses
    xi = np.clip(np.round(poses[..., 0]).astype(int), 0, width - 1)
    yi = np.clip(np.round(poses[..., 1]).astype(int), 0, height - 1)
    visible = labels[yi, xi] == np.arange(1, num_people + 1)[:, None]
    keypoints[..., 2] = np.where(visible, 2, 1)
    inside = (poses[..., 0] >= 0) & (poses[..., 0] <= width - 1) & (poses[..., 1] >= 0) & (poses[..., 1] <= height - 1)
    unlabelled = ~inside | (rng.random((num_people, NUM_KEYPOINTS)) < unlabelled_fraction)
    keypoints[unlabelled] = 0.0
    return Scene(image=image, keypoints=keypoints, masks=masks, ignore=ignore)


def _bbox(mask: np.ndarray, keypoints: np.ndarray) -> list[float]:
    """COCO [x, y, w, h] around the mask, or around the labelled keypoints when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        labelled = keypoints[keypoints[:, 2] > 0]
        if len(labelled) == 0:
            return [0.0, 0.0, 0.0, 0.0]
        xs, ys = labelled[:, 0], labelled[:, 1]
        return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")  # JSON-serialisable
    return rle


def scene_to_coco(scenes: list[Scene], file_names: list[str]) -> dict:
    """A COCO keypoints/instances annotation dict for `scenes` (image ids 1..n, in order).

    Every person becomes an annotation with an RLE mask; a non-empty crowd region becomes an
    iscrowd=1 annotation without keypoints.
    """
    if len(scenes) != len(file_names):
        raise ValueError("one file name per scene")
    images, annotations = [], []
    for image_id, (scene, name) in enumerate(zip(scenes, file_names), start=1):
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for kp, mask in zip(scene.keypoints, scene.masks):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": _rle(mask), "area": float(mask.sum()), "bbox": _bbox(mask, kp),
                "keypoints": [float(x) if j < 2 else int(x) for row in kp for j, x in enumerate(row)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            })
        if scene.ignore.any():
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 1,
                "segmentation": _rle(scene.ignore), "area": float(scene.ignore.sum()),
                "bbox": _bbox(scene.ignore, np.zeros((0, 3))),
                "keypoints": [0] * (3 * NUM_KEYPOINTS), "num_keypoints": 0,
            })
    categories = [{
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in DRAW_EDGES],  # COCO skeletons are 1-based
    }]
    return {"images": images, "annotations": annotations, "categories": categories}


def texture_maps(config: ModelConfig, height: int, width: int, spacing: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Maps of a scene the decoder finds hardest: a texture where every cell of every keypoint type
    is confident and votes for the nearest point of a grid `spacing` cells apart, so the Hough maps
    hold thousands of strong peaks; mid-range and embedding offsets are noise, every cell is "person".
    (A network shows this on patterned clothes, fences, foliage: limb-like texture everywhere.)"""
    stride = config.output_stride
    h, w = height // stride, width // stride
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    short = np.zeros((2 * NUM_KEYPOINTS, h, w), np.float32)
    short[0::2] = ((cols // spacing) * spacing + spacing // 2 - cols) * stride
    short[1::2] = ((rows // spacing) * spacing + spacing // 2 - rows) * stride
    maps = {"heatmap": np.full((NUM_KEYPOINTS, h, w), 0.9, np.float32), "short": short,
            "mid": rng.normal(0, 4 * stride, (2 * NUM_DIRECTED_EDGES, h, w)).astype(np.float32),
            "seg": np.ones((1, h, w), np.float32),
            "embed": rng.normal(0, 2 * stride, (2 * NUM_KEYPOINTS, h, w)).astype(np.float32)}
    return {k: torch.from_numpy(v) for k, v in maps.items()}
