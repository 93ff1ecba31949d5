"""The decoder's inner loops (kdc_model.inference.decode), compiled: KeyCentroid voting, the
Gaussian smoothing of small maps, and the kinematic-tree walk of the grouping.

As NumPy calls these were a few hundred calls a frame on maps of a few thousand cells: the count of
calls, not the work, was the decoder's largest cost (docs/bench.md). Here they are plain loops that
numba compiles once per machine (cached beside this file, or in numba's user cache folder), and
that run without the GIL, so the node's executor thread goes on meanwhile.

The arithmetic is the NumPy version's, operation for operation: float32 where the maps are float32,
float64 sums in the order of NumPy's 9-term reductions, votes added in the order PyTorch's
index_add_ added them. Outputs are identical to the NumPy decoder's on the 47 COCO validation
photographs (a vectorised exp may round a last bit differently on other CPUs).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Keypoint states during grouping. UNKNOWN: the parent's mid-range offset is zero (the keypoint is
# unlabelled there), so there is no evidence at all; it sits at its parent and scores 0. REJECTED:
# the reverse offset says it belongs to someone else.
UNSET, FOUND, GUESSED, REJECTED, UNKNOWN = 0, 1, 2, 3, 4

_JIT = dict(nogil=True, cache=True)


@njit(**_JIT)
def hough_votes(heatmap, short, stride):
    """KeyCentroid votes [K, h, w] (float32, not yet normalised): each cell splats its heatmap value
    bilinearly at its position plus its short offset (in cells); votes off the map are dropped."""
    k, h, w = heatmap.shape
    acc = np.zeros((k, h + 2, w + 2), np.float32)   # a border of one cell: every corner has a place
    one, step = np.float32(1), np.float32(stride)
    for corner in range(4):
        down, right = corner // 2, corner % 2
        for t in range(k):
            for i in range(h):
                for j in range(w):
                    u = np.float32(j) + short[2 * t, i, j] / step
                    v = np.float32(i) + short[2 * t + 1, i, j] / step
                    col, row = np.floor(u), np.floor(v)
                    if not (col >= -1 and col <= w - 1 and row >= -1 and row <= h - 1):
                        continue
                    fu, fv = u - col, v - row
                    a = fv if down else one - fv
                    b = fu if right else one - fu
                    acc[t, int(row) + 1 + down, int(col) + 1 + right] += (a * b) * heatmap[t, i, j]
    return acc[:, 1:-1, 1:-1]


@njit(**_JIT)
def blur(maps, kernels):
    """Each channel of maps [C, h, w] (float32) convolved with its own 1-D kernel [C, 2 r + 1] along
    rows, then along columns, zero beyond the edges."""
    c, h, w = maps.shape
    taps = kernels.shape[1]
    half = taps // 2
    padded = np.zeros((c, h + 2 * half, w + 2 * half), np.float32)
    padded[:, half:half + h, half:half + w] = maps
    rows = np.empty((c, h + 2 * half, w), np.float32)
    out = np.empty((c, h, w), np.float32)
    for ch in range(c):
        for y in range(h + 2 * half):
            for x in range(w):
                value = kernels[ch, 0] * padded[ch, y, x]
                for n in range(1, taps):
                    value += kernels[ch, n] * padded[ch, y, x + n]
                rows[ch, y, x] = value
        for y in range(h):
            for x in range(w):
                value = kernels[ch, 0] * rows[ch, y, x]
                for n in range(1, taps):
                    value += kernels[ch, n] * rows[ch, y + n, x]
                out[ch, y, x] = value
    return out


@njit(**_JIT)
def _sum9(a0, a1, a2, a3, a4, a5, a6, a7, a8):
    """NumPy's add.reduce of 9 contiguous float64s: eight pairwise, then the ninth."""
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + a8


@njit(**_JIT)
def _reduce9(v):
    return _sum9(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])


@njit(**_JIT)
def _cells(start, x, y, off, stride, w, h, out):
    """The flat indices of the 3x3 cells around (x, y) (clamped to the map) in the plane at `start`."""
    j = min(max(np.rint((x - off) / stride), 0.0), w - 1.0)
    i = min(max(np.rint((y - off) / stride), 0.0), h - 1.0)
    base = int(j + i * (w + 2) + start)
    n = 0
    for di in range(3):
        for dj in range(3):
            out[n] = base + di * (w + 2) + dj
            n += 1


@njit(**_JIT)
def _weights(at, x, y, vote, heat, no_heat, bandwidth2, wt, dx_out, dy_out):
    """Weights of the votes at cells `at` near (x, y) into wt, their destinations into dx_out, dy_out."""
    d2 = np.empty(9)
    nearest = np.inf
    for n in range(9):
        c = at[n]
        dx_out[n], dy_out[n] = vote[0, c], vote[1, c]
        ex, ey = dx_out[n] - x, dy_out[n] - y
        d2[n] = ex * ex + ey * ey
        nearest = min(nearest, d2[n] + no_heat[c])
    for n in range(9):
        wt[n] = np.exp(max(d2[n] - nearest, 0.0) / -bandwidth2) * heat[at[n]]


@njit(**_JIT)
def _refine(start, x, y, steps, f):
    """Move (x, y) to the mean of the nearby votes, `steps` times (decode._VoteField.refine)."""
    off, stride, w, h, vote, heat, no_heat, bandwidth2 = f
    at = np.empty(9, np.int64)
    wt, dx, dy, wx, wy = np.empty(9), np.empty(9), np.empty(9), np.empty(9), np.empty(9)
    for _ in range(steps):
        _cells(start, x, y, off, stride, w, h, at)
        _weights(at, x, y, vote, heat, no_heat, bandwidth2, wt, dx, dy)
        for n in range(9):
            wx[n], wy[n] = wt[n] * dx[n], wt[n] * dy[n]
        total = _reduce9(wt)
        if total > 0:
            x, y = _reduce9(wx) / total, _reduce9(wy) / total
    return x, y


@njit(**_JIT)
def refine(types, pts, steps, heat, no_heat, vote, off, stride, w, h, bandwidth2):
    """Points [B, 2] moved `steps` times to the mean of the nearby votes of their type [B]."""
    f = (off, stride, w, h, vote, heat, no_heat, bandwidth2)
    plane = float((h + 2) * (w + 2))
    out = np.empty_like(pts)
    for n in range(len(pts)):
        out[n, 0], out[n, 1] = _refine(types[n] * plane, pts[n, 0], pts[n, 1], steps, f)
    return out


@njit(**_JIT)
def _votes(start, x, y, f, wt, cells):
    """The weights of the votes around (x, y) into wt, their cells (within the plane) into cells."""
    off, stride, w, h, vote, heat, no_heat, bandwidth2 = f
    at = np.empty(9, np.int64)
    dx, dy = np.empty(9), np.empty(9)
    _cells(start, x, y, off, stride, w, h, at)
    _weights(at, x, y, vote, heat, no_heat, bandwidth2, wt, dx, dy)
    for n in range(9):
        cells[n] = at[n] - int(start)


@njit(**_JIT)
def _follow(edge, x, y, wt, cells, mids, cell_xy, plane, min_support):
    """Mid-range proposal from the votes (wt, cells) at (x, y) along `edge`: (x, y, informative)
    (decode._VoteField.follow)."""
    s0, s1, s2, s3 = np.empty(9), np.empty(9), np.empty(9), np.empty(9)
    for n in range(9):
        at = edge * plane + cells[n]
        is_set = np.float64(mids[0, at])
        tx = np.float64(mids[1, at]) + cell_xy[0, cells[n]]
        ty = np.float64(mids[2, at]) + cell_xy[1, cells[n]]
        s0[n] = wt[n]
        s1[n] = wt[n] * is_set
        s2[n] = s1[n] * tx
        s3[n] = s1[n] * ty
    total, total_set = _reduce9(s0), _reduce9(s1)
    informative = total > 0 and total_set > min_support * total
    if not informative:
        return x, y, False
    return _reduce9(s2) / total_set, _reduce9(s3) / total_set, True


@njit(**_JIT)
def _heat_at(start, x, y, off, stride, w, h, heat):
    """Bilinear heatmap at (x, y) in the plane at `start` (decode._VoteField.heat_at)."""
    u = min(max((x - off) / stride, -1.0), float(w)) + 1.0
    v = min(max((y - off) / stride, -1.0), float(h)) + 1.0
    j0, i0 = min(np.floor(u), float(w)), min(np.floor(v), float(h))
    fu, fv = u - j0, v - i0
    base = int(j0 + i0 * (w + 2) + start)
    a0, a1, a2, a3 = heat[base], heat[base + 1], heat[base + w + 2], heat[base + w + 3]
    gu = 1 - fu
    return (1 - fv) * (gu * a0 + fu * a1) + fv * (gu * a2 + fu * a3)


@njit(**_JIT)
def walk(root_types, root_pos, peak_types, peak_pos, claimable, walk_edges, src, dst, reverse,
         heat, no_heat, vote, mids, cell_xy, off, stride, w, h, bandwidth2, refine_steps, min_support,
         consistency, match_radius):
    """Keypoints [S, 17, 2] and states [S, 17] of the walks from each root (decode._walk's contract)."""
    s, k = len(root_types), walk_edges.shape[1] + 1
    plane = (h + 2) * (w + 2)
    f = (off, stride, w, h, vote, heat, no_heat, bandwidth2)
    kp = np.zeros((s, k, 2))
    state = np.zeros((s, k), np.int64)   # UNSET
    weights, cells = np.zeros((k, 9)), np.zeros((k, 9), np.int64)
    any_claimable = claimable.any()
    for seed in range(s):
        root = root_types[seed]
        kp[seed, root, 0], kp[seed, root, 1] = root_pos[seed, 0], root_pos[seed, 1]
        state[seed, root] = FOUND
        _votes(root * float(plane), root_pos[seed, 0], root_pos[seed, 1], f, weights[root], cells[root])
        # Breadth-first: every parent is placed before its children.
        for edge in walk_edges[root]:
            a, b = src[edge], dst[edge]
            if state[seed, a] != FOUND and state[seed, a] != GUESSED:
                continue
            px, py = kp[seed, a, 0], kp[seed, a, 1]
            start = b * float(plane)
            x, y, informative = _follow(edge, px, py, weights[a], cells[a], mids, cell_xy, plane, min_support)
            x, y = _refine(start, x, y, refine_steps, f)
            if not informative:
                x, y = px, py
            supported = informative and _heat_at(start, x, y, off, stride, w, h, heat) >= 0.5
            if informative and not supported and any_claimable:
                best, best_d2 = -1, np.inf
                for p in range(len(peak_types)):
                    if peak_types[p] == b and claimable[p]:
                        ex, ey = x - peak_pos[p, 0], y - peak_pos[p, 1]
                        d2 = ex * ex + ey * ey
                        if d2 < best_d2:
                            best, best_d2 = p, d2
                if best >= 0 and best_d2 <= match_radius * match_radius:
                    x, y = peak_pos[best, 0], peak_pos[best, 1]
                    supported = True
            _votes(start, x, y, f, weights[b], cells[b])
            bx, by, verified = _follow(reverse[edge], x, y, weights[b], cells[b], mids, cell_xy, plane, min_support)
            ex, ey = bx - px, by - py
            rejected = supported and (ex * ex + ey * ey > consistency * consistency or not verified)
            kp[seed, b, 0], kp[seed, b, 1] = x, y
            if rejected:
                state[seed, b] = REJECTED
            elif supported:
                state[seed, b] = FOUND
            elif informative:
                state[seed, b] = GUESSED
            else:
                state[seed, b] = UNKNOWN
    return kp, state
