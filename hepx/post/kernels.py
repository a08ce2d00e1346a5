"""Numba kernels of the post-processing: reductions over offsets and flat arrays.

Every kernel works on flat NumPy arrays plus offsets (``offsets[e]:offsets[e + 1]`` are the
items of event ``e``); there is no Python loop over events. All kernels are compiled with
``cache=True`` and are single-threaded. :mod:`hepx.post.reference` holds a pure awkward/NumPy
version of each one, used by the tests and the benchmark.

Conventions
-----------
* Importance: higher = more important, finite (NaN is refused by the wrappers in
  :mod:`hepx.post`).
* Ranking inside an event: by importance, descending; ties keep the original order (hit or track
  index), the same as ``ak.argsort(..., ascending=False, stable=True)``.
* Hits with a negative track index belong to no track and are skipped by per-track reductions.
* An empty group gives ``count 0``, ``mean NaN``, ``max NaN``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "group_stats",
    "main_axis_angle",
    "topk_mask",
    "topk_track_fraction",
    "topn_signal_efficiency",
    "track_reduce",
]


@numba.njit(cache=True, nogil=True)
def track_reduce(hit_offsets, track_offsets, hit_track, importance):
    """Per-track count, mean and max of the importance of its hits.

    Args:
        hit_offsets: int64 [E + 1], hits of event ``e`` are ``hit_offsets[e]:hit_offsets[e+1]``.
        track_offsets: int64 [E + 1], same for tracks.
        hit_track: int [H], index of the hit's track *inside its event* (< 0: no track).
        importance: float [H].

    Returns:
        ``(count int64 [T], mean float64 [T], max float64 [T])`` with ``T = track_offsets[-1]``.
    """
    n_tracks = track_offsets[-1]
    # One interleaved row per track (count, sum, max): one cache line per update.
    acc = np.zeros((n_tracks, 3), dtype=np.float64)
    for g in range(n_tracks):
        acc[g, 2] = -np.inf
    for e in range(len(hit_offsets) - 1):
        t0 = track_offsets[e]
        nt = track_offsets[e + 1] - t0
        for i in range(hit_offsets[e], hit_offsets[e + 1]):
            t = np.int64(hit_track[i])
            if t < 0 or t >= nt:
                continue
            g = t0 + t
            v = importance[i]
            acc[g, 0] += 1.0
            acc[g, 1] += v
            acc[g, 2] = max(acc[g, 2], v)
    count = np.empty(n_tracks, dtype=np.int64)
    mean = np.empty(n_tracks, dtype=np.float64)
    best = np.empty(n_tracks, dtype=np.float64)
    for g in range(n_tracks):
        c = acc[g, 0]
        count[g] = np.int64(c)
        if c > 0:
            mean[g] = acc[g, 1] / c
            best[g] = acc[g, 2]
        else:
            mean[g] = np.nan
            best[g] = np.nan
    return count, mean, best


@numba.njit(cache=True, nogil=True)
def _argsort_desc(values, a, n, order, tmp):
    """Stable descending argsort of ``values[a:a+n]`` into ``order[:n]`` (bottom-up merge sort,
    insertion sort on runs of 16; ``tmp`` is scratch of the same size). No allocation."""
    for i in range(n):
        order[i] = i
    run = 16
    for lo in range(0, n, run):  # insertion sort of each run (stable)
        hi = min(lo + run, n)
        for i in range(lo + 1, hi):
            j = i
            cur = order[i]
            vc = values[a + cur]
            while j > lo and values[a + order[j - 1]] < vc:
                order[j] = order[j - 1]
                j -= 1
            order[j] = cur
    width = run
    src, dst = order, tmp
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if values[a + src[j]] > values[a + src[i]]:  # strict: ties keep the left item
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    if src is not order:
        for i in range(n):
            order[i] = src[i]


@numba.njit(cache=True, nogil=True)
def _event_ranks(offsets, values):
    """Rank (0 = highest) of every item inside its event; ties keep the original order."""
    rank = np.empty(len(values), dtype=np.int64)
    longest = 0
    for e in range(len(offsets) - 1):
        longest = max(longest, offsets[e + 1] - offsets[e])
    order = np.empty(longest, dtype=np.int64)
    tmp = np.empty(longest, dtype=np.int64)
    for e in range(len(offsets) - 1):
        a = offsets[e]
        n = offsets[e + 1] - a
        if n <= 0:
            continue
        _argsort_desc(values, a, n, order, tmp)
        for r in range(n):
            rank[a + order[r]] = r
    return rank


@numba.njit(cache=True, nogil=True)
def topk_mask(offsets, values, k):
    """True for the ``k[e]`` most important items of each event (ties: the earlier items first).

    Same set as ``rank < k`` with the stable descending ranking, found in O(n) per event
    (``np.partition`` for the k-th largest value, then one pass for the ties).
    """
    out = np.zeros(len(values), dtype=np.bool_)
    for e in range(len(offsets) - 1):
        a = offsets[e]
        n = offsets[e + 1] - a
        ke = k[e]
        if n <= 0 or ke <= 0:
            continue
        if ke >= n:
            out[a : a + n] = True
            continue
        thr = np.partition(values[a : a + n], n - ke)[n - ke]  # k-th largest
        above = 0
        for i in range(a, a + n):
            if values[i] > thr:
                out[i] = True
                above += 1
        left = ke - above  # ties at the threshold, earliest first
        for i in range(a, a + n):
            if left <= 0:
                break
            if values[i] == thr:
                out[i] = True
                left -= 1
    return out


@numba.njit(cache=True, nogil=True)
def topk_track_fraction(hit_offsets, track_offsets, hit_track, importance, k):
    """Per track: fraction of its hits that are among the ``k[e]`` most important hits of the event.

    Args:
        k: int64 [E], how many hits form the event's top set (ties: earlier hits first).

    Returns:
        float64 [T] (NaN for a track without hits).
    """
    top = topk_mask(hit_offsets, importance, k)
    n_tracks = track_offsets[-1]
    acc = np.zeros((n_tracks, 2), dtype=np.float64)
    for e in range(len(hit_offsets) - 1):
        t0 = track_offsets[e]
        nt = track_offsets[e + 1] - t0
        for i in range(hit_offsets[e], hit_offsets[e + 1]):
            t = np.int64(hit_track[i])
            if t < 0 or t >= nt:
                continue
            acc[t0 + t, 0] += 1.0
            if top[i]:
                acc[t0 + t, 1] += 1.0
    out = np.empty(n_tracks, dtype=np.float64)
    for g in range(n_tracks):
        out[g] = acc[g, 1] / acc[g, 0] if acc[g, 0] > 0 else np.nan
    return out


@numba.njit(cache=True, nogil=True)
def topn_signal_efficiency(track_offsets, track_score, is_signal, n):
    """Per event: fraction of the true signal tracks found among the ``n[e]`` best-ranked tracks.

    Efficiency = (signal tracks in the top ``n[e]``) / min(``n[e]``, signal tracks); NaN for an
    event without signal tracks (or ``n[e] <= 0``).
    """
    n_events = len(track_offsets) - 1
    rank = _event_ranks(track_offsets, track_score)
    out = np.empty(n_events, dtype=np.float64)
    for e in range(n_events):
        found = 0
        total = 0
        for j in range(track_offsets[e], track_offsets[e + 1]):
            if is_signal[j]:
                total += 1
                if rank[j] < n[e]:
                    found += 1
        denom = min(total, n[e])
        out[e] = found / denom if denom > 0 else np.nan
    return out


@numba.njit(cache=True, nogil=True)
def group_stats(codes, importance, n_groups):
    """Count, mean, standard deviation and max of the importance per group code (0..n_groups-1).

    Codes outside the range are skipped.
    """
    count = np.zeros(n_groups, dtype=np.int64)
    total = np.zeros(n_groups, dtype=np.float64)
    total2 = np.zeros(n_groups, dtype=np.float64)
    best = np.full(n_groups, -np.inf, dtype=np.float64)
    for i in range(len(codes)):
        c = codes[i]
        if c < 0 or c >= n_groups:
            continue
        v = importance[i]
        count[c] += 1
        total[c] += v
        total2[c] += v * v
        if v > best[c]:
            best[c] = v
    mean = np.full(n_groups, np.nan)
    std = np.full(n_groups, np.nan)
    for c in range(n_groups):
        if count[c] > 0:
            m = total[c] / count[c]
            mean[c] = m
            std[c] = np.sqrt(max(total2[c] / count[c] - m * m, 0.0))
        else:
            best[c] = np.nan
    return count, mean, std, best


@numba.njit(cache=True, nogil=True)
def _jacobi_main_axis(m, v, axis):
    """Unit eigenvector of the largest eigenvalue of the symmetric matrix ``m`` (cyclic Jacobi),
    written to ``axis``. ``m`` is overwritten; ``v`` is d x d scratch. No allocation."""
    d = m.shape[0]
    for p in range(d):
        for q in range(d):
            v[p, q] = 1.0 if p == q else 0.0
    for _ in range(64):
        off = 0.0
        scale = 0.0
        for p in range(d):
            scale += m[p, p] * m[p, p]
            for q in range(p + 1, d):
                off += m[p, q] * m[p, q]
        if off <= 1e-30 * max(scale, 1e-300):
            break
        for p in range(d - 1):
            for q in range(p + 1, d):
                apq = m[p, q]
                if apq == 0.0:
                    continue
                theta = (m[q, q] - m[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(d):  # columns p, q
                    mkp = m[k, p]
                    mkq = m[k, q]
                    m[k, p] = c * mkp - s * mkq
                    m[k, q] = s * mkp + c * mkq
                for k in range(d):  # rows p, q
                    mpk = m[p, k]
                    mqk = m[q, k]
                    m[p, k] = c * mpk - s * mqk
                    m[q, k] = s * mpk + c * mqk
                for k in range(d):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    j = 0
    for p in range(1, d):
        if m[p, p] > m[j, j]:
            j = p
    for k in range(d):
        axis[k] = v[k, j]


@numba.njit(cache=True, nogil=True)
def _main_axis_3x3(m, axis):
    """Main axis of a symmetric 3x3 matrix in closed form (trigonometric eigenvalue, then the
    largest cross product of two rows of ``A - lambda_max I``). Returns False when the largest
    eigenvalue is (nearly) degenerate, so the caller falls back to Jacobi."""
    a00, a11, a22 = m[0, 0], m[1, 1], m[2, 2]
    a01, a02, a12 = m[0, 1], m[0, 2], m[1, 2]
    p1 = a01 * a01 + a02 * a02 + a12 * a12
    q = (a00 + a11 + a22) / 3.0
    p2 = (a00 - q) ** 2 + (a11 - q) ** 2 + (a22 - q) ** 2 + 2.0 * p1
    if p2 <= 0.0:
        return False
    p = np.sqrt(p2 / 6.0)
    b00, b11, b22 = (a00 - q) / p, (a11 - q) / p, (a22 - q) / p
    b01, b02, b12 = a01 / p, a02 / p, a12 / p
    r = 0.5 * (
        b00 * (b11 * b22 - b12 * b12)
        - b01 * (b01 * b22 - b12 * b02)
        + b02 * (b01 * b12 - b11 * b02)
    )
    r = min(max(r, -1.0), 1.0)
    lam = q + 2.0 * p * np.cos(np.arccos(r) / 3.0)
    r0x, r0y, r0z = a00 - lam, a01, a02
    r1x, r1y, r1z = a01, a11 - lam, a12
    r2x, r2y, r2z = a02, a12, a22 - lam
    best = -1.0
    for c in range(3):
        if c == 0:
            cx, cy, cz = r0y * r1z - r0z * r1y, r0z * r1x - r0x * r1z, r0x * r1y - r0y * r1x
        elif c == 1:
            cx, cy, cz = r0y * r2z - r0z * r2y, r0z * r2x - r0x * r2z, r0x * r2y - r0y * r2x
        else:
            cx, cy, cz = r1y * r2z - r1z * r2y, r1z * r2x - r1x * r2z, r1x * r2y - r1y * r2x
        nn = cx * cx + cy * cy + cz * cz
        if nn > best:
            best = nn
            axis[0], axis[1], axis[2] = cx, cy, cz
    if best <= 1e-12 * (p * p) ** 2:  # two largest eigenvalues (nearly) equal
        return False
    norm = np.sqrt(best)
    axis[0] /= norm
    axis[1] /= norm
    axis[2] /= norm
    return True


@numba.njit(cache=True, nogil=True)
def main_axis_angle(sigma, direction):
    """Angle in degrees, in [0, 90], between each point's main noise axis and a direction.

    Args:
        sigma: float [N, d, d] symmetric covariances (LRI-Gaussian); the main axis is the
            eigenvector of the largest eigenvalue (its sign is arbitrary, hence the fold to 90).
            d = 3 is solved in closed form, other d (and near-degenerate 3 x 3) by Jacobi.
        direction: float [N, d] (need not be normalised); a zero vector gives NaN.
    """
    n = sigma.shape[0]
    d = sigma.shape[1]
    out = np.empty(n, dtype=np.float64)
    m = np.empty((d, d), dtype=np.float64)
    v = np.empty((d, d), dtype=np.float64)
    axis = np.empty(d, dtype=np.float64)
    for i in range(n):
        for p in range(d):
            for q in range(d):
                m[p, q] = sigma[i, p, q]
        if not (d == 3 and _main_axis_3x3(m, axis)):
            _jacobi_main_axis(m, v, axis)
        dot = 0.0
        nrm = 0.0
        for k in range(d):
            dot += axis[k] * direction[i, k]
            nrm += direction[i, k] * direction[i, k]
        if nrm <= 0.0:
            out[i] = np.nan
            continue
        c = min(abs(dot) / np.sqrt(nrm), 1.0)
        out[i] = np.degrees(np.arccos(c))
    return out
