"""The layout of KDC's output maps, shared by the network, the targets, the losses and the decoder.

All maps are at output stride s: an input of H x W pixels gives maps of h = H // s rows and
w = W // s columns (inputs are letterboxed to multiples of 32). Map cell (i, j) stands for the
input pixel at its centre, x = j * s + (s - 1) / 2, y = i * s + (s - 1) / 2 (`cell_centres`).
All offsets are in input pixels, x first then y.

| key       | channels | network output        | target (encode_targets)                                   |
|-----------|----------|-----------------------|-----------------------------------------------------------|
| heatmap   | 17       | logits                | 1 inside the disk D_R of each labelled keypoint, else 0   |
| short     | 2 x 17   | KeyCentroid offsets   | q - p for cells p in the disk of keypoint q (nearest q)   |
| mid       | 2 x 32   | mid-range offsets     | q_l - p for p in the disk of q_k, directed edge k -> l    |
| seg       | 1        | logits                | person mask (union of instances)                          |
| embed     | 2 x 17   | MaskCentroid offsets  | for a person pixel m, person keypoint k minus m           |

Channel 2k is the x component and 2k + 1 the y component of keypoint (or directed edge) k.
Each target map `name` comes with `name_weight` (heatmap: [17], short: [17], mid: [32],
seg: [1], embed: [17] channels) that is 0 where the loss must not look: crowd regions and
unannotated people for heatmap/seg, outside disks for short/mid, overlap and unlabelled
keypoints for embed.
"""
from __future__ import annotations

import torch

from ..skeleton import DIRECTED_EDGES, FLIP_INDEX, NUM_DIRECTED_EDGES, NUM_KEYPOINTS

HEAD_CHANNELS: dict[str, int] = {
    "heatmap": NUM_KEYPOINTS,
    "short": 2 * NUM_KEYPOINTS,
    "mid": 2 * NUM_DIRECTED_EDGES,
    "seg": 1,
    "embed": 2 * NUM_KEYPOINTS,
}
WEIGHT_CHANNELS: dict[str, int] = {
    "heatmap": NUM_KEYPOINTS,
    "short": NUM_KEYPOINTS,
    "mid": NUM_DIRECTED_EDGES,
    "seg": 1,
    "embed": NUM_KEYPOINTS,
}
# Heads whose raw network output is a logit; `activate` turns them into probabilities.
LOGIT_HEADS = ("heatmap", "seg")


def activate(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Network outputs -> decoder inputs: sigmoid on the logit heads, offsets unchanged."""
    return {k: (v.sigmoid() if k in LOGIT_HEADS else v) for k, v in outputs.items()}


def cell_centres(h: int, w: int, stride: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(xs [w], ys [h]): input-pixel coordinates of the centres of the map cells."""
    off = (stride - 1) / 2.0
    xs = torch.arange(w, device=device, dtype=dtype) * stride + off
    ys = torch.arange(h, device=device, dtype=dtype) * stride + off
    return xs, ys


def _vector_channels(order) -> list[int]:
    return [c for i in order for c in (2 * i, 2 * i + 1)]


# Channel order of each map for the mirrored image: left and right keypoints (and the edges between
# them) trade places; vector maps also negate x.
_MIRRORED_EDGES = [DIRECTED_EDGES.index((FLIP_INDEX[a], FLIP_INDEX[b])) for a, b in DIRECTED_EDGES]
_MIRROR_ORDER = {"heatmap": list(FLIP_INDEX), "short": _vector_channels(FLIP_INDEX),
                 "mid": _vector_channels(_MIRRORED_EDGES), "seg": [0], "embed": _vector_channels(FLIP_INDEX)}


def unmirror(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Network outputs [B, C, h, w] of horizontally mirrored inputs -> the maps of the inputs
    themselves: mirrored back, left/right channels swapped, x components negated."""
    maps = {}
    for key, value in outputs.items():
        value = torch.flip(value, dims=[-1])[:, _MIRROR_ORDER[key]]
        if key not in LOGIT_HEADS:
            value = value.clone()
            value[:, 0::2] = -value[:, 0::2]
        maps[key] = value
    return maps
