"""kdc_ros.node.messages and kdc_ros.node.visualization as pure functions (no node, no DDS)."""
from types import SimpleNamespace

import numpy as np
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from fixed_predictor import FixedPredictor
from kdc_ros.node.latest_frame import LatestFrames
from kdc_ros.node.messages import filter_result, pose_seg_from_result
from kdc_ros.node.visualization import detections_from_result, draw_overlay, markers_from_result

HEADER = Header(frame_id="cam")


def test_filter_result_drops_people_and_renumbers_their_mask_labels():
    result = FixedPredictor.result_for(40, 60)
    result.scores[:] = (0.9, 0.1, 0.5)  # the middle person goes; label 3 must become 2
    kept = filter_result(result, min_person_score=0.2, keypoint_threshold=0.1)
    assert len(kept) == 2 and np.allclose(kept.scores, [0.9, 0.5])
    assert set(np.unique(kept.label_map)) == {0, 1, 2}
    assert np.array_equal(kept.label_map == 2, result.label_map == 3)
    assert np.all(kept.keypoints[:, 9] == 0), "keypoints under the threshold read (0, 0, 0)"
    message = pose_seg_from_result(kept, HEADER, publish_mask=False, ids=[7, 9])
    assert [p.id for p in message.people] == [7, 9] and message.mask.width == 0
    assert [p.mask_area for p in message.people] == [(kept.label_map == i).sum() for i in (1, 2)]


def test_markers_keep_ids_and_delete_people_who_left():
    result = FixedPredictor.result_for(40, 60)
    first, drawn = markers_from_result(result, HEADER, set(), ids=[4, 5, 6])
    assert drawn == {4, 5, 6} and {m.id for m in first.markers} == drawn
    skeleton = next(m for m in first.markers if m.ns == "skeleton" and m.id == 4)
    assert skeleton.type == Marker.LINE_LIST and len(skeleton.points) % 2 == 0 and skeleton.points
    assert all(abs(p.z - 1.0) < 1e-9 and abs(p.x) < 0.6 for p in skeleton.points)
    fewer = filter_result(result, 0.5, 0.0)  # only the first two people remain
    second, drawn = markers_from_result(fewer, HEADER, drawn, ids=[4, 5])
    deleted = {(m.ns, m.id) for m in second.markers if m.action == Marker.DELETE}
    assert deleted == {("skeleton", 6), ("joints", 6), ("score", 6)} and drawn == {4, 5}


def test_overlay_draws_on_a_copy():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    drawn = draw_overlay(rgb, FixedPredictor.result_for(40, 60), mask_alpha=0.5)
    assert drawn.shape == rgb.shape and (drawn != 100).any() and (rgb == 100).all()


def test_detections_fill_both_vision_msgs_layouts():
    # Stand-ins for vision_msgs 4.x (center.position, hypothesis.class_id), which is not on PyPI.
    def message(**fields):
        return lambda **kw: SimpleNamespace(**{**{k: v() for k, v in fields.items()}, **kw})
    point = message(x=float, y=float)
    vision_msgs = SimpleNamespace(
        Detection2D=message(bbox=message(center=message(position=point, theta=float), size_x=float, size_y=float),
                            results=list, id=str),
        ObjectHypothesisWithPose=message(hypothesis=message(class_id=str, score=float)),
        Detection2DArray=message(detections=list))
    result = FixedPredictor.result_for(40, 60)
    array = detections_from_result(result, HEADER, vision_msgs, ids=[1, 2, 3])
    first = array.detections[0]
    x0, y0, x1, y1 = result.boxes[0]
    assert first.id == "1" and first.results[0].hypothesis.class_id == "person"
    assert abs(first.bbox.center.position.x - (x0 + x1) / 2) < 1e-6 and abs(first.bbox.size_y - (y1 - y0)) < 1e-6


def test_latest_frames_keeps_one_frame_per_camera_and_counts_drops():
    frames = LatestFrames()
    assert not frames.put("a", 1) and frames.put("a", 2) and not frames.put("b", 3)
    assert frames.pending() == 2 and frames.dropped == {"a": 1}
    assert frames.take()[::2] == ("a", 2)  # oldest slot first, newest frame in it
    assert frames.take()[::2] == ("b", 3)
    assert frames.take(timeout=0.01) is None
    frames.close()
    assert frames.take() is None
