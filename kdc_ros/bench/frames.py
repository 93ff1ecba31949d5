"""The bench's frames: real footage (a video file, by default the demo's clip) or synthetic scenes.

Every system — ours and the peers — is timed on the same RGB frames. On real footage the per-person
work (decoding, NMS, masks) is what the people in it make it, and each row reports how many it found;
synthetic scenes (kdc_model.training.synthetic.make_scene: 1-6 drawn people over a textured background) are
for machines without the clip, and for tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_FRAME_SIZE = (480, 640)  # height, width: a VGA camera
DEMO_VIDEO = "demo"              # --video demo: the clip `make demo` plays (kdc_ros.demo.footage)


def make_frames(count: int, height: int = DEFAULT_FRAME_SIZE[0], width: int = DEFAULT_FRAME_SIZE[1],
                seed: int = 0, max_people: int = 6) -> np.ndarray:
    """[count, height, width, 3] uint8 RGB frames, the same for a given seed."""
    from kdc_model.training.synthetic import make_scene

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        people = int(rng.integers(1, max_people + 1))
        scene = make_scene(rng, height, width, people, min_height=0.3 * height, max_height=0.9 * height)
        frames.append(scene.image)
    return np.stack(frames)


def video_frames(path: str | Path, count: int) -> np.ndarray:
    """[count, H, W, 3] uint8 RGB frames spread evenly over the whole video (first and last included),
    so the rows see the clip's variety of scenes rather than one second of it. Read in order: seeking
    is unreliable in some codecs. ValueError when the file cannot be read or holds fewer frames."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: not a video OpenCV can read")
    frames = []
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total < count or count < 1:
            raise ValueError(f"{path}: {total} frames, {count} wanted")
        wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
        for index in range(total):
            ok, bgr = capture.read()
            if not ok:
                raise ValueError(f"{path}: frame {index} of {total} cannot be decoded")
            if index in wanted:
                frames.append(np.ascontiguousarray(bgr[..., ::-1]))
            if len(frames) == len(wanted):
                break
    finally:
        capture.release()
    return np.stack(frames)


def resolve_video(video: str) -> Path:
    """The file behind --video: a path, or "demo" for the demo's clip (fetched and cached the way
    `make demo` does it; FileNotFoundError when it cannot be had)."""
    if video != DEMO_VIDEO:
        path = Path(video)
        if not path.is_file():
            raise FileNotFoundError(f"--video {video}: no such file")
        return path
    from kdc_ros.demo.footage import fetch_vtest

    path = fetch_vtest()
    if path is None:
        raise FileNotFoundError("the demo's clip (vtest.avi) is not cached and could not be fetched; "
                                "pass --video PATH, or leave --video out for synthetic frames")
    return path
