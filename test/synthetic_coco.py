"""A small COCO-format dataset written to a folder from kdc_model.training.synthetic scenes, for the data,
evaluation and training tests (the project's tests never read ../shared)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from kdc_model.training.synthetic import make_scene, scene_to_coco


def write_dataset(folder: Path, count: int = 4, size: int = 128, seed: int = 0, people: int = 2,
                  crowd_probability: float = 0.0, empty_images: int = 0) -> tuple[list, Path, Path]:
    """(scenes, images dir, annotations path) of `count` scenes saved as PNGs (lossless, so the
    pixels read back are the scene's), plus `empty_images` person-free images (no annotations)."""
    rng = np.random.default_rng(seed)
    scenes = [make_scene(rng, size, size, people, min_height=0.45 * size, max_height=0.8 * size,
                         allow_outside=False, unlabelled_fraction=0.0, crowd_probability=crowd_probability)
              for _ in range(count)]
    scenes += [make_scene(rng, size, size, 0, crowd_probability=0.0) for _ in range(empty_images)]
    names = [f"scene_{i:03d}.png" for i in range(len(scenes))]
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for scene, name in zip(scenes, names):
        cv2.imwrite(str(images / name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    annotations = folder / "annotations.json"
    annotations.write_text(json.dumps(scene_to_coco(scenes, names)))
    return scenes, images, annotations


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (outer contours) of a bool mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
