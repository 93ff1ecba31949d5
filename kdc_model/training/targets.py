"""Training targets for one image: every map of heads.HEAD_CHANNELS plus its `<key>_weight`.

Cells stand for the input pixel at their centre (heads.cell_centres); offsets are input pixels.
Where several people compete for a cell (overlapping disks, mixed mask cells) the target is that
of the nearest keypoint / the person covering most of the cell, so a decoder fed these maps recovers
every person exactly; the weights say where the loss should trust them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..network.heads import cell_centres
from ..skeleton import DIRECTED_EDGES, NUM_KEYPOINTS

_EDGE_SRC = torch.tensor([a for a, _ in DIRECTED_EDGES])
_EDGE_DST = torch.tensor([b for _, b in DIRECTED_EDGES])


def _interleave(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[C, h, w] x and y components -> [2C, h, w] with channel 2c = x, 2c + 1 = y."""
    return torch.stack([x, y], dim=1).flatten(0, 1)


def _cell_sums(masks: torch.Tensor, h: int, w: int, stride: int) -> torch.Tensor:
    """[N, H, W] bool -> [N, h, w] number of true pixels in each stride x stride cell."""
    n = masks.shape[0]
    crop = masks[:, : h * stride, : w * stride].to(torch.float32)
    return crop.reshape(n, h, stride, w, stride).sum(dim=(2, 4))


def encode_targets(keypoints, masks, ignore, *, image_size: tuple[int, int], stride: int,
                   radius: float) -> dict[str, torch.Tensor]:
    """Targets at map size (H // stride, W // stride), float32, no batch dimension.

    keypoints: [N, 17, 3] (x, y, v) input pixels, v > 0 labelled; masks: [N, H, W] bool (may be
    empty per person); ignore: [H, W] bool crowd region; radius: disk radius in input pixels.
    """
    H, W = image_size
    h, w = H // stride, W // stride
    kp = torch.as_tensor(np.asarray(keypoints, np.float32)).reshape(-1, NUM_KEYPOINTS, 3)
    masks = torch.as_tensor(np.ascontiguousarray(masks, bool)).reshape(-1, H, W)
    ignore = torch.as_tensor(np.ascontiguousarray(ignore, bool)).reshape(H, W)
    if kp.shape[0] == 0:
        # One unlabelled person with an empty mask changes no target and keeps the shapes simple.
        kp, masks = torch.zeros(1, NUM_KEYPOINTS, 3), torch.zeros(1, H, W, dtype=torch.bool)
    n = kp.shape[0]
    xs, ys = cell_centres(h, w, stride)
    px, py = xs.view(1, 1, 1, w), ys.view(1, 1, h, 1)

    labelled = kp[..., 2] > 0                                        # [N, 17]
    # Offsets from every cell to every keypoint; unlabelled ones are infinitely far.
    dx = kp[..., 0].view(n, NUM_KEYPOINTS, 1, 1) - px                # [N, 17, 1, w]
    dy = kp[..., 1].view(n, NUM_KEYPOINTS, 1, 1) - py                # [N, 17, h, 1]
    d2 = dx.square() + dy.square()
    d2 = torch.where(labelled.view(n, NUM_KEYPOINTS, 1, 1), d2, torch.full_like(d2, float("inf")))
    nearest_d2, owner = d2.min(dim=0)                                # [17, h, w]: nearest person per type
    disk = nearest_d2 <= radius * radius                             # [17, h, w]
    own_kp = kp[owner, torch.arange(NUM_KEYPOINTS).view(-1, 1, 1)]  # [17, h, w, 3]
    short_x = torch.where(disk, own_kp[..., 0] - px[0, 0], torch.zeros(()))
    short_y = torch.where(disk, own_kp[..., 1] - py[0, 0], torch.zeros(()))

    # Mid-range: a cell in the disk of person i's keypoint k points to person i's keypoint l.
    src_owner = owner[_EDGE_SRC]                                     # [32, h, w]
    dst_kp = kp[src_owner, _EDGE_DST.view(-1, 1, 1)]                 # [32, h, w, 3]
    mid_valid = disk[_EDGE_SRC] & (dst_kp[..., 2] > 0)
    mid_x = torch.where(mid_valid, dst_kp[..., 0] - px[0, 0], torch.zeros(()))
    mid_y = torch.where(mid_valid, dst_kp[..., 1] - py[0, 0], torch.zeros(()))

    # Segmentation: fraction of each cell that is person (bilinear upsampling + 0.5 then traces
    # straight edges to within a fraction of a pixel).
    area = float(stride * stride)
    person_px = _cell_sums(masks, h, w, stride)                      # [N, h, w]
    seg = (person_px.sum(dim=0) / area).clamp(max=1.0)
    ignored_cell = _cell_sums(ignore[None], h, w, stride)[0] > 0

    # Embedding: cells covered by exactly one person point to its labelled keypoints; mixed cells
    # get the majority person's vectors (weight 0) so decoding them is still unambiguous.
    covered = person_px > 0
    any_person = covered.any(dim=0)
    maj_kp = kp[person_px.argmax(dim=0)].permute(2, 3, 0, 1)         # [17, 3, h, w]
    embed_valid = any_person & (maj_kp[:, 2] > 0)                    # [17, h, w]
    embed_x = torch.where(embed_valid, maj_kp[:, 0] - px[0, 0], torch.zeros(()))
    embed_y = torch.where(embed_valid, maj_kp[:, 1] - py[0, 0], torch.zeros(()))
    single = covered.sum(dim=0) == 1

    # Heatmap loss skips crowds and people with a mask but no labelled keypoint (their disks are
    # missing, so the network must not be told "no keypoint" there).
    unannotated = ~labelled.any(dim=1)                               # [N]
    unannotated_cell = covered[unannotated].any(dim=0)
    heat_weight = (~(ignored_cell | unannotated_cell)).float().expand(NUM_KEYPOINTS, h, w)

    f = lambda t: t.to(torch.float32).contiguous()
    return {
        "heatmap": f(disk),
        "heatmap_weight": f(heat_weight),
        "short": f(_interleave(short_x, short_y)),
        "short_weight": f(disk),
        "mid": f(_interleave(mid_x, mid_y)),
        "mid_weight": f(mid_valid),
        "seg": f(seg[None]),
        "seg_weight": f(~ignored_cell)[None],
        "embed": f(_interleave(embed_x, embed_y)),
        "embed_weight": f(embed_valid & single),
    }
