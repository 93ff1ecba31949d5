"""PersonTracker keeps ids through crossings and short occlusions, gives new people new ids."""
import numpy as np

from kdc_model import PoseSegResult
from kdc_model.training.synthetic import random_pose
from kdc_ros.node.tracking import PersonTracker, TrackerConfig, object_keypoint_similarity
from scripted_people import result_from_poses

HEIGHT, WIDTH, FPS = 240, 480, 10.0


def frame(poses: list[np.ndarray]) -> PoseSegResult:
    return result_from_poses(poses, HEIGHT, WIDTH)


def walk(pose: np.ndarray, velocity, t: float) -> np.ndarray:
    return pose + np.asarray(velocity) * t


def test_ids_survive_crossing_and_short_occlusion():
    rng = np.random.default_rng(0)
    # A walks right, B walks left: they cross mid-image at t = 2 s. C walks right behind a pillar
    # (invisible from t = 1.5 s to t = 2.2 s: shorter than the 1 s occlusion budget).
    a = random_pose(rng, np.array([80.0, 150.0]), 120)
    b = random_pose(rng, np.array([400.0, 155.0]), 125)
    c = random_pose(rng, np.array([40.0, 120.0]), 90)
    va, vb, vc = (80.0, 0.0), (-80.0, 0.0), (60.0, 0.0)
    tracker = PersonTracker(TrackerConfig(max_age=1.0))
    history = {"a": set(), "b": set(), "c": set()}
    for step in range(40):
        t = step / FPS
        names, poses = ["a", "b"], [walk(a, va, t), walk(b, vb, t)]
        if not 1.5 <= t <= 2.2:
            names.append("c")
            poses.append(walk(c, vc, t))
        ids = tracker.update(frame(poses), stamp=100.0 + t)
        assert len(set(ids.tolist())) == len(ids), f"duplicate ids at t={t}"
        for name, track_id in zip(names, ids):
            history[name].add(int(track_id))
    assert all(len(ids) == 1 for ids in history.values()), history
    assert len(set.union(*history.values())) == 3


def test_new_person_gets_fresh_id_and_ids_are_never_reused():
    rng = np.random.default_rng(1)
    pose = random_pose(rng, np.array([200.0, 150.0]), 120)
    tracker = PersonTracker(TrackerConfig(max_age=0.5))
    first = tracker.update(frame([pose]), stamp=0.0)
    tracker.update(frame([]), stamp=0.3)
    # Gone for longer than max_age: the same place now holds a new person with a new id.
    again = tracker.update(frame([pose]), stamp=1.0)
    assert first[0] != again[0]
    other = tracker.update(frame([pose, random_pose(rng, np.array([60.0, 150.0]), 100)]), stamp=1.1)
    assert other[0] == again[0] and other[1] not in (first[0], again[0])


def test_time_going_backwards_resets_tracks_but_not_ids():
    rng = np.random.default_rng(2)
    pose = random_pose(rng, np.array([200.0, 150.0]), 120)
    tracker = PersonTracker()
    first = tracker.update(frame([pose]), stamp=10.0)
    looped = tracker.update(frame([pose]), stamp=0.0)
    assert looped[0] > first[0]


def test_oks_is_one_for_identical_poses_and_falls_with_distance():
    rng = np.random.default_rng(3)
    pose = np.concatenate([random_pose(rng, np.array([100.0, 100.0]), 100), np.ones((17, 1))], 1)
    shifted = pose.copy()
    shifted[:, 0] += 30
    oks = object_keypoint_similarity(pose[None], np.stack([pose, shifted]), threshold=0.1)
    assert oks.shape == (1, 2)
    assert oks[0, 0] > 0.999 and oks[0, 1] < 0.5
