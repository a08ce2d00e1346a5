"""Benchmark of hepx.data.graph: torch backend vs torch-cluster backend vs a brute-force baseline.

Usage::

    python benchmarks/graph_build.py [--events 256] [--points 100] [--repeat 5] [--threads 1]

Cases:

* ``knn3d``: ActsTrack-like, 3-D positions, kNN k=10.
* ``knn3d-large``: the same points regrouped into 16x larger events (where the O(Nmax^2) dense
  search loses to torch-cluster's tree search).
* ``radius2d-periodic``: Tau3Mu-like, (eta, phi) with phi periodic, radius r=1.0, 32 neighbours.
* ``radius2d-small``: the same with Tau3Mu-sized events (4x the events, 20 points each).

The brute-force baseline is a per-event loop: a numpy distance matrix and an argsort per event
(what one would write without a vectorised or tree-based search). Each time is the median of
``--repeat`` runs after a warm-up run; ratios are relative to the torch backend.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from hepx.data.graph import cluster_available, knn_graph, radius_graph

TWO_PI = 2 * math.pi


def brute_force(
    pos: np.ndarray,
    counts: np.ndarray,
    *,
    k: int | None,
    r: float | None,
    max_nn: int,
    period: list[float | None] | None,
) -> np.ndarray:
    """Per-event numpy loop; returns ``[2, E]`` (same selection rule as hepx, loop=True)."""
    src, dst = [], []
    start = 0
    for n in counts:
        p = pos[start : start + n]
        delta = p[:, None, :] - p[None, :, :]
        if period is not None:
            for d, per in enumerate(period):
                if per is not None:
                    delta[..., d] = per / 2 - np.mod(per / 2 - delta[..., d], per)
        d2 = (delta**2).sum(-1)
        np.fill_diagonal(d2, -1.0)
        if r is not None:
            d2[d2 > r * r] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, : (k if k is not None else max_nn)]
        vals = np.take_along_axis(d2, order, 1)
        ii, cc = np.nonzero(np.isfinite(vals))
        src.append(order[ii, cc] + start)
        dst.append(ii + start)
        start += n
    return np.stack([np.concatenate(src), np.concatenate(dst)])


def timeit(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_case(name: str, events: int, points: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if name.startswith("knn3d"):
        n_ev, n_pt = (events, points) if name == "knn3d" else (max(1, events // 16), 16 * points)
        pos = (torch.rand(n_ev * n_pt, 3, generator=g) * 2 - 1) * 1000.0
        return pos, n_ev, n_pt, dict(k=10, r=None, max_nn=10, period=None)
    n_ev, n_pt = (events, points) if name == "radius2d-periodic" else (4 * events, 20)
    eta = torch.rand(n_ev * n_pt, generator=g) * 5 - 2.5
    phi = (torch.rand(n_ev * n_pt, generator=g) * 2 - 1) * math.pi
    pos = torch.stack([eta, phi], -1)
    return pos, n_ev, n_pt, dict(k=None, r=1.0, max_nn=32, period=[None, TWO_PI])


def build(pos: torch.Tensor, batch: torch.Tensor, p: dict, backend: str) -> torch.Tensor:
    if p["k"] is not None:
        return knn_graph(pos, p["k"], batch, period=p["period"], backend=backend)
    return radius_graph(
        pos, p["r"], batch, max_num_neighbors=p["max_nn"], period=p["period"], backend=backend
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=256)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    backends = ["torch"] + (["cluster"] if cluster_available() else [])
    if not cluster_available():
        print("torch_cluster not importable: the cluster backend is skipped")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeat {args.repeat}")
    header = f"{'case':<20} {'events x points':>16} {'edges':>8} "
    header += " ".join(f"{b + ' [ms]':>14}" for b in [*backends, "brute-force"])
    header += " " + " ".join(f"{b + '/torch':>16}" for b in [*backends[1:], "brute-force"])
    print(header)
    for name in ("knn3d", "knn3d-large", "radius2d-periodic", "radius2d-small"):
        pos, n_ev, n_pt, p = make_case(name, args.events, args.points)
        batch = torch.arange(n_ev).repeat_interleave(n_pt)
        times = {}
        edges = None
        for backend in backends:
            run = functools.partial(build, pos, batch, p, backend)
            times[backend] = timeit(run, args.repeat)
            edges = run().shape[1]
        brute = functools.partial(
            brute_force,
            pos.numpy(),
            np.full(n_ev, n_pt),
            k=p["k"],
            r=p["r"],
            max_nn=p["max_nn"],
            period=p["period"],
        )
        times["brute-force"] = timeit(brute, max(1, args.repeat // 2))
        assert brute().shape[1] == edges, "brute force disagrees with hepx on the edge count"
        row = f"{name:<20} {f'{n_ev} x {n_pt}':>16} {edges:>8} "
        row += " ".join(f"{1e3 * t:>14.1f}" for t in times.values())
        ratios = [times[b] / times["torch"] for b in [*backends[1:], "brute-force"]]
        row += " " + " ".join(f"{x:>16.2f}" for x in ratios)
        print(row)


if __name__ == "__main__":
    main()
