"""3D keypoints from depth: exact on a known plane, invalid (not NaN, not fake zeros) without depth."""
import numpy as np
import pytest

from kdc_model import PoseSegResult
from kdc_model.training.synthetic import make_scene
from kdc_ros.node.depth import PinholeCamera, depth_to_metres, lift_keypoints

CAMERA = PinholeCamera(fx=525.0, fy=520.0, cx=319.5, cy=239.5)


def scene_result(seed: int = 0) -> PoseSegResult:
    scene = make_scene(np.random.default_rng(seed), 480, 640, 3, allow_outside=False, crowd_probability=0)
    n = len(scene.keypoints)
    label_map = np.zeros((480, 640), np.uint16)
    for i, mask in enumerate(scene.masks):
        label_map[mask] = i + 1
    keypoints = scene.keypoints.copy()
    keypoints[..., 2] = (scene.keypoints[..., 2] > 0) * 0.9
    return PoseSegResult(keypoints=keypoints, scores=np.ones(n, np.float32), boxes=np.zeros((n, 4), np.float32),
                         label_map=label_map, mask_scores=np.ones(n, np.float32))


def plane_depth(a: float, b: float, c: float) -> np.ndarray:
    """Depth (m) of the plane z = c + a*X + b*Y seen by CAMERA, per pixel."""
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    rx, ry = (u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy
    return (c / (1 - a * rx - b * ry)).astype(np.float32)


def test_keypoints_on_a_known_plane_are_within_a_centimetre():
    result = scene_result()
    depth = plane_depth(0.2, -0.1, 3.0)
    points, valid = lift_keypoints(result, depth, CAMERA)
    assert valid.sum() > 20
    x, y, z = points[valid].T
    np.testing.assert_allclose(z, 3.0 + 0.2 * x - 0.1 * y, atol=0.01)
    # And each point projects back onto its keypoint.
    kp = result.keypoints[valid]
    np.testing.assert_allclose(CAMERA.fx * x / z + CAMERA.cx, kp[:, 0], atol=0.5)
    np.testing.assert_allclose(CAMERA.fy * y / z + CAMERA.cy, kp[:, 1], atol=0.5)


def test_depth_comes_from_the_persons_own_pixels_only():
    result = scene_result(1)
    depth = np.full((480, 640), 9.0, np.float32)         # a far wall ...
    depth[result.label_map > 0] = 2.0                     # ... and people at 2 m
    points, valid = lift_keypoints(result, depth, CAMERA)
    assert valid.any()
    np.testing.assert_allclose(points[valid][:, 2], 2.0)


def test_missing_depth_gives_invalid_points_never_nan():
    result = scene_result(2)
    depth = plane_depth(0.0, 0.0, 2.5)
    depth[:, :320] = np.nan                               # no readings on the left half
    points, valid = lift_keypoints(result, depth, CAMERA)
    assert np.isfinite(points).all()
    left = result.keypoints[..., 0] < 320 - 8
    assert not valid[left].any()
    assert (points[~valid] == 0).all()
    assert valid[~left & (result.keypoints[..., 2] > 0) & (result.keypoints[..., 0] > 320 + 8)].any()


def test_depth_encodings():
    mm = np.array([[0, 1500]], np.uint16)
    np.testing.assert_array_equal(depth_to_metres(mm, "16UC1"), [[np.nan, 1.5]])
    metres = np.array([[np.inf, -1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(depth_to_metres(metres, "32FC1"), [[np.nan, np.nan, 2.0]])
    with pytest.raises(ValueError, match="8UC1"):
        depth_to_metres(mm.astype(np.uint8), "8UC1")


def test_misaligned_depth_is_refused_with_sizes():
    with pytest.raises(ValueError, match="aligned"):
        lift_keypoints(scene_result(), np.ones((240, 320), np.float32), CAMERA)


@pytest.mark.parametrize("k, says", [
    ([np.nan, 0, 320, 0, 500, 240, 0, 0, 1], "not finite: fx=nan"),
    ([500, 0, np.inf, 0, 500, 240, 0, 0, 1], "not finite"),
    ([500, 0, 320, 0, -np.inf, 240, 0, 0, 1], "not finite"),
    ([500, 0, 320, 0, 0, 240, 0, 0, 1], "non-positive focal length"),
    ([500, 0, 320, 0, 500, 240], "K has 6 values, not 9"),
])
def test_unusable_intrinsics_are_refused_with_a_reason(k, says):
    with pytest.raises(ValueError, match=says):
        PinholeCamera.from_k(k)
    assert PinholeCamera.from_k([500, 0, 320, 0, 510, 240, 0, 0, 1]) == PinholeCamera(500, 510, 320, 240)
