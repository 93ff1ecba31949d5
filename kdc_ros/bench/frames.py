"""The bench's frames: deterministic synthetic scenes (kdc_model.synthetic.make_scene).

Real camera footage is not in the repository, so every system — ours and the peers — is timed on
the same synthetic 640x480 RGB frames of 1-6 people over a textured background. The model-side
cost of every system here depends on the input size, not on the picture; only the per-person parts
(decoding, NMS, masks) depend on how many people a system finds, which each row reports.
"""
from __future__ import annotations

import numpy as np

DEFAULT_FRAME_SIZE = (480, 640)  # height, width: a VGA camera


def make_frames(count: int, height: int = DEFAULT_FRAME_SIZE[0], width: int = DEFAULT_FRAME_SIZE[1],
                seed: int = 0, max_people: int = 6) -> np.ndarray:
    """[count, height, width, 3] uint8 RGB frames, the same for a given seed."""
    from kdc_model.synthetic import make_scene

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        people = int(rng.integers(1, max_people + 1))
        scene = make_scene(rng, height, width, people, min_height=0.3 * height, max_height=0.9 * height)
        frames.append(scene.image)
    return np.stack(frames)
