"""tracking_summary on hand-made sequences: id switches, kept fraction and track lengths."""
import numpy as np
import pytest

from kdc_ros.replay.tracking_metrics import box_iou, greedy_pairs, tracking_summary


def box(x: float, y: float = 0.0, w: float = 10.0, h: float = 20.0):
    return (x, y, x + w, y + h)


def test_steady_tracks_have_no_switches():
    frames = [([1, 2], [box(t), box(50 - t)]) for t in range(5)]
    assert tracking_summary(frames) == {"tracks": 2, "mean_track_length": 5.0, "max_track_length": 5,
                                        "id_switches": 0, "id_kept_fraction": 1.0}


def test_swapped_ids_count_as_switches():
    # Two people far apart; at frame 2 their ids swap (a tracker error), then stay swapped.
    frames = [([1, 2], [box(0), box(100)]), ([1, 2], [box(1), box(99)]),
              ([2, 1], [box(2), box(98)]), ([2, 1], [box(3), box(97)])]
    summary = tracking_summary(frames)
    assert summary["id_switches"] == 2                         # both people switch once
    assert summary["id_kept_fraction"] == pytest.approx(4 / 6, abs=1e-4)
    assert summary["tracks"] == 2 and summary["max_track_length"] == 4


def test_new_id_for_the_same_person_is_a_switch_and_a_new_track():
    frames = [([1], [box(0)]), ([1], [box(1)]), ([7], [box(2)]), ([7], [box(3)])]
    summary = tracking_summary(frames)
    assert summary["id_switches"] == 1 and summary["tracks"] == 2
    assert summary["mean_track_length"] == 2.0 and summary["max_track_length"] == 2


def test_unmatched_people_and_gaps_are_not_switches():
    # Person 3 appears (no IoU with anyone), person 1 leaves for a frame and comes back with its id;
    # a low-IoU move (a jump) is not a matched pair either.
    frames = [([1], [box(0)]), ([1, 3], [box(0), box(200)]), ([3], [box(200)]),
              ([1, 3], [box(0), box(260)])]
    summary = tracking_summary(frames)
    assert summary["id_switches"] == 0
    assert summary["id_kept_fraction"] == 1.0                  # pairs: 1-1, 3-3
    assert summary["tracks"] == 2 and summary["max_track_length"] == 3 and summary["mean_track_length"] == 3.0


def test_greedy_takes_the_best_pair_first():
    previous = np.array([box(0), box(4)])
    current = np.array([box(4)])
    iou = box_iou(previous, current)
    assert iou[1, 0] == pytest.approx(1.0) and iou[0, 0] == pytest.approx(60 / 140)
    assert greedy_pairs(iou, 0.5) == [(1, 0)]
    # Ids [5, 6] -> [6]: the best pair keeps id 6, no switch.
    assert tracking_summary([([5, 6], previous), ([6], current)])["id_switches"] == 0


def test_empty_and_bad_input():
    assert tracking_summary([]) == {"tracks": 0, "mean_track_length": 0.0, "max_track_length": 0,
                                    "id_switches": 0, "id_kept_fraction": None}
    assert tracking_summary([([], np.zeros((0, 4)))] * 3)["id_kept_fraction"] is None
    with pytest.raises(ValueError):
        tracking_summary([([1, 2], [box(0)])])
