"""Neighbour graphs on batched point clouds (kNN and radius), with periodic axes.

Conventions (PyTorch Geometric, ``flow="source_to_target"``):

* ``edge_index[1]`` is the centre ``i``, ``edge_index[0]`` its neighbour ``j``; messages flow
  ``j -> i``.
* Edges only join points of the same event (``batch`` value). ``batch`` must be sorted, as it is
  in a PyG :class:`~torch_geometric.data.Batch`.
* ``period[d]`` (e.g. ``[None, 2 * pi]`` for ``(eta, phi)``) makes axis ``d`` periodic: the
  difference ``p_i - p_j`` along it is wrapped into ``(-period / 2, period / 2]`` (minimum image).
* ``loop=True`` makes every point its own neighbour; the self-loop is always kept and counts
  among the ``k`` (kNN) or ``max_num_neighbors`` (radius) neighbours.
* Neighbours are ranked by the wrapped squared Euclidean distance, ties broken by the lower point
  index, so the edge *set* is fully defined and both backends return the same set. The radius graph
  keeps the ``max_num_neighbors`` *nearest* points with ``|p_i - p_j| <= r`` (torch-cluster alone
  keeps an arbitrary subset).

Backends: ``"torch"`` (dense per-event distance blocks, vectorised, no extension needed),
``"cluster"`` (``torch_cluster`` candidates, re-ranked exactly) and ``"auto"``: ``"cluster"`` when
``torch_cluster`` is importable with kernels for the points' device (a CPU-only build on CUDA
points: ``"torch"``) *and* some event has more than 200 points, else ``"torch"`` (the
dense search is O(Nmax^2) per event but as fast or faster up to a few hundred points per event;
both backends return the same edge set, so the choice only affects speed).
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from hepx.errors import ConfigError, InputError

__all__ = [
    "cluster_available",
    "edge_vectors",
    "knn_graph",
    "radius_graph",
    "wrap_periodic",
]

_BACKENDS = ("auto", "torch", "cluster")
# Elements of the [events, Nmax, Nmax, D] difference block the torch backend holds at once.
_BLOCK_ELEMENTS = 1 << 20
# "auto" uses torch_cluster only when some event has more points than this: below it the dense
# O(Nmax^2) backend is as fast or faster (benchmarks/graph_build.py; docs: results).
_AUTO_CLUSTER_MIN_POINTS = 200


def cluster_available(device: torch.device | str | None = None) -> bool:
    """Whether the optional ``torch_cluster`` extension can be imported and, for a ``device``,
    has kernels for it: CPU always, CUDA only if torch-cluster was compiled with CUDA
    (:func:`_cluster_has_cuda`), no other device."""
    if importlib.util.find_spec("torch_cluster") is None:
        return False
    kind = None if device is None else torch.device(device).type
    return kind in (None, "cpu") or (kind == "cuda" and _cluster_has_cuda())


@functools.cache
def _cluster_has_cuda() -> bool:
    """Whether torch-cluster was compiled with CUDA (a CPU-only build reports -1)."""
    import torch_cluster

    return getattr(torch_cluster, "cuda_version", -1) != -1


def wrap_periodic(delta: Tensor, period: Sequence[float | None] | None) -> Tensor:
    """Wrap coordinate differences along periodic axes into ``(-period/2, period/2]``.

    Args:
        delta: differences ``[..., D]``.
        period: ``D`` entries, ``None`` for a non-periodic axis; ``None`` for no periodic axis.

    Returns:
        ``[..., D]``; non-periodic axes are returned unchanged. The wrap has unit derivative, so
        gradients with respect to positions pass through unchanged.
    """
    if period is None or all(p is None for p in period):
        return delta
    cols = []
    for d, p in enumerate(period):
        col = delta[..., d]
        if p is not None:
            half = 0.5 * float(p)
            col = half - torch.remainder(half - col, float(p))
        cols.append(col)
    return torch.stack(cols, dim=-1)


def edge_vectors(
    pos: Tensor, edge_index: Tensor, period: Sequence[float | None] | None = None
) -> Tensor:
    """Edge vectors ``p_i - p_j`` (centre minus neighbour) with the periodic wrap.

    Args:
        pos: positions ``[N, D]``.
        edge_index: ``[2, E]`` with ``edge_index[0] = j`` (neighbour), ``edge_index[1] = i`` (centre).
        period: per-axis period or ``None`` (see :func:`wrap_periodic`).

    Returns:
        ``[E, D]``; differentiable with respect to ``pos``.
    """
    return wrap_periodic(pos[edge_index[1]] - pos[edge_index[0]], period)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_inputs(
    pos: Tensor,
    batch: Tensor | None,
    period: Sequence[float | None] | None,
    backend: str,
) -> tuple[Tensor, list[float | None] | None, str]:
    if not isinstance(pos, Tensor) or pos.dim() != 2:
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
        raise InputError(f"pos must be a 2-D tensor [N, D], got {shape}")
    if not pos.is_floating_point():
        raise InputError(f"pos must be a floating-point tensor, got dtype {pos.dtype}")
    if not bool(torch.isfinite(pos).all()):
        raise InputError("pos contains NaN or infinite coordinates")
    n, dim = pos.shape
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    else:
        if batch.dim() != 1 or batch.numel() != n:
            raise InputError(
                f"batch must be a 1-D tensor of length {n}, got shape {tuple(batch.shape)}"
            )
        batch = batch.long()
        if n > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise InputError("batch must be sorted (non-decreasing), as in a PyG Batch")
        if n > 0 and int(batch[0]) < 0:
            raise InputError("batch values must be non-negative")
    per: list[float | None] | None = None
    if period is not None:
        per = list(period)
        if len(per) != dim:
            raise ConfigError(f"period must have one entry per coordinate ({dim}), got {len(per)}")
        for p in per:
            if p is not None and not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
                raise ConfigError(f"period entries must be None or a positive number, got {p!r}")
        per = [None if p is None else float(p) for p in per]
        if all(p is None for p in per):
            per = None
    return batch, per, _resolve_backend(backend, batch, pos.device)


def _resolve_backend(backend: str, batch: Tensor, device: torch.device) -> str:
    """The backend that builds the graph of points on ``device``: ``"auto"`` picks
    ``"cluster"`` only where torch-cluster has kernels for the device (a CPU-only build on a
    CUDA batch: hepx's torch path) and some event has more than 200 points."""
    if backend not in _BACKENDS:
        raise ConfigError(
            f"unknown graph backend {backend!r}; expected one of {', '.join(_BACKENDS)}"
        )
    if backend == "auto":
        if cluster_available(device) and batch.numel() > _AUTO_CLUSTER_MIN_POINTS:
            biggest = int(torch.bincount(batch).max())
            return "cluster" if biggest > _AUTO_CLUSTER_MIN_POINTS else "torch"
        return "torch"
    if backend == "cluster" and not cluster_available():
        raise ConfigError(
            "graph backend 'cluster' needs torch_cluster (pip install --no-build-isolation "
            "torch-cluster); use backend 'torch' or 'auto'"
        )
    if backend == "cluster" and not cluster_available(device):
        raise ConfigError(
            f"graph backend 'cluster': torch_cluster has no {device.type} kernels (a CUDA "
            "build needs nvcc: docs, Running on a GPU); use backend 'torch' or 'auto'"
        )
    return backend


def knn_graph(
    pos: Tensor,
    k: int,
    batch: Tensor | None = None,
    *,
    loop: bool = True,
    period: Sequence[float | None] | None = None,
    backend: str = "auto",
) -> Tensor:
    """k-nearest-neighbour graph of a batch of point clouds.

    Every centre ``i`` receives edges from its ``k`` nearest points ``j`` of the same event
    (itself included when ``loop``); events with fewer points give fewer edges.

    Args:
        pos: positions ``[N, D]``.
        k: number of neighbours per centre (>= 1).
        batch: event index ``[N]`` (sorted) or ``None`` for a single event.
        loop: include the self-loop ``(i, i)`` (counted among the ``k``).
        period: per-axis period (``None`` entries for non-periodic axes).
        backend: ``"auto"``, ``"torch"`` or ``"cluster"``.

    Returns:
        ``edge_index`` ``[2, E]`` (int64), rows ``(j, i)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    batch, per, backend = _check_inputs(pos, batch, period, backend)
    if pos.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    if backend == "cluster":
        return _cluster_graph(pos, batch, per, loop=loop, k=k, r=None)
    return _dense_graph(pos, batch, per, loop=loop, limit=k, r=None)


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    *,
    max_num_neighbors: int = 32,
    loop: bool = True,
    period: Sequence[float | None] | None = None,
    backend: str = "auto",
) -> Tensor:
    """Radius graph: edges from all ``j`` with ``|p_i - p_j| <= r``, the nearest
    ``max_num_neighbors`` per centre kept.

    Args:
        pos: positions ``[N, D]``.
        r: radius (> 0), in the units of ``pos``.
        batch: event index ``[N]`` (sorted) or ``None`` for a single event.
        max_num_neighbors: most neighbours per centre (the self-loop included when ``loop``).
        loop: include the self-loop ``(i, i)``.
        period: per-axis period (``None`` entries for non-periodic axes).
        backend: ``"auto"``, ``"torch"`` or ``"cluster"``.

    Returns:
        ``edge_index`` ``[2, E]`` (int64), rows ``(j, i)``.
    """
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not (r > 0 and math.isfinite(r)):
        raise ConfigError(f"r must be a positive finite number, got {r!r}")
    if (
        isinstance(max_num_neighbors, bool)
        or not isinstance(max_num_neighbors, int)
        or max_num_neighbors < 1
    ):
        raise ConfigError(
            f"max_num_neighbors must be a positive integer, got {max_num_neighbors!r}"
        )
    batch, per, backend = _check_inputs(pos, batch, period, backend)
    if pos.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    if backend == "cluster":
        return _cluster_graph(pos, batch, per, loop=loop, k=max_num_neighbors, r=float(r))
    return _dense_graph(pos, batch, per, loop=loop, limit=max_num_neighbors, r=float(r))


# --------------------------------------------------------------------------------------------
# torch backend: dense per-event blocks
# --------------------------------------------------------------------------------------------


def _squared_distance(pi: Tensor, pj: Tensor, period: list[float | None] | None) -> Tensor:
    """``|wrap(p_i - p_j)|^2`` accumulated axis by axis (``[..., D]`` inputs broadcast).

    Both backends rank neighbours with this one function, so their distances agree bit for bit.
    """
    d2 = None
    for d in range(pi.shape[-1]):
        delta = pi[..., d] - pj[..., d]
        if period is not None and period[d] is not None:
            half = 0.5 * period[d]
            delta = half - torch.remainder(half - delta, period[d])
        d2 = delta * delta if d2 is None else d2 + delta * delta
    assert d2 is not None
    return d2


_NO_EDGE = torch.iinfo(torch.int64).max


def _rank_key(d2: Tensor, j: Tensor) -> Tensor:
    """int64 ranking key ``(bits(float32(d2)) << 32) | j``.

    For non-negative float32 the IEEE bit pattern is monotone in the value, so ordering the keys
    orders by distance and breaks exact ties by the lower index ``j``. (float64 distances are
    rounded to float32 for ranking, on both backends alike.)
    """
    key = d2.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    return key.bitwise_left_shift_(32).bitwise_or_(j)


@torch.no_grad()
def _dense_graph(
    pos: Tensor,
    batch: Tensor,
    period: list[float | None] | None,
    *,
    loop: bool,
    limit: int,
    r: float | None,
) -> Tensor:
    """Dense backend: per event an ``[Nmax, Nmax]`` distance block; the ``limit`` smallest keys
    per row are selected with ``topk``.

    Candidates are ranked by :func:`_rank_key` (distance, then lower index) with one int64
    ``topk`` per row. Events are processed in
    blocks of ``~_BLOCK_ELEMENTS / (Nmax^2 D)``, so the memory stays bounded; the loop runs over
    blocks of events, never over single events or points.
    """
    pos = pos.detach()
    counts = torch.bincount(batch)
    num_events = counts.numel()
    ptr = torch.zeros(num_events, dtype=torch.long, device=pos.device)
    ptr[1:] = torch.cumsum(counts, 0)[:-1]
    nmax = int(counts.max())
    dense, mask = to_dense_batch(pos, batch, batch_size=num_events, max_num_nodes=nmax)
    ncols = min(limit, nmax)
    step = max(1, _BLOCK_ELEMENTS // (nmax * nmax * max(pos.shape[1], 1)))
    local = torch.arange(nmax, device=pos.device)
    eye = torch.eye(nmax, dtype=torch.bool, device=pos.device)
    r2 = None if r is None else r * r
    srcs, dsts = [], []
    for start in range(0, num_events, step):
        p = dense[start : start + step]  # [b, n, D]
        m = mask[start : start + step]  # [b, n]
        d2 = _squared_distance(p[:, :, None, :], p[:, None, :, :], period)  # [b, i, j]
        drop = ~m[:, None, :]
        if r2 is not None:
            drop = drop | (d2 > r2)
        key = _rank_key(d2, local)
        key.masked_fill_(drop, _NO_EDGE)
        # the self-loop ranks first when kept, so a duplicate point never displaces it
        key.masked_fill_(eye, -1 if loop else _NO_EDGE)
        vals, idx = torch.topk(key, ncols, dim=-1, largest=False, sorted=False)
        keep = vals != _NO_EDGE
        keep &= m[:, :, None]
        ev, centre, col = keep.nonzero(as_tuple=True)
        offset = ptr[start + ev]
        srcs.append(idx[ev, centre, col] + offset)
        dsts.append(centre + offset)
    return torch.stack([torch.cat(srcs), torch.cat(dsts)], dim=0)


# --------------------------------------------------------------------------------------------
# cluster backend: torch_cluster candidates (with periodic ghost copies), exact re-ranking
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def _cluster_graph(
    pos: Tensor,
    batch: Tensor,
    period: list[float | None] | None,
    *,
    loop: bool,
    k: int,
    r: float | None,
) -> Tensor:
    """``torch_cluster`` backend.

    Periodic axes: coordinates are first reduced into ``[0, period)`` and every point gets ghost
    copies shifted by ``-period`` and ``+period`` (``3^p`` copies for ``p`` periodic axes), so the
    nearest copy of ``j`` realises the minimum-image distance. Enough candidates are requested that
    the exact set survives (kNN: ``(k + 2) * 3^p`` copies hold at least ``k + 2`` distinct points;
    radius: every point within a slightly enlarged radius), ghost indices are mapped back,
    duplicates removed, and the candidates are re-ranked with the same wrapped distance as the
    torch backend. kNN centres whose ``k``-th distance ties with the farthest candidate (exact
    duplicates, possibly cut arbitrarily by torch_cluster) have their events recomputed with the
    dense backend, so ties are broken by the lower index on both backends.
    """
    import torch_cluster

    pos = pos.detach()
    n = pos.shape[0]
    canon, ghosts, orig, gbatch, num_copies = _ghost_copies(pos, batch, period)
    if r is None:
        num_cand = (k + 2) * num_copies
        cand = torch_cluster.knn(ghosts, canon, num_cand, gbatch, batch)
    else:
        max_count = int(torch.bincount(batch).max())
        r_cand = r * (1.0 + 1e-4) + 1e-12  # slack for torch_cluster's own rounding
        cand = torch_cluster.radius(
            ghosts, canon, r_cand, gbatch, batch, max_num_neighbors=num_copies * max_count
        )
    centre, nb = cand[0], orig[cand[1]]
    if centre.numel() > 1 and not bool((centre[1:] >= centre[:-1]).all()):
        o = torch.argsort(centre, stable=True)
        centre, nb = centre[o], nb[o]
    d2 = _squared_distance(pos[centre], pos[nb], period)
    key = _rank_key(d2, nb)
    if r is not None:
        key.masked_fill_(d2 > r * r, _NO_EDGE)
    key.masked_fill_(centre == nb, -1 if loop else _NO_EDGE)
    # one row of candidate keys per centre; an extra column holds the guaranteed self-loop
    counts = torch.bincount(centre, minlength=n)
    col = (
        torch.arange(centre.numel(), device=pos.device) - (torch.cumsum(counts, 0) - counts)[centre]
    )
    width = int(counts.max()) + (1 if loop else 0) if centre.numel() else 1
    rows = torch.full((n, width), _NO_EDGE, dtype=torch.int64, device=pos.device)
    rows[centre, col] = key
    if loop:
        rows[:, -1] = -1
    rows = torch.sort(rows, dim=1).values
    valid = rows != _NO_EDGE
    valid[:, 1:] &= rows[:, 1:] != rows[:, :-1]  # ghost copies of one point share a key
    rank = torch.cumsum(valid, dim=1) - 1
    sel = valid & (rank < k)
    ci, cj = sel.nonzero(as_tuple=True)
    keys = rows[ci, cj]
    edges = torch.stack([torch.where(keys < 0, ci, keys & 0xFFFFFFFF), ci], dim=0)
    if r is None:
        tied = _tied_centres(rows, sel, rank, centre, d2, counts >= num_cand, k)
        if bool(tied.any()):
            edges = _recompute_events(edges, pos, batch, batch[tied], period, loop=loop, k=k)
    return edges


def _ghost_copies(pos: Tensor, batch: Tensor, period: list[float | None] | None):
    """Coordinates reduced into ``[0, period)`` on periodic axes and their ghost copies shifted
    by ``-period`` / ``+period`` (sorted by sample): ``(canon, ghosts, original index of each
    ghost, sample of each ghost, copies per point)``."""
    n, dim = pos.shape
    canon = pos.clone()
    shifts = [[0.0] * dim]
    if period is not None:
        axes = [d for d, p in enumerate(period) if p is not None]
        for d in axes:
            canon[:, d] = torch.remainder(canon[:, d], period[d])
        shifts = []
        for combo in itertools.product((0.0, -1.0, 1.0), repeat=len(axes)):
            s = [0.0] * dim
            for d, c in zip(axes, combo, strict=True):
                s[d] = c * period[d]
            shifts.append(s)
    num_copies = len(shifts)
    shift_t = torch.tensor(shifts, dtype=pos.dtype, device=pos.device)  # [S, D]
    ghosts = (canon.unsqueeze(0) + shift_t.unsqueeze(1)).reshape(num_copies * n, dim)
    orig = torch.arange(n, device=pos.device).repeat(num_copies)
    gbatch = batch.repeat(num_copies)
    order = torch.argsort(gbatch, stable=True)
    return canon, ghosts[order], orig[order], gbatch[order], num_copies


def _tied_centres(
    rows: Tensor,
    sel: Tensor,
    rank: Tensor,
    centre: Tensor,
    d2: Tensor,
    saturated: Tensor,
    k: int,
) -> Tensor:
    """kNN centres whose ``k``-th distance equals the farthest candidate's: torch_cluster may
    have cut an exact tie there arbitrarily (rare: duplicate points)."""
    n = rows.shape[0]
    farthest = torch.full((n,), -math.inf, device=rows.device)
    farthest.scatter_reduce_(0, centre, d2.float(), reduce="amax")
    kth_key = torch.full((n,), -1, dtype=torch.int64, device=rows.device)
    last = sel & (rank == k - 1)
    kth_key[last.nonzero(as_tuple=True)[0]] = rows[last]
    kth = (kth_key >> 32).to(torch.int32).view(torch.float32)
    kth = torch.where(kth_key < 0, torch.full_like(kth, -math.inf), kth)
    return saturated & (farthest <= kth * (1.0 + 1e-5))


def _recompute_events(
    edges: Tensor,
    pos: Tensor,
    batch: Tensor,
    events: Tensor,
    period: list[float | None] | None,
    *,
    loop: bool,
    k: int,
) -> Tensor:
    """Replace the kNN edges of ``events`` by the dense backend's (exact tie-breaking)."""
    in_events = torch.isin(batch, torch.unique(events))
    nodes = in_events.nonzero().squeeze(-1)
    sub_batch = torch.unique_consecutive(batch[nodes], return_inverse=True)[1]
    sub = _dense_graph(pos[nodes], sub_batch, period, loop=loop, limit=k, r=None)
    kept = edges[:, ~in_events[edges[1]]]
    return torch.cat([kept, nodes[sub]], dim=1)
