"""encode_targets: map shapes, disk/offset semantics, weights (crowds, unannotated people), speed."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from kdc_model.network.heads import HEAD_CHANNELS, WEIGHT_CHANNELS, cell_centres
from kdc_model.skeleton import DIRECTED_EDGES
from kdc_model.training.synthetic import make_scene
from kdc_model.training.targets import encode_targets



def one_person(height=96, width=96):
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, 5] = (40.3, 30.7, 2)    # left shoulder
    kp[0, 11] = (42.1, 70.2, 2)   # left hip
    masks = np.zeros((1, height, width), bool)
    masks[0, 28:75, 30:55] = True
    return kp, masks


def test_every_head_and_weight_at_map_size_odd_image():
    scene = make_scene(np.random.default_rng(0), 203, 317, 6)
    t = encode_targets(scene.keypoints, scene.masks, scene.ignore, image_size=(203, 317), stride=8, radius=20.0)
    h, w = 203 // 8, 317 // 8
    for key, c in HEAD_CHANNELS.items():
        assert t[key].shape == (c, h, w) and t[key].dtype == torch.float32
        assert t[key + "_weight"].shape == (WEIGHT_CHANNELS[key], h, w)
    assert 0 <= t["seg"].min() and t["seg"].max() <= 1


def test_disks_and_offsets_point_at_the_keypoint():
    kp, masks = one_person()
    t = encode_targets(kp, masks, np.zeros((96, 96), bool), image_size=(96, 96), stride=4, radius=10.0)
    xs, ys = cell_centres(24, 24, 4)
    d2 = (xs[None] - 40.3) ** 2 + (ys[:, None] - 30.7) ** 2
    assert torch.equal(t["heatmap"][5].bool(), d2 <= 100)
    disk = t["heatmap"][5].bool()
    assert torch.allclose((xs[None] + t["short"][10])[disk], torch.tensor(40.3))
    assert torch.allclose((ys[:, None] + t["short"][11])[disk], torch.tensor(30.7))
    e = DIRECTED_EDGES.index((5, 11))
    assert torch.equal(t["mid_weight"][e].bool(), disk)
    assert torch.allclose((ys[:, None] + t["mid"][2 * e + 1])[disk], torch.tensor(70.2))
    # Edges to unlabelled keypoints get no mid-range target; neither does their embedding.
    assert t["mid_weight"][DIRECTED_EDGES.index((5, 7))].sum() == 0
    assert t["embed_weight"][0].sum() == 0
    inside = t["embed_weight"][5].bool()
    assert inside.any() and torch.allclose((xs[None] + t["embed"][10])[inside], torch.tensor(40.3))


def test_ignore_region_and_unannotated_people_get_zero_weight():
    kp, masks = one_person()
    ghost = np.zeros((1, 96, 96), bool)
    ghost[0, 0:20, 70:96] = True                      # a person with a mask but no keypoints
    ignore = np.zeros((96, 96), bool)
    ignore[80:96, 0:40] = True
    t = encode_targets(np.concatenate([kp, np.zeros_like(kp)]), np.concatenate([masks, ghost]), ignore,
                       image_size=(96, 96), stride=4, radius=10.0)
    assert t["heatmap_weight"][:, 20:24, 0:10].sum() == 0 and t["seg_weight"][:, 20:24, 0:10].sum() == 0
    assert t["heatmap_weight"][:, 0:5, 18:24].sum() == 0           # ghost: no heatmap loss ...
    assert t["seg_weight"][:, 0:5, 18:24].min() == 1              # ... but its mask still counts
    assert t["seg"][0, 0:5, 18:24].min() == 1
    assert t["heatmap_weight"][:, 10, 10].min() == 1


def test_no_people_and_overlapping_cells():
    t = encode_targets(np.zeros((0, 17, 3)), np.zeros((0, 64, 64), bool), np.zeros((64, 64), bool),
                       image_size=(64, 64), stride=8, radius=10.0)
    assert all(float(v.abs().sum()) == 0 for k, v in t.items() if not k.endswith("_weight"))
    assert t["seg_weight"].min() == 1
    scene = make_scene(np.random.default_rng(3), 160, 160, 8, min_height=60, max_height=120)
    t = encode_targets(scene.keypoints, scene.masks, scene.ignore, image_size=(160, 160), stride=8, radius=15.0)
    cell_people = torch.as_tensor(scene.masks).reshape(8, 20, 8, 20, 8).any(dim=(2, 4)).sum(0)
    assert t["embed_weight"][:, cell_people > 1].sum() == 0      # mixed cells: no embedding loss


@pytest.mark.long  # a time limit: how fast depends on the machine and its load
def test_fast_enough_for_a_data_loader():
    scene = make_scene(np.random.default_rng(1), 321, 321, 10)
    encode_targets(scene.keypoints, scene.masks, scene.ignore, image_size=(321, 321), stride=8, radius=25.6)
    best = min(_timed(scene) for _ in range(3))
    assert best < 0.05, f"{best * 1e3:.1f} ms"  # ~5 ms on an idle core; generous for shared CI


def _timed(scene) -> float:
    t = time.perf_counter()
    encode_targets(scene.keypoints, scene.masks, scene.ignore, image_size=(321, 321), stride=8, radius=25.6)
    return time.perf_counter() - t
