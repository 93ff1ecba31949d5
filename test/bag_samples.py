"""Test footage for the bag tools: a few small synthetic frames of people, on disk, with COCO labels."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from kdc_model.training.synthetic import make_scene, scene_to_coco

TOPIC = "/cam/image_raw"
START_TIME = 1000.0  # stamp of frame 0, seconds


def write_frame_folder(folder: Path, frames: int = 6, height: int = 72, width: int = 96) -> list[np.ndarray]:
    """PNG frames 000000.png... of synthetic people (1 or 2 each) plus coco.json; returns the RGB frames."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    scenes = [make_scene(rng, height, width, 1 + i % 2, min_height=35, max_height=60, allow_outside=False,
                         crowd_probability=0.0) for i in range(frames)]
    names = [f"{i:06d}.png" for i in range(frames)]
    for scene, name in zip(scenes, names):
        cv2.imwrite(str(folder / name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    (folder.parent / f"{folder.name}_coco.json").write_text(json.dumps(scene_to_coco(scenes, names)))
    return [scene.image for scene in scenes]


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def truncate(bag: Path, fraction: float) -> Path:
    """Cut the bag's .mcap file to `fraction` of its size (a recording killed mid-write)."""
    (mcap,) = bag.glob("*.mcap")
    with mcap.open("r+b") as f:
        f.truncate(int(mcap.stat().st_size * fraction))
    return mcap
