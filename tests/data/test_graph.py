"""Tests of hepx.data.graph: kNN / radius graphs, both backends, periodic axes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hepx.data.graph import edge_vectors, knn_graph, radius_graph, wrap_periodic
from hepx.errors import ConfigError, InputError

torch.set_num_threads(1)
TWO_PI = 2 * math.pi


# ------------------------------------------------------------------------------------------
# brute-force reference (plain loops)
# ------------------------------------------------------------------------------------------


def brute_force(pos, batch, *, k=None, r=None, max_nn=32, loop=True, period=None):
    """Set of (j, i) edges by exhaustive search; same ranking rule as the spec
    (self first when loop, then distance, then lower index)."""
    p = pos.double().numpy()
    b = batch.numpy()
    n, dim = p.shape
    edges = set()
    for i in range(n):
        cand = []
        for j in range(n):
            if b[j] != b[i]:
                continue
            if i == j:
                if loop:
                    cand.append((-1.0, j))
                continue
            d2 = 0.0
            for d in range(dim):
                delta = p[i, d] - p[j, d]
                if period is not None and period[d] is not None:
                    per = period[d]
                    delta = per / 2 - ((per / 2 - delta) % per)
                d2 += delta * delta
            if r is not None and d2 > r * r:
                continue
            cand.append((d2, j))
        cand.sort()
        limit = k if k is not None else max_nn
        for _, j in cand[:limit]:
            edges.add((j, i))
    return edges


def as_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def random_cloud(seed, sizes, dim, periodic):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    pos = torch.rand(n, dim, generator=g) * 2 - 1
    if periodic:
        pos[:, -1] = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    period = [None] * (dim - 1) + [TWO_PI] if periodic else None
    return pos, batch, period


CASES = [
    pytest.param(dict(kind="knn", k=4), id="knn4"),
    pytest.param(dict(kind="knn", k=12), id="knn12-more-than-some-events"),
    pytest.param(dict(kind="radius", r=0.6, max_nn=32), id="radius"),
    pytest.param(dict(kind="radius", r=0.9, max_nn=3), id="radius-max-binding"),
]


def build(pos, batch, case, loop, period, backend):
    if case["kind"] == "knn":
        return knn_graph(pos, case["k"], batch, loop=loop, period=period, backend=backend)
    return radius_graph(
        pos,
        case["r"],
        batch,
        max_num_neighbors=case["max_nn"],
        loop=loop,
        period=period,
        backend=backend,
    )


def reference(pos, batch, case, loop, period):
    if case["kind"] == "knn":
        return brute_force(pos, batch, k=case["k"], loop=loop, period=period)
    return brute_force(pos, batch, r=case["r"], max_nn=case["max_nn"], loop=loop, period=period)


# ------------------------------------------------------------------------------------------
# torch backend vs brute force; cluster backend vs torch backend
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize(("dim", "periodic"), [(2, True), (3, False), (2, False)])
def test_torch_backend_matches_brute_force(case, loop, dim, periodic):
    pos, batch, period = random_cloud(1, [9, 20, 1, 14], dim, periodic)
    got = build(pos, batch, case, loop, period, "torch")
    assert got.dtype == torch.long and got.shape[0] == 2
    assert got.shape[1] == len(as_set(got)), "duplicate edges"
    assert as_set(got) == reference(pos, batch, case, loop, period)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize(("dim", "periodic"), [(2, True), (3, False), (3, True)])
def test_cluster_backend_matches_torch(case, loop, dim, periodic):
    pytest.importorskip("torch_cluster")
    pos, batch, period = random_cloud(2, [30, 5, 41, 2, 25], dim, periodic)
    torch_edges = build(pos, batch, case, loop, period, "torch")
    cluster_edges = build(pos, batch, case, loop, period, "cluster")
    assert cluster_edges.shape[1] == len(as_set(cluster_edges)), "duplicate edges"
    assert as_set(cluster_edges) == as_set(torch_edges)


def test_cluster_backend_periodic_raw_angles():
    """Unreduced angles (phi outside (-pi, pi]) give the same graph on both backends."""
    pytest.importorskip("torch_cluster")
    pos, batch, period = random_cloud(3, [40, 40], 2, True)
    shifted = pos.clone()
    shifted[:, 1] += 3 * TWO_PI
    for backend in ("torch", "cluster"):
        a = knn_graph(pos, 6, batch, period=period, backend=backend)
        b = knn_graph(shifted, 6, batch, period=period, backend=backend)
        assert as_set(a) == as_set(b)


@pytest.mark.parametrize("backend", ["torch", "cluster"])
@pytest.mark.parametrize("periodic", [False, True])
def test_exact_ties_broken_by_lower_index(backend, periodic):
    """Integer lattice points and duplicates: many exactly equal distances."""
    if backend == "cluster":
        pytest.importorskip("torch_cluster")
    g = torch.Generator().manual_seed(7)
    pos = torch.randint(0, 8, (90, 2), generator=g).float()
    pos[60:75] = pos[:15]  # exact duplicates
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([20, 45, 25]))
    period = [None, 8.0] if periodic else None
    for loop in (True, False):
        for k in (1, 4, 9):
            got = knn_graph(pos, k, batch, loop=loop, period=period, backend=backend)
            assert as_set(got) == brute_force(pos, batch, k=k, loop=loop, period=period)
        got = radius_graph(
            pos, 2.0, batch, max_num_neighbors=5, loop=loop, period=period, backend=backend
        )
        assert as_set(got) == brute_force(pos, batch, r=2.0, max_nn=5, loop=loop, period=period)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    k=st.integers(1, 8),
    loop=st.booleans(),
    periodic=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_knn_property_brute_force(sizes, k, loop, periodic, seed):
    pos, batch, period = random_cloud(seed, sizes, 2, periodic)
    got = knn_graph(pos, k, batch, loop=loop, period=period, backend="torch")
    assert as_set(got) == brute_force(pos, batch, k=k, loop=loop, period=period)


def test_large_event_block_processing(monkeypatch):
    """Events are processed in blocks; tiny blocks give the same graph."""
    import hepx.data.graph as graph

    pos, batch, period = random_cloud(4, [7, 13, 3, 11, 9], 2, True)
    full = knn_graph(pos, 5, batch, period=period, backend="torch")
    monkeypatch.setattr(graph, "_BLOCK_ELEMENTS", 1)
    blocked = knn_graph(pos, 5, batch, period=period, backend="torch")
    assert as_set(full) == as_set(blocked)


# ------------------------------------------------------------------------------------------
# semantics
# ------------------------------------------------------------------------------------------


def test_conventions_self_loop_and_counts():
    pos, batch, _ = random_cloud(5, [3, 10], 3, False)
    e = knn_graph(pos, 4, batch, backend="torch")
    centres, nbrs = e[1], e[0]
    assert torch.equal(torch.bincount(centres), torch.tensor([3] * 3 + [4] * 10))
    assert bool((batch[centres] == batch[nbrs]).all())
    assert as_set(torch.stack([torch.arange(13)] * 2)) <= as_set(e)
    e = knn_graph(pos, 4, batch, loop=False, backend="torch")
    assert not bool((e[0] == e[1]).any())
    assert torch.equal(torch.bincount(e[1]), torch.tensor([2] * 3 + [4] * 10))


def test_self_loop_kept_with_duplicate_points():
    pos = torch.zeros(5, 2)
    e = knn_graph(pos, 1, backend="torch")
    assert as_set(e) == {(i, i) for i in range(5)}


def test_radius_keeps_nearest():
    pos = torch.tensor([[0.0], [0.1], [0.5], [0.2], [0.35]])
    e = radius_graph(pos, 0.4, max_num_neighbors=3, backend="torch")
    nb0 = sorted(e[0][e[1] == 0].tolist())
    assert nb0 == [0, 1, 3]  # self + two nearest of {1, 3, 4} within r


def test_periodic_neighbours_across_boundary():
    # two points near phi = +pi and -pi are 0.02 apart; a third is at phi = 0
    pos = torch.tensor([[0.0, math.pi - 0.01], [0.0, -math.pi + 0.01], [0.0, 0.0]])
    for backend in ["torch"] + (["cluster"] if _has_cluster() else []):
        e = knn_graph(pos, 2, period=[None, TWO_PI], backend=backend)
        assert (1, 0) in as_set(e) and (0, 1) in as_set(e)
        e = radius_graph(pos, 0.1, period=[None, TWO_PI], backend=backend)
        assert as_set(e) == {(0, 0), (1, 1), (2, 2), (0, 1), (1, 0)}
        e = radius_graph(pos, 0.1, backend=backend)  # without the period they are far apart
        assert as_set(e) == {(0, 0), (1, 1), (2, 2)}


def test_edge_vectors_wrap():
    pos = torch.tensor([[0.0, math.pi - 0.01], [1.0, -math.pi + 0.01]], requires_grad=True)
    ei = torch.tensor([[1, 0], [0, 1]])  # (j, i): 1 -> 0 and 0 -> 1
    v = edge_vectors(pos, ei, [None, TWO_PI])
    expected = torch.tensor([[-1.0, -0.02], [1.0, 0.02]])
    assert torch.allclose(v, expected, atol=1e-5)
    v.sum().backward()  # the wrap has unit derivative
    assert torch.allclose(pos.grad, torch.zeros_like(pos))
    d = torch.tensor([math.pi, -math.pi, 3 * math.pi, 0.5, -7.0]).unsqueeze(-1)
    w = wrap_periodic(d, [TWO_PI]).squeeze(-1)
    assert bool(((w > -math.pi) & (w <= math.pi + 1e-6)).all())
    turns = (w - d.squeeze(-1)) / TWO_PI  # the wrap moves by whole periods only
    assert torch.allclose(turns, turns.round(), atol=1e-5)


def test_empty_and_single_point():
    empty = torch.zeros(0, 3)
    assert knn_graph(empty, 3).shape == (2, 0)
    assert radius_graph(empty, 1.0).shape == (2, 0)
    one = torch.zeros(1, 3)
    assert as_set(knn_graph(one, 3, backend="torch")) == {(0, 0)}
    assert knn_graph(one, 3, loop=False, backend="torch").shape == (2, 0)


def test_validation_errors():
    pos = torch.rand(6, 2)
    with pytest.raises(InputError, match="sorted"):
        knn_graph(pos, 2, torch.tensor([0, 1, 0, 1, 1, 1]))
    with pytest.raises(InputError, match="length 6"):
        knn_graph(pos, 2, torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match=r"\[N, D\]"):
        knn_graph(torch.rand(6), 2)
    with pytest.raises(ConfigError, match="backend"):
        knn_graph(pos, 2, backend="gpu")
    with pytest.raises(ConfigError, match="one entry per coordinate"):
        knn_graph(pos, 2, period=[TWO_PI])
    with pytest.raises(ConfigError, match="k must"):
        knn_graph(pos, 0)
    with pytest.raises(ConfigError, match="r must"):
        radius_graph(pos, -1.0)
    with pytest.raises(ConfigError, match="max_num_neighbors"):
        radius_graph(pos, 1.0, max_num_neighbors=0)


def _has_cluster() -> bool:
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return False
    return True


def test_auto_backend_runs():
    pos, batch, period = random_cloud(6, [10, 10], 2, True)
    e = knn_graph(pos, 3, batch, period=period)
    assert as_set(e) == brute_force(pos, batch, k=3, period=period)
    ref = np.array(sorted(as_set(e)))
    assert ref.shape == (60, 2)
