"""3D keypoints from an aligned depth image: robust depth from the person's own mask pixels.

Pure NumPy, no ROS: the node converts sensor_msgs to arrays first. Points are in the camera's
optical frame (x right, y down, z forward), metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdc_model import PoseSegResult


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of the depth-aligned colour camera (sensor_msgs/CameraInfo's K), pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k) -> "PinholeCamera":
        k = np.asarray(k, np.float64)
        if k.size != 9:
            raise ValueError(f"camera intrinsics K has {k.size} values, not 9")
        k = k.reshape(3, 3)
        # NaN or inf would silently invalidate every 3D keypoint (and NaN passes `<= 0`).
        used = k[[0, 1, 0, 1], [0, 1, 2, 2]]
        if not np.isfinite(used).all():
            raise ValueError(f"camera intrinsics are not finite: fx={k[0, 0]}, fy={k[1, 1]}, cx={k[0, 2]}, "
                             f"cy={k[1, 2]}")
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise ValueError(f"camera intrinsics have non-positive focal length: fx={k[0, 0]}, fy={k[1, 1]}")
        return cls(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]))


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """16UC1 (mm) or 32FC1 (m) depth array -> float32 metres with NaN where there is no reading."""
    if encoding in ("16UC1", "mono16"):
        metres = depth.astype(np.float32) / 1000.0
        metres[depth == 0] = np.nan
    elif encoding == "32FC1":
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth encoding {encoding!r} is not supported (use 16UC1 mm or 32FC1 m)")
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def lift_keypoints(result: PoseSegResult, depth_m: np.ndarray, camera: PinholeCamera, *,
                   window: int = 7, min_confidence: float = 0.1, min_samples: int = 3,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """3D keypoints (points [N,17,3] metres, valid [N,17] bool) for `result`'s people.

    Each keypoint's depth is the median of the valid depth readings in a (2*window+1)^2 patch
    around it that belong to that person's mask — never background or another person — so a
    wrist in front of a wall does not take the wall's depth. A keypoint with fewer than
    `min_samples` such readings, or under `min_confidence`, is invalid and its point is 0 (never NaN).
    """
    n = len(result)
    points = np.zeros((n, 17, 3), np.float32)
    valid = np.zeros((n, 17), bool)
    if n == 0:
        return points, valid
    h, w = result.label_map.shape
    if depth_m.shape != (h, w):
        raise ValueError(f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]} but the colour image is "
                         f"{w}x{h}: an aligned depth image of the same size is needed")
    offsets = np.arange(-window, window + 1)
    kx = np.rint(result.keypoints[..., 0]).astype(np.int64)           # [N, 17]
    ky = np.rint(result.keypoints[..., 1]).astype(np.int64)
    px = kx[..., None, None] + offsets[None, None, None, :]           # [N, 17, 1, P]
    py = ky[..., None, None] + offsets[None, None, :, None]           # [N, 17, P, 1]
    px, py = np.broadcast_arrays(px, py)
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    pxc, pyc = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    own = result.label_map[pyc, pxc] == (np.arange(1, n + 1)[:, None, None, None])
    samples = np.where(inside & own, depth_m[pyc, pxc], np.nan).reshape(n, 17, -1)
    count = np.isfinite(samples).sum(-1)
    enough = (count >= min_samples) & (result.keypoints[..., 2] >= min_confidence)
    z = np.zeros((n, 17), np.float32)
    if enough.any():
        z[enough] = np.nanmedian(samples[enough], axis=-1)
    points[..., 0] = (result.keypoints[..., 0] - camera.cx) * z / camera.fx
    points[..., 1] = (result.keypoints[..., 1] - camera.cy) * z / camera.fy
    points[..., 2] = z
    points[~enough] = 0.0
    return points, enough
