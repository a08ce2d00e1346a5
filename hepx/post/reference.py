"""Pure awkward/NumPy versions of the kernels in :mod:`hepx.post.kernels`.

Same arguments and results as the kernels, written with jagged-array idioms (``ak.argsort``,
``ak.run_lengths``, ``ak.unflatten``, ``np.bincount``, batched ``np.linalg.eigh``): slower, but
obviously correct. The tests check the kernels against them and ``benchmarks/postprocess.py``
times both.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = [
    "group_stats",
    "main_axis_angle",
    "topk_track_fraction",
    "topn_signal_efficiency",
    "track_reduce",
]


def _jagged(offsets: np.ndarray, flat: np.ndarray) -> ak.Array:
    return ak.unflatten(np.asarray(flat), np.diff(np.asarray(offsets, dtype=np.int64)))


def _grouped_by_track(hit_offsets, track_offsets, hit_track, values):
    """Hits' values grouped per track: (global track id of each group, jagged values per group)."""
    track = _jagged(hit_offsets, np.asarray(hit_track, dtype=np.int64))
    vals = _jagged(hit_offsets, values)
    n_tr = ak.Array(np.diff(np.asarray(track_offsets, dtype=np.int64)))
    ok = (track >= 0) & (track < n_tr)
    track, vals = track[ok], vals[ok]
    order = ak.argsort(track, axis=1, stable=True)
    track, vals = track[order], vals[order]
    # global track index = first track of the event + local index
    glob = ak.flatten(track + ak.Array(np.asarray(track_offsets[:-1], dtype=np.int64)))
    runs = ak.run_lengths(glob)
    groups = ak.unflatten(ak.flatten(vals), runs)
    first = np.concatenate([[0], np.cumsum(ak.to_numpy(runs))[:-1]]).astype(np.int64)
    gid = ak.to_numpy(glob)[first] if len(glob) else np.zeros(0, np.int64)
    return gid, groups


def track_reduce(hit_offsets, track_offsets, hit_track, importance):
    """Reference of :func:`hepx.post.kernels.track_reduce` (awkward grouping)."""
    n_tracks = int(track_offsets[-1])
    gid, groups = _grouped_by_track(
        hit_offsets, track_offsets, hit_track, np.asarray(importance, np.float64)
    )
    count = np.zeros(n_tracks, np.int64)
    mean = np.full(n_tracks, np.nan)
    best = np.full(n_tracks, np.nan)
    count[gid] = ak.to_numpy(ak.num(groups, axis=1))
    mean[gid] = ak.to_numpy(ak.mean(groups, axis=1))
    best[gid] = ak.to_numpy(ak.max(groups, axis=1))
    return count, mean, best


def event_ranks(offsets, values) -> np.ndarray:
    """Rank (0 = highest) of each item inside its event, ties in original order."""
    vals = _jagged(offsets, values)
    order = ak.argsort(vals, axis=1, ascending=False, stable=True)
    rank = ak.argsort(order, axis=1)  # inverse permutation
    return ak.to_numpy(ak.flatten(rank)).astype(np.int64)


def topk_track_fraction(hit_offsets, track_offsets, hit_track, importance, k):
    """Reference of :func:`hepx.post.kernels.topk_track_fraction`."""
    n_tracks = int(track_offsets[-1])
    rank = _jagged(hit_offsets, event_ranks(hit_offsets, importance))
    in_top = ak.flatten(rank < ak.Array(np.asarray(k, np.int64)))
    gid, groups = _grouped_by_track(
        hit_offsets, track_offsets, hit_track, ak.to_numpy(in_top).astype(np.float64)
    )
    out = np.full(n_tracks, np.nan)
    out[gid] = ak.to_numpy(ak.mean(groups, axis=1))
    return out


def topn_signal_efficiency(track_offsets, track_score, is_signal, n):
    """Reference of :func:`hepx.post.kernels.topn_signal_efficiency`."""
    rank = _jagged(track_offsets, event_ranks(track_offsets, track_score))
    sig = _jagged(track_offsets, np.asarray(is_signal, bool))
    n = np.asarray(n, np.int64)
    found = ak.to_numpy(ak.sum(sig & (rank < ak.Array(n)), axis=1))
    total = ak.to_numpy(ak.sum(sig, axis=1))
    denom = np.minimum(total, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, found / np.maximum(denom, 1), np.nan)


def group_stats(codes, importance, n_groups):
    """Reference of :func:`hepx.post.kernels.group_stats` (``np.bincount``)."""
    codes = np.asarray(codes, np.int64)
    v = np.asarray(importance, np.float64)
    ok = (codes >= 0) & (codes < n_groups)
    codes, v = codes[ok], v[ok]
    count = np.bincount(codes, minlength=n_groups).astype(np.int64)
    s1 = np.bincount(codes, weights=v, minlength=n_groups)
    s2 = np.bincount(codes, weights=v * v, minlength=n_groups)
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, codes, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        std = np.where(count > 0, np.sqrt(np.maximum(s2 / count - mean**2, 0.0)), np.nan)
    best[count == 0] = np.nan
    return count, mean, std, best


def main_axis_angle(sigma, direction):
    """Reference of :func:`hepx.post.kernels.main_axis_angle` (batched ``np.linalg.eigh``)."""
    sigma = np.asarray(sigma, np.float64)
    direction = np.asarray(direction, np.float64)
    if len(sigma) == 0:
        return np.zeros(0)
    _, vecs = np.linalg.eigh(sigma)
    axis = vecs[:, :, -1]  # eigh sorts eigenvalues ascending
    norm = np.linalg.norm(direction, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.abs(np.einsum("nd,nd->n", axis, direction)) / norm
    out = np.degrees(np.arccos(np.minimum(c, 1.0)))
    out[norm <= 0] = np.nan
    return out
