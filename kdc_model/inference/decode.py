"""PoseSeg decoding: activated KDC maps of one image -> people (keypoints, scores, boxes, masks).

Steps (docs: shared/notes/kdc-method.md, "Decoding"):
1. KeyCentroid voting: every cell splats its heatmap probability bilinearly at p + short(p);
   normalised by pi R^2 (cells), a keypoint supported by a full disk gets mass ~1.
2. Point-wise Gaussian optimisation: each keypoint's Hough map is smoothed with its own sigma.
3. Peaks: 3x3 local maxima above `peak_threshold`, all 17 types in one queue by score.
4. Grouping: greedy along the kinematic tree (it walks peaks, never pixels; compiled in decode_loops).
5. Scores: votes landing near a keypoint, weighted by its COCO OKS falloff; person score = mean
   over 17 with soft NMS (keypoints a better person already has do not count).
6. Masks: dynamic MaskCentroids (each person's confident keypoints) attract the segmentation
   cells' embeddings; one batched tensor op gives every cell's membership to every person.

Sub-cell keypoint positions come from "mean-shift" on the KeyCentroid votes: a point moves to the
mean of the vote destinations c + short(c) of the cells around it, each weighted by heatmap(c) and
by a narrow Gaussian (`DecoderConfig.vote_bandwidth`, px at input 401) of its distance to the point. Votes for a different
keypoint of the same type a few pixels away barely count, so crowded people stay apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..network.config import DecoderConfig
from ..result import PoseSegResult
from ..skeleton import DIRECTED_EDGES, KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS, TREE_EDGES
from . import decode_loops

REFERENCE_INPUT = 401.0  # the input size at which DecoderConfig.match_radius and vote_bandwidth are given
_NO_OFFSET = 0.5         # px: a mid-range offset shorter than this is "no offset"

_SRC = np.array([a for a, _ in DIRECTED_EDGES])
_DST = np.array([b for _, b in DIRECTED_EDGES])
_REVERSE = np.array([(e + len(TREE_EDGES)) % len(DIRECTED_EDGES) for e in range(len(DIRECTED_EDGES))])

# Keypoint states during grouping (set by decode_loops.walk).
_UNSET, _FOUND, _GUESSED, _UNKNOWN = decode_loops.UNSET, decode_loops.FOUND, decode_loops.GUESSED, decode_loops.UNKNOWN


def _gaussian_blur(maps: np.ndarray, sigmas) -> np.ndarray:
    """Blur each channel of [C, h, w] (float32) with its own sigma (cells), zero beyond the edges;
    sigma <= 0 leaves it unchanged. Separable (decode_loops.blur)."""
    sig = np.maximum(np.asarray(sigmas, np.float32), np.float32(1e-3))
    half = max(1, math.ceil(3 * float(sig.max())))
    t = np.arange(-half, half + 1, dtype=np.float32)
    k = np.exp(-t[None] ** 2 / (2 * sig[:, None] ** 2))
    return decode_loops.blur(np.ascontiguousarray(maps, np.float32), k / k.sum(axis=1, keepdims=True))


def hough_maps(heatmap: np.ndarray, short: np.ndarray, *, stride: int, radius: float) -> np.ndarray:
    """KeyCentroid voting: [17, h, w] vote mass, ~1 at a keypoint backed by a whole disk (float32)."""
    votes = decode_loops.hough_votes(np.ascontiguousarray(heatmap, np.float32),
                                     np.ascontiguousarray(short, np.float32), int(stride))
    return votes / np.float32(math.pi * (radius / stride) ** 2)


def _peaks(maps: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channel, row, column) of the cells of [C, h, w] above `threshold` that are the maximum of
    their 3x3 neighbourhood in their channel, in map order. Only the cells above the threshold (a
    few percent) have their neighbours read."""
    c, h, w = maps.shape
    pk, pi, pj = np.nonzero(maps > threshold)
    padded = np.full((c, h + 2, w + 2), -np.inf, np.float32)
    padded[:, 1:-1, 1:-1] = maps
    flat = padded.reshape(-1)
    at = (pk * (h + 2) + pi + 1) * (w + 2) + pj + 1
    value = flat[at]
    is_peak = np.ones(len(at), bool)
    for step in (-(w + 3), -(w + 2), -(w + 1), -1, 1, w + 1, w + 2, w + 3):
        is_peak &= value >= flat[at + step]
    return pk[is_peak], pi[is_peak], pj[is_peak]


class _VoteField:
    """The small maps the grouping reads (decode_loops), as padded planes (one per type or edge), flat.

    Padding by one empty cell lets every 3x3 neighbourhood be read without bounds checks. The planes
    of a map lie end to end, so a value of type t at padded cell c is at `t * self.plane + c`;
    values read together lie in one array (x and y of the vote destinations, float64; whether the
    mid-range offset is set and its x and y, float32).
    """

    def __init__(self, heatmap, short, mid, *, stride: int, radius: float, bandwidth: float):
        k, h, w = heatmap.shape
        self.h, self.w, self.stride, self.radius = h, w, stride, radius
        self.plane = (h + 2) * (w + 2)
        self.off = (stride - 1) / 2.0
        self.bandwidth2 = 2 * bandwidth ** 2
        self.last_cell = np.array([w - 1.0, h - 1.0])   # x, y
        xs = np.arange(w) * stride + self.off
        ys = np.arange(h) * stride + self.off

        def pad(dtype, *planes):
            """[len(planes), C * plane]: each (float32 or bool) [C, h, w] map, or (map, plus) with
            `plus` (cell coordinates) added in float64, cast into a zero border of one cell."""
            padded = np.zeros((len(planes), planes[0][0].shape[0], h + 2, w + 2), dtype)
            for n, (values, plus) in enumerate(planes):
                inside = padded[n, :, 1:-1, 1:-1]
                if plus is None:
                    inside[...] = values
                else:
                    np.add(values, plus, out=inside)  # float32 + float64: the sum of the two as float64
            return padded.reshape(len(planes), -1)

        self.heat = pad(np.float64, (heatmap, None))[0]
        # 0 where a cell has heat, inf where not: the nearest vote is looked for among cells with heat.
        self.no_heat = np.where(self.heat > 0, 0.0, np.inf)
        self.vote = pad(np.float64, (short[0::2], xs), (short[1::2], ys[:, None]))   # [2, types * plane]
        # Per edge: whether each cell's mid-range offset says anything (a zero offset is "target
        # unknown": 0.0, 1.0 when set; squared lengths, as np.hypot costs several times more) and the
        # offset itself, float32 as the network gave it; `follow` adds the cell's coordinates (`cell_xy`,
        # per padded cell) in float64 when it reads them.
        mid_x, mid_y = mid[0::2], mid[1::2]
        self.mids = pad(np.float32, (mid_x * mid_x + mid_y * mid_y > _NO_OFFSET ** 2, None), (mid_x, None),
                        (mid_y, None))                                               # [3, edges * plane]
        cols, rows = np.arange(w + 2) - 1, np.arange(h + 2) - 1
        self.cell_xy = np.stack([np.broadcast_to(cols * stride + self.off, (h + 2, w + 2)),
                                 np.broadcast_to((rows * stride + self.off)[:, None], (h + 2, w + 2))]).reshape(2, -1)

    def refine(self, types: np.ndarray, pts: np.ndarray, steps: int) -> np.ndarray:
        """Move points [B, 2] to the mean of the nearby votes of their type, `steps` times."""
        return decode_loops.refine(np.asarray(types, np.int64), np.ascontiguousarray(pts, np.float64), int(steps),
                                   self.heat, self.no_heat, self.vote, float(self.off), int(self.stride),
                                   int(self.w), int(self.h), float(self.bandwidth2))

    def confidence(self, types: np.ndarray, pts: np.ndarray, falloff: np.ndarray) -> np.ndarray:
        """Vote mass of type `types` landing near each point [B, 2], weighted by a Gaussian falloff
        (px, [B]). Votes come from cells within the disk radius."""
        r = max(1, math.ceil(self.radius / self.stride))
        d = np.arange(-r, r + 1)
        di, dj = np.repeat(d, len(d)).reshape(1, -1), np.tile(d, len(d)).reshape(1, -1)  # the square, row-major
        ji = np.minimum(np.maximum(np.rint((pts - self.off) / self.stride), 0), self.last_cell).astype(np.int64) + 1
        i = np.minimum(np.maximum(ji[:, 1:] + di, 0), self.h + 1)
        j = np.minimum(np.maximum(ji[:, :1] + dj, 0), self.w + 1)
        at = (types * self.plane)[:, None] + i * (self.w + 2) + j
        dest = self.vote.take(at, axis=1)
        d2 = (dest[0] - pts[:, :1]) ** 2 + (dest[1] - pts[:, 1:]) ** 2
        mass = (self.heat[at] * np.exp(-d2 / (2 * falloff.reshape(-1, 1) ** 2))).sum(1)
        return np.clip(mass / (math.pi * (self.radius / self.stride) ** 2), 0, 1)


def _walk_order(root: int) -> np.ndarray:
    """Directed edges that span the tree outward from `root`, breadth first."""
    edges, frontier, seen = [], [root], {root}
    while frontier:
        nxt = []
        for a in frontier:
            for e in np.flatnonzero(_SRC == a):
                if _DST[e] not in seen:
                    seen.add(int(_DST[e]))
                    edges.append(e)
                    nxt.append(int(_DST[e]))
        frontier = nxt
    return np.array(edges, np.int64)


_WALK_EDGES = np.stack([_walk_order(k) for k in range(NUM_KEYPOINTS)])   # [17, 16]


def _walk(field: _VoteField, root_types: np.ndarray, root_pos: np.ndarray, peak_types: np.ndarray,
          peak_pos: np.ndarray, claimable: np.ndarray, config: DecoderConfig,
          match_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Walk the kinematic tree outward from each root at once: keypoints [S, 17, 2], states [S, 17].

    Each edge k -> l proposes y_l = y_k + mid(y_k), refines it on the type-l votes; a proposal
    outside every disk snaps to the nearest claimable type-l peak within `match_radius` (else it
    is kept as a guess and the walk goes on from it); where the parent's cells carry no mid-range offset
    for the edge (the keypoint is unlabelled) the branch ends with an _UNKNOWN keypoint; a proposal whose reverse mid-range offset misses y_k by more than the consistency radius
    belongs to someone else and ends that branch.
    """
    kp, state = decode_loops.walk(
        np.asarray(root_types, np.int64), np.asarray(root_pos, np.float64), np.asarray(peak_types, np.int64),
        np.asarray(peak_pos, np.float64), np.asarray(claimable, bool), _WALK_EDGES, _SRC, _DST, _REVERSE,
        field.heat, field.no_heat, field.vote, field.mids, field.cell_xy, float(field.off), int(field.stride),
        int(field.w), int(field.h), float(field.bandwidth2), int(config.refine_steps),
        float(config.mid_min_support), float(config.mid_consistency * field.radius), float(match_radius))
    return kp, state


def _group(field: _VoteField, peak_types: np.ndarray, peak_pos: np.ndarray, config: DecoderConfig,
           match_radius: float, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Greedy grouping over the peak queue (sorted by score). Returns keypoints [P, 17, 2], states.

    A peak within `peak_nms_radius` of the same keypoint of an accepted person is skipped; any
    other peak starts a person. Walks are computed for a batch of unclaimed peaks at once and then
    accepted in queue order, which gives the sequential result except that people accepted from
    one batch do not see each other's claims when snapping. Grouping stops after
    `config.max_candidates` people (the queue is best first, so the rest would come from weaker peaks).
    """
    r2 = config.peak_nms_radius ** 2
    peak_x, peak_y = peak_pos[:, 0].copy(), peak_pos[:, 1].copy()
    is_claimed = np.zeros(len(peak_types), bool)
    people, states = [], []
    todo = np.arange(len(peak_types))
    while len(todo) and len(people) < config.max_candidates:
        todo = todo[~is_claimed[todo]]
        take = min(batch, config.max_candidates - len(people))
        seeds, todo = todo[:take], todo[take:]
        if not len(seeds):
            break
        kp, state = _walk(field, peak_types[seeds], peak_pos[seeds], peak_types, peak_pos, ~is_claimed,
                          config, match_radius)
        for n, seed in enumerate(seeds):
            if is_claimed[seed]:
                continue
            people.append(kp[n])
            states.append(state[n])
            # The person claims the peaks near its found keypoint of their type.
            near = kp[n][peak_types]
            is_claimed |= (((peak_x - near[:, 0]) ** 2 + (peak_y - near[:, 1]) ** 2 < r2)
                           & (state[n][peak_types] == _FOUND))
    if not people:
        return np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS), np.int64)
    return np.stack(people), np.stack(states)


def _shared_cells(kp: np.ndarray, found: np.ndarray, a: np.ndarray, b: np.ndarray, seg: np.ndarray,
                  embed: np.ndarray, tolerance: np.ndarray, *, stride: int, seg_threshold: float) -> np.ndarray:
    """For person pairs (a[q], b[q]): the share of the person cells owned by either that point at both.

    A person cell's MaskCentroid embeddings point at every keypoint of the person it belongs to (the
    training target). A cell owns person p when, over p's found types, its embeddings land within
    tolerance of p's keypoints on average. Two pieces of one person own the same cells; two people,
    however they overlap, do not: a cell points at one of them."""
    h, w = seg.shape
    off = (stride - 1) / 2.0
    ci, cj = np.nonzero(seg > seg_threshold)
    if not len(ci):
        return np.zeros(len(a))
    centre = np.stack([cj * stride + off, ci * stride + off], -1)                     # [N, 2]
    pointed = centre[:, None] + embed.reshape(NUM_KEYPOINTS, 2, h, w)[:, :, ci, cj].transpose(2, 0, 1)  # [N, 17, 2]
    people = np.unique(np.concatenate([a, b]))
    # |pointed - kp| over (x, y), as np.linalg.norm computes it, without its [N, U, 17, 2] temporaries.
    dx = pointed[:, None, :, 0] - kp[people, :, 0][None]                           # [N, U, 17]
    dy = pointed[:, None, :, 1] - kp[people, :, 1][None]
    dx *= dx
    dy *= dy
    dx += dy
    d = np.sqrt(dx, out=dx)
    f = found[people]
    mean_d = (d * f[None]).sum(-1) / np.maximum(f.sum(-1), 1)[None]                   # [N, U]
    slot = np.searchsorted(people, np.stack([a, b]))                                  # [2, Q]
    own_a = mean_d[:, slot[0]] <= tolerance[None]                                     # [N, Q]
    own_b = mean_d[:, slot[1]] <= tolerance[None]
    either = (own_a | own_b).sum(0)
    return np.where(either > 0, (own_a & own_b).sum(0) / np.maximum(either, 1), 0.0)


def _merge_pieces(kp: np.ndarray, state: np.ndarray, seg: np.ndarray, embed: np.ndarray, *, stride: int,
                  seg_threshold: float, max_distance: float, min_shared: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Join the pieces of one person that the tree walk returned apart: people whose found keypoints
    have disjoint types and who own mostly the same person cells (_shared_cells, with a tolerance of
    max_distance of the larger piece's scale). Most-shared pairs first; a joined person keeps every
    found keypoint."""
    found = state == _FOUND
    if len(kp) < 2:
        return kp, state
    # Candidates: disjoint found types, both with found keypoints, boxes at most the larger piece's
    # longer side apart (a hidden hip leaves a thigh's length between torso and knees).
    lo = np.where(found[..., None], kp, np.inf).min(1)
    hi = np.where(found[..., None], kp, -np.inf).max(1)
    has = found.any(1)
    a, b = np.nonzero(np.triu(~(found[:, None] & found[None]).any(-1), k=1) & has[:, None] & has[None])
    extent = np.maximum(hi[a], hi[b]) - np.minimum(lo[a], lo[b])                     # [Q, 2]
    gap = np.maximum(np.maximum(lo[a], lo[b]) - np.minimum(hi[a], hi[b]), 0)
    side = (hi - lo).max(1)
    near = (gap <= np.maximum(side[a], side[b])[:, None]).all(1)
    a, b, extent = a[near], b[near], extent[near]
    if not len(a):
        return kp, state
    # The tolerance follows the larger piece's size (a torso's, not that of a box spanning two people).
    size = np.sqrt(np.prod(hi - lo + stride, axis=1))
    tolerance = max_distance * np.maximum(size[a], size[b])
    shared = _shared_cells(kp, found, a, b, seg, embed, tolerance, stride=stride, seg_threshold=seg_threshold)
    ok = shared >= min_shared
    a, b, shared = a[ok], b[ok], shared[ok]
    kp, state, found = kp.copy(), state.copy(), found.copy()
    owner = np.arange(len(kp))              # the piece each piece was joined into (itself while alive)

    def root(x: int) -> int:
        while owner[x] != x:
            x = owner[x]
        return x

    for n in np.argsort(-shared, kind="stable"):
        p, q = root(a[n]), root(b[n])
        if p == q or (found[p] & found[q]).any():
            continue
        # p keeps its own keypoints and takes q's found ones; what neither found stays p's.
        kp[p] = np.where(found[q][:, None], kp[q], kp[p])
        state[p] = np.where(found[q], state[q], state[p])
        found[p] |= found[q]
        owner[q] = p
    alive = owner == np.arange(len(kp))
    return kp[alive], state[alive]


def _person_scale(kp: np.ndarray, ok: np.ndarray, floor: float) -> np.ndarray:
    """sqrt of the area of the box around each person's found keypoints, at least `floor` px."""
    lo = np.where(ok[..., None], kp, np.inf).min(axis=1)
    hi = np.where(ok[..., None], kp, -np.inf).max(axis=1)
    extent = np.where(ok.any(axis=1)[:, None], hi - lo, 0.0)
    return np.maximum(np.sqrt(extent[:, 0] * extent[:, 1]), floor)


def _same_keypoint_close(kp: np.ndarray, radius: float) -> np.ndarray:
    """[P, P, 17]: whether person i's and person j's keypoint k lie closer than `radius`."""
    x, y = kp[..., 0], kp[..., 1]
    return (x[:, None] - x[None]) ** 2 + (y[:, None] - y[None]) ** 2 < radius ** 2


def _soft_nms_scores(kp: np.ndarray, conf: np.ndarray, nms_radius: float) -> np.ndarray:
    """Mean keypoint confidence over 17, skipping keypoints a higher-scoring person already has."""
    order = np.argsort(-conf.sum(1), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    close = _same_keypoint_close(kp, nms_radius)                                   # [P, P, 17]
    better = rank[:, None] < rank[None, :]                                        # i ranks above j
    taken = (close & better[..., None] & (conf[:, None] > 0)).any(axis=0)         # [P, 17]
    return np.where(taken, 0.0, conf).sum(1) / NUM_KEYPOINTS


# Multiply-adds per matrix product that OpenBLAS (NumPy's BLAS) runs on one thread; it splits larger
# ones over every core. The decoder's products are small: on threads that must wait for a core busy
# with other work (a training run, the network), one of them took 7 ms instead of 0.1 ms.
_BLAS_ONE_THREAD_WORK = 1 << 16


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b ([M, K] @ [K, N]), in blocks of rows small enough for BLAS to run each on one thread.
    Each output element is the same dot product whatever block its row is in."""
    rows = max(1, _BLAS_ONE_THREAD_WORK // max(1, b.shape[0] * b.shape[1]))
    if len(a) <= rows:
        return a @ b
    out = np.empty((len(a), b.shape[1]), np.result_type(a, b))
    for start in range(0, len(a), rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out


def _cell_labels(seg: np.ndarray, embed: np.ndarray, kp: np.ndarray, weight: np.ndarray, scale: np.ndarray, *,
                 stride: int, config: DecoderConfig) -> np.ndarray:
    """[h, w] int32: 0 background, j + 1 for cells whose embedding is attracted to person j.

    Distance of a cell to person j: root of the weighted mean squared distance between its
    embeddings e_k = m + embed_k(m) and j's keypoints, over j's confident keypoints (weights),
    divided by j's scale. Squared distances expand into matrix products, so all cells and people
    are scored at once (float32, like the maps).
    """
    h, w = seg.shape
    labels = np.zeros((h, w), np.int32)
    ii, jj = np.nonzero(seg > config.seg_threshold)
    if not len(kp) or not len(ii):
        return labels
    kp, weight, scale = kp.astype(np.float32), weight.astype(np.float32), scale.astype(np.float32)
    off = (stride - 1) / 2.0
    ex = embed[0::2, ii, jj].T + (jj * stride + off).astype(np.float32)[:, None]   # [M, 17]
    ey = embed[1::2, ii, jj].T + (ii * stride + off).astype(np.float32)[:, None]
    wsum = np.maximum(weight.sum(1), np.float32(1e-9))                             # [P]
    d2 = (_matmul(ex * ex + ey * ey, weight.T)
          - 2 * (_matmul(ex, (weight * kp[..., 0]).T) + _matmul(ey, (weight * kp[..., 1]).T))
          + (weight * (kp * kp).sum(-1)).sum(1))                                  # [M, P]
    d2 = np.maximum(d2, 0) / (wsum * scale * scale)
    # Memberships this far under the threshold cannot decide a label (smoothing moves no value by
    # more than they add up to, far less than a float32 step near the threshold), so they are zeroed.
    # That also keeps exp() off very negative arguments and the smoothing off float32 denormals,
    # both many times slower than the usual arithmetic.
    negligible = config.membership_threshold * 1e-24
    floor = math.log(negligible) - 1 if negligible > 0 else -math.inf   # exp(floor) < negligible
    phi = np.exp(np.maximum(d2 / np.float32(-2 * config.mask_sigma ** 2), np.float32(floor)))
    phi = np.where((weight.sum(1) > 0) & (phi >= negligible), phi, np.float32(0))
    if config.instance_smoothing_sigma > 0:
        # Instance-wise Gaussian optimisation: smooth each person's membership map. Memberships are 0
        # off the person cells, so blurring the box around those cells (zero beyond it) gives the same
        # values there as blurring the whole map, at a fraction of the cost.
        rows, cols = ii - ii.min(), jj - jj.min()
        grid = np.zeros((len(kp), rows.max() + 1, cols.max() + 1), np.float32)
        grid[:, rows, cols] = phi.T
        phi = _gaussian_blur(grid, [config.instance_smoothing_sigma] * len(kp))[:, rows, cols].T
    who = phi.argmax(axis=1)
    best = phi[np.arange(len(who)), who]
    labels[ii, jj] = np.where(best > config.membership_threshold, who + 1, 0)
    return labels


def pixel_axis(n_px: int, n_cells: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel along an axis: the cell at or before it (clamped to the map), and the float32
    fraction of the way to the next one: PyTorch's bilinear (align_corners=False) source index."""
    u = (np.arange(n_px, dtype=np.float32) - (stride - 1) / 2.0) / stride
    a0 = np.clip(np.floor(u), 0, n_cells - 1).astype(np.int64)
    return a0, np.clip(u - a0.astype(np.float32), 0, 1)


def upsample_labels(seg: np.ndarray, cell_labels: np.ndarray, stride: int, image_size: tuple[int, int],
                    seg_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance labels at input resolution: (label [H, W], the flat indices of its labelled pixels in
    raster order, their segmentation probability).

    Segmentation is bilinear between cell centres. A person pixel (segmentation > seg_threshold)
    takes the label carrying the most bilinear weight among its four neighbouring labelled cells;
    other pixels are 0. So only the pixels of blocks with a labelled corner cell can be labelled:
    only those are visited (a few percent of the image with a handful of people), and the cost
    follows the people, not the input size. The pixels between four cells of one label take it
    outright. Elsewhere the winning cell depends only on which of the four share a label, which are
    labelled, and the pixel's bilinear fractions, which take a handful of values: each such
    combination is voted once (_vote_corner) and the pixels look their winner up.
    """
    H, W = image_size
    h, w = seg.shape
    label = np.zeros((H, W), np.int32)
    # Block (a, b) holds the pixels whose top-left cell is (a, b); its corners are (a | a+1, b | b+1),
    # clamped at the last row and column.
    below = np.minimum(np.arange(h) + 1, h - 1)
    right = np.minimum(np.arange(w) + 1, w - 1)
    corners = np.stack([cell_labels, cell_labels[:, right], cell_labels[below],
                        cell_labels[below][:, right]]).reshape(4, -1)            # [4, blocks]
    i0, fv = pixel_axis(H, h, stride)
    j0, fu = pixel_axis(W, w, stride)
    block_on = (corners > 0).any(axis=0).reshape(h, w)
    at = np.flatnonzero(np.take(np.take(block_on, i0, axis=0), j0, axis=1))  # pixels of those blocks
    if not len(at):
        return label, at, np.zeros(0, np.float32)
    ys, xs = np.divmod(at, W)
    a, pv = i0[ys], fv[ys]
    # Bilinear segmentation at those pixels, in float32 as PyTorch's upsampling computes it (up to
    # the rounding of its vectorised kernel: within a float32 step): along the row first, for every
    # row of cells and column of pixels at once (a few cell rows, not the pixels), then down.
    one = np.float32(1)
    along = ((one - fu) * seg[:, j0] + fu * seg[:, right[j0]]).reshape(-1)            # [h * W]
    seg_px = (one - pv) * along[a * W + xs] + pv * along[below[a] * W + xs]
    person = seg_px > seg_threshold
    at, seg_px, ys, xs = at[person], seg_px[person], ys[person], xs[person]
    block = i0[ys] * w + j0[xs]
    px_label = corners[0][block]
    mixed = np.flatnonzero((corners != corners[0]).any(axis=0)[block])
    if len(mixed):
        l0, l1, l2, l3 = corners
        traits = (l0 == l1, l0 == l2, l0 == l3, l1 == l2, l1 == l3, l2 == l3, l0 > 0, l1 > 0, l2 > 0, l3 > 0)
        _, example, pattern = np.unique(sum(t.astype(np.int64) << n for n, t in enumerate(traits)),
                                        return_index=True, return_inverse=True)
        fv_values, fv_class = np.unique(fv[ys[mixed]], return_inverse=True)
        fu_values, fu_class = np.unique(fu[xs[mixed]], return_inverse=True)
        winner = _vote_corner(corners[:, example, None, None], fv_values[:, None], fu_values)  # [patterns, fv, fu]
        mixed_block = block[mixed]
        corner = winner.reshape(-1)[(pattern[mixed_block] * len(fv_values) + fv_class) * len(fu_values) + fu_class]
        labels_or_0 = np.concatenate([corners, np.zeros_like(corners[:1])]).reshape(-1)  # corner 4: none
        px_label[mixed] = labels_or_0[corner * corners.shape[1] + mixed_block]
    labelled = px_label > 0
    at = at[labelled]
    label.reshape(-1)[at] = px_label[labelled]
    return label, at, seg_px[labelled]


def _vote_corner(corner_labels: np.ndarray, fv: np.ndarray, fu: np.ndarray) -> np.ndarray:
    """Which of four corner cells wins a pixel: the first whose label carries the most bilinear
    weight, 4 when none is labelled. corner_labels: [4, ...] labels at (top, left), (top, right),
    (bottom, left), (bottom, right); fv, fu: the pixel's fractions down and right (broadcasting)."""
    up, left = 1 - fv, 1 - fu
    labs = list(corner_labels)
    wts = [wt * (lab > 0) for wt, lab in zip((up * left, up * fu, fv * left, fv * fu), labs)]
    winner, best = 0, np.zeros_like(wts[0])
    for a in range(4):
        support = sum(wts[b] * (labs[b] == labs[a]) for b in range(4))   # added in corner order
        better = support > best
        winner, best = np.where(better, a, winner), np.where(better, support, best)
    return np.where(best > 0, winner, 4)


def _mask_stats(label: np.ndarray, pixels: np.ndarray, seg_px: np.ndarray,
                n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person 1..n: pixel count, mean segmentation probability and box (x0, y0, x1, y1) of their
    pixels (the box is meaningless for a person without pixels). `pixels`: the flat indices of the
    labelled pixels in raster order, `seg_px` their segmentation; the float32 sums add one term at a
    time in that order (ufunc.at), as a sum over the whole image would."""
    H, W = label.shape
    who = label.reshape(-1)[pixels]
    seg_sum = np.zeros(n + 1, np.float32)
    np.add.at(seg_sum, who, seg_px)
    ys, xs = np.divmod(pixels, W)
    # Which rows and columns each person has pixels in: their first and last are the box.
    rows = np.bincount(who * H + ys, minlength=(n + 1) * H).reshape(n + 1, H)[1:]
    cols = np.bincount(who * W + xs, minlength=(n + 1) * W).reshape(n + 1, W)[1:] > 0
    count = rows.sum(axis=1)
    rows = rows > 0
    box = np.stack([cols.argmax(1), rows.argmax(1), W - 1 - cols[:, ::-1].argmax(1), H - 1 - rows[:, ::-1].argmax(1)], 1)
    return count, seg_sum[1:] / np.maximum(count, 1).astype(np.float32), box.astype(np.float64)


@dataclass
class DecodeWork:
    """How much work one decode did, counted where each bound of DecoderConfig applies."""

    peaks_found: int = 0       # peaks above peak_threshold
    peaks_queued: int = 0      # of them, grouped: at most max_peaks
    candidates: int = 0        # people grouped: at most max_candidates
    merge_checked: int = 0     # people checked for pieces of one person: at most merge_candidates


def decode_people(maps: dict[str, torch.Tensor], *, stride: int, radius: float, config: DecoderConfig,
                  image_size: tuple[int, int], work: DecodeWork | None = None) -> PoseSegResult:
    """Decode ACTIVATED maps ([C, h, w], any device) of one image into people, in input pixels.
    `work`, when given, is filled with what this decode did (DecodeWork).

    Decoding runs on the host: the maps are small, and NumPy (or a torch CPU op) on them costs far
    less than dispatching device kernels for every step.
    """
    work = work if work is not None else DecodeWork()
    H, W = image_size
    host = {k: v.detach().float().cpu() for k, v in maps.items()}
    heat, short = host["heatmap"].numpy(), host["short"].numpy()
    hough = _gaussian_blur(hough_maps(heat, short, stride=stride, radius=radius), config.pgo_sigmas)
    pk, pi, pj = _peaks(hough, config.peak_threshold)
    work.peaks_found = len(pk)
    if not len(pk):
        return PoseSegResult.empty(H, W)
    order = np.argsort(-hough[pk, pi, pj], kind="stable")[: config.max_peaks]  # best first; ties in map order
    pk, pi, pj = pk[order], pi[order], pj[order]
    work.peaks_queued = len(pk)
    field = _VoteField(heat, short, host["mid"].numpy(), stride=stride, radius=radius,
                       bandwidth=config.vote_bandwidth * max(H, W) / REFERENCE_INPUT)
    off = (stride - 1) / 2.0
    peak_pos = np.stack([pj * stride + off, pi * stride + off], axis=1).astype(np.float64)
    peak_pos = field.refine(pk, peak_pos, config.refine_steps + 1)
    match_radius = config.match_radius * max(H, W) / REFERENCE_INPUT
    kp, state = _group(field, pk, peak_pos, config, match_radius)
    work.candidates = len(kp)
    if not len(kp):
        return PoseSegResult.empty(H, W)
    if config.merge_distance > 0:
        n = config.merge_candidates
        work.merge_checked = min(n, len(kp))
        merged, merged_state = _merge_pieces(kp[:n], state[:n], host["seg"][0].numpy(), host["embed"].numpy(),
                                             stride=stride, seg_threshold=config.seg_threshold,
                                             max_distance=config.merge_distance)
        kp, state = np.concatenate([merged, kp[n:]]), np.concatenate([merged_state, state[n:]])

    # Final sub-cell position: one more KeyCentroid step at every keypoint.
    # Keypoints without evidence (never reached, or unlabelled per the mid-range offsets) stay
    # where they are: refining them would pull them onto somebody else's keypoint.
    types = np.tile(np.arange(NUM_KEYPOINTS), len(kp))
    known = ((state != _UNSET) & (state != _UNKNOWN)).reshape(-1)
    flat = kp.reshape(-1, 2).copy()
    flat[known] = field.refine(types[known], flat[known], 1)
    kp = flat.reshape(kp.shape)
    ok = state == _FOUND
    scale = _person_scale(kp, ok, floor=radius)
    # Only found and guessed keypoints score; the others are 0 (no evidence, or someone else's).
    scored = (state == _FOUND) | (state == _GUESSED)
    conf = np.zeros(state.shape)
    falloff = 2 * OKS_SIGMAS[None].astype(np.float64) * scale[:, None]
    conf[scored] = field.confidence(np.nonzero(scored)[1], kp[scored], falloff[scored])
    scores = _soft_nms_scores(kp, conf, config.peak_nms_radius)
    keep = np.argsort(-scores, kind="stable")
    keep = keep[scores[keep] >= config.min_person_score][: config.max_people]
    kp, conf, scores, scale = kp[keep], conf[keep], scores[keep], scale[keep]

    # Dynamic MaskCentroids: confident keypoints no other person also has (a shared one cannot
    # tell the two apart).
    close = _same_keypoint_close(kp, config.peak_nms_radius)                         # [P, P, 17]
    close &= ~np.eye(len(kp), dtype=bool)[..., None]
    shared = (close & (conf[:, None] > 0)).any(axis=0)
    centroid_w = np.where((conf >= config.centroid_min_confidence) & ~shared, conf, 0.0)
    seg = host["seg"][0].numpy()
    cells = _cell_labels(seg, host["embed"].numpy(), kp, centroid_w, scale, stride=stride, config=config)
    label, pixels, seg_px = upsample_labels(seg, cells, stride, (H, W), config.seg_threshold)

    count, mask_scores, mask_box = _mask_stats(label, pixels, seg_px, len(kp))
    has_mask = count > 0
    conf = np.where(conf >= config.keypoint_threshold, conf, 0.0)
    kp_ok = (conf > 0)[..., None]
    kp_box = np.concatenate([np.where(kp_ok, kp, np.inf).min(1), np.where(kp_ok, kp, -np.inf).max(1)], 1)
    boxes = np.where(has_mask[:, None],
                     np.concatenate([np.minimum(kp_box[:, :2], mask_box[:, :2]), np.maximum(kp_box[:, 2:], mask_box[:, 2:])], 1),
                     kp_box)
    boxes = np.where(np.isfinite(boxes), boxes, np.concatenate([kp.min(1), kp.max(1)], 1))

    result = PoseSegResult(
        keypoints=np.concatenate([kp, conf[..., None]], axis=2).astype(np.float32),
        scores=scores.astype(np.float32),
        boxes=boxes.astype(np.float32),
        label_map=label.astype(np.uint16),
        mask_scores=mask_scores.astype(np.float32),
    )
    return rescore(result, config.score_weights) if config.score_weights else result


# What the learned person score (DecoderConfig.score_weights) weighs, per person. Every feature is the
# same at any image scale, so weights fitted on results in image pixels apply inside the decoder.
PERSON_FEATURES = ("one", "score", *(f"confidence of the {name.replace('_', ' ')}" for name in KEYPOINT_NAMES),
                   "share of keypoints found", "mean confidence of those found", "mask score",
                   "log(sqrt(box area) / longer image side)", "mask pixels / box area", "score squared",
                   "score x log size")


def person_features(result: PoseSegResult) -> np.ndarray:
    """[N, len(PERSON_FEATURES)] float64: the features of each person of `result` (decoder scores)."""
    conf = result.keypoints[..., 2].astype(np.float64)
    scores = result.scores.astype(np.float64)
    found = (conf > 0).sum(1)
    mean_found = np.where(found > 0, conf.sum(1) / np.maximum(found, 1), 0.0)
    # A box spans the pixels from its first corner to its second, both included.
    width = (result.boxes[:, 2] - result.boxes[:, 0] + 1).astype(np.float64)
    height = (result.boxes[:, 3] - result.boxes[:, 1] + 1).astype(np.float64)
    size = np.log(np.sqrt(width * height) / max(result.label_map.shape))
    labelled = result.label_map[result.label_map > 0]
    pixels = np.bincount(labelled, minlength=len(result) + 1)[1:len(result) + 1]
    return np.column_stack([np.ones(len(result)), scores, conf, found / NUM_KEYPOINTS, mean_found,
                            result.mask_scores.astype(np.float64), size, pixels / (width * height),
                            scores ** 2, scores * size])


def rescore(result: PoseSegResult, weights) -> PoseSegResult:
    """`result` with learned person scores (person_features @ weights, clipped to [0, 1]), people
    re-sorted by them and the label map renumbered to match (label i + 1 is still person i)."""
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(PERSON_FEATURES),):
        raise ValueError(f"score_weights holds {weights.size} weights; a person has {len(PERSON_FEATURES)} "
                         f"features (kdc_model.inference.decode.PERSON_FEATURES)")
    if not len(result):
        return result
    scores = np.clip(person_features(result) @ weights, 0.0, 1.0)
    order = np.argsort(-scores, kind="stable")
    relabel = np.zeros(len(result) + 1, np.uint16)
    relabel[order + 1] = np.arange(1, len(result) + 1)
    return PoseSegResult(keypoints=result.keypoints[order], scores=scores[order].astype(np.float32),
                         boxes=result.boxes[order], label_map=relabel[result.label_map],
                         mask_scores=result.mask_scores[order])


_compiled = False


def compile_decoder() -> None:
    """Decode a tiny map set once, so numba compiles the decoder's loops (decode_loops) now, or loads
    them from its cache, rather than on a predictor's first frame (seconds, once per machine)."""
    global _compiled
    if _compiled:
        return
    side, stride = 64, 8
    cells = side // stride
    # Every keypoint type in one disk whose cells all point at its centre: peaks, and a walk from each.
    heat = torch.zeros(NUM_KEYPOINTS, cells, cells)
    heat[:, 2:7, 2:7] = 1.0
    short = torch.zeros(2 * NUM_KEYPOINTS, cells, cells)
    towards = (4 - torch.arange(cells, dtype=torch.float32)) * stride
    short[0::2, 2:7, 2:7] = towards[2:7]
    short[1::2, 2:7, 2:7] = towards[2:7, None]
    maps = {"heatmap": heat, "short": short,
            "mid": torch.zeros(2 * len(DIRECTED_EDGES), cells, cells), "seg": heat[:1].clone(),
            "embed": torch.zeros(2 * NUM_KEYPOINTS, cells, cells)}
    decode_people(maps, stride=stride, radius=16.0, config=DecoderConfig(), image_size=(side, side))
    _compiled = True
