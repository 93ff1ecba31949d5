"""The decoder's work is bounded whatever the maps, and its shortcuts give what the plain method gives.

- Maps that fire everywhere (kdc_model.training.synthetic.texture_maps: thousands of strong peaks) queue at most
  `max_peaks` peaks, group at most `max_candidates` people and check at most `merge_candidates` of
  them for pieces of one person (how long that takes is a benchmark: `python -m kdc_ros.bench.decoder`
  prints it).
- Masks at input resolution are computed only around labelled cells: on real-looking label layouts the
  result equals a per-pixel vote over the whole image.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdc_model import DecoderConfig, ModelConfig
from kdc_model.inference.decode import DecodeWork, decode_people, pixel_axis, upsample_labels
from kdc_model.training.synthetic import texture_maps


def _decode(maps, config: DecoderConfig, side: int, stride: int = 8, radius: float = 25.5, work=None):
    return decode_people(maps, stride=stride, radius=radius, config=config, image_size=(side, side), work=work)


def test_texture_maps_queue_at_most_max_peaks_and_group_at_most_max_candidates():
    side = 320
    maps = texture_maps(ModelConfig(), side, side)
    config = DecoderConfig(max_peaks=300, max_candidates=40)
    work = DecodeWork()
    result = _decode(maps, config, side, work=work)
    assert work.peaks_found > 3 * config.max_peaks  # the caps must bind for this test to mean anything
    assert work.peaks_queued == config.max_peaks
    assert work.candidates == config.max_candidates  # the texture offers far more
    assert len(result) <= config.max_candidates


def test_pieces_are_joined_among_the_first_merge_candidates_only():
    maps = texture_maps(ModelConfig(), 256, 256, spacing=6)
    config = DecoderConfig(max_candidates=100, merge_candidates=12)
    work = DecodeWork()
    _decode(maps, config, 256, work=work)
    assert work.candidates > config.merge_candidates  # more candidates than are checked
    assert work.merge_checked == config.merge_candidates


def test_max_candidates_bounds_the_people_found():
    maps = texture_maps(ModelConfig(), 256, 256, spacing=6)
    loose = _decode(maps, DecoderConfig(min_person_score=0.0, max_people=1000, max_candidates=1000), 256)
    tight = _decode(maps, DecoderConfig(min_person_score=0.0, max_people=1000, max_candidates=5), 256)
    assert len(tight) == 5 < len(loose)
    assert tight.label_map.max() <= 5


def _full_resolution_labels(seg: np.ndarray, cells: np.ndarray, stride: int, size: tuple[int, int],
                            threshold: float) -> np.ndarray:
    """The plain method: every pixel of the image, segmentation upsampled by PyTorch, each pixel voted
    among its four corner cells' labels (the first label with the most bilinear weight)."""
    H, W = size
    h, w = seg.shape
    seg_up = F.interpolate(torch.from_numpy(seg)[None, None], size=(H, W), mode="bilinear",
                           align_corners=False)[0, 0].numpy()
    i0, fv = pixel_axis(H, h, stride)
    j0, fu = pixel_axis(W, w, stride)
    i1, j1 = np.minimum(i0 + 1, h - 1), np.minimum(j0 + 1, w - 1)
    corner_labels = [cells[i0][:, j0], cells[i0][:, j1], cells[i1][:, j0], cells[i1][:, j1]]
    v, u = fv[:, None], fu[None, :]
    weights = [(1 - v) * (1 - u), (1 - v) * u, v * (1 - u), v * u]
    best, label = np.zeros((H, W)), np.zeros((H, W), np.int64)
    for a in range(4):
        support = sum(wt * (lab > 0) * (lab == corner_labels[a]) for wt, lab in zip(weights, corner_labels))
        better = support > best
        best, label = np.where(better, support, best), np.where(better, corner_labels[a], label)
    return np.where(seg_up > threshold, label, 0)


@pytest.mark.parametrize("seed", range(4))
def test_masks_near_labelled_cells_equal_a_vote_over_every_pixel(seed):
    rng = np.random.default_rng(seed)
    h, w, stride = 12, 16, 8
    seg = rng.uniform(0, 1, (h, w)).astype(np.float32)
    cells = np.zeros((h, w), np.int32)
    for person in range(1, 4):  # three blobs of labelled cells, touching in places
        i, j = rng.integers(0, h - 3), rng.integers(0, w - 3)
        cells[i:i + rng.integers(2, 5), j:j + rng.integers(2, 5)] = person
    cells[seg < 0.3] = 0
    label, pixels, seg_px = upsample_labels(seg, cells, stride, (h * stride, w * stride), 0.5)
    expected = _full_resolution_labels(seg, cells, stride, (h * stride, w * stride), 0.5)
    # Pixels within a float32 step of the threshold may go either way (PyTorch's vectorised
    # interpolation rounds differently); none are expected at these random values, but allow them.
    assert (label != expected).sum() <= 2
    assert label.any()
    np.testing.assert_array_equal(pixels, np.flatnonzero(label))
    assert np.all(seg_px > 0.5)
