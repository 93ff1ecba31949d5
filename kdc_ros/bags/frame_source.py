"""Camera footage on disk as a stream of frames: a video file or a folder of images.

Frames come out as OpenCV gives them (BGR uint8) with a name each: the file name for an image
folder (sorted, the order they are written in), "<video stem>_<index:06d>" for a video.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_FOLDER_FPS = 30.0  # an image folder has no rate of its own


class FrameSourceError(ValueError):
    """Footage that cannot be read; the message names the file."""


@dataclass
class FrameSource:
    path: Path
    fps: float                # frames per second the stamps follow
    count: int | None         # number of frames that will come out (None when the video does not say)
    frames: Iterator[tuple[str, np.ndarray]]  # (name, BGR uint8 [H, W, 3])


def open_frames(path: str | Path, fps: float | None = None, max_frames: int | None = None) -> FrameSource:
    """The frames of a video file or an image folder; `fps` overrides the video's own rate."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FrameSourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        files = files[:max_frames]
        return FrameSource(path, fps or DEFAULT_FOLDER_FPS, len(files), _folder_frames(files))
    if not path.is_file():
        raise FrameSourceError(f"{path}: no such video file or image folder")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameSourceError(f"{path}: OpenCV cannot open this video")
    video_fps = capture.get(cv2.CAP_PROP_FPS)
    if fps is None and not video_fps > 0:
        capture.release()
        raise FrameSourceError(f"{path}: the video does not say its frame rate; pass --fps")
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    count = reported if reported > 0 else None
    if max_frames is not None:
        count = max_frames if count is None else min(count, max_frames)
    return FrameSource(path, fps or video_fps, count, _video_frames(capture, path.stem, max_frames))


def _folder_frames(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    for file in files:
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FrameSourceError(f"{file}: not an image OpenCV can read")
        yield file.name, bgr


def _video_frames(capture: cv2.VideoCapture, stem: str, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            yield f"{stem}_{index:06d}", bgr
            index += 1
    finally:
        capture.release()
