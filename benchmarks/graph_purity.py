"""How well does an ActsTrack kNN graph follow the tracks?

    python benchmarks/graph_purity.py [--events 3000] [--samples 600] [--k 5 10]
        [--edges 0 87 200 400 700 2000]

Builds the kNN graph of the first ``--samples`` samples of the cached ActsTrack-sim dataset
(2 T, the quality benchmark's) with neighbours searched among the hit positions
(``graph.space: position``, the baseline) and among their unit directions from the origin
(``graph.space: direction``), and prints per band of transverse radius (mm):

* ``same``: the fraction of edges (self-loops left out) that join two hits of the same particle;
* ``linked``: the fraction of hits with at least one neighbour from their own particle.

A graph whose edges stay on the tracks lets information, and LRI-Bernoulli's masks, travel
along a track; README "Models and training" has the figures.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from _common import simulated_dataset

from hepx.data.dataset import load_arrays
from hepx.models.classifier import GRAPH_SPACES, GraphSpec


def purity(
    pos: torch.Tensor,
    batch: torch.Tensor,
    track: torch.Tensor,
    *,
    k: int,
    space: str,
    edges: list[float],
) -> list[tuple[str, float, float]]:
    """``(band, same, linked)`` per radius band for ``GraphSpec(k=k, space=space)`` (``k``
    counts the self-loop, as ``model.graph.k`` does)."""
    edge_index = GraphSpec(kind="knn", k=k, loop=True, space=space).build(pos, batch)
    j, i = edge_index
    keep = j != i
    j, i = j[keep], i[keep]
    same = (track[j] == track[i]).float()
    same_per_hit = torch.zeros(len(pos)).index_add_(0, i, same)
    rho = pos[:, :2].norm(dim=1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        at_edge = (rho[i] >= lo) & (rho[i] < hi)
        at_hit = (rho >= lo) & (rho < hi)
        rows.append(
            (
                f"{lo:g}-{hi:g}",
                float(same[at_edge].mean()),
                float((same_per_hit[at_hit] > 0).float().mean()),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument(
        "--k", type=int, nargs="+", default=[5, 10], help="graph.k (the self-loop counts)"
    )
    ap.add_argument("--edges", type=float, nargs="+", default=[0, 87, 200, 400, 700, 2000])
    args = ap.parse_args(argv)

    arrays = load_arrays(simulated_dataset("actstrack", args.events))
    n = min(args.samples, len(arrays.ptr) - 1)
    end = int(arrays.ptr[n])
    pos = torch.as_tensor(arrays.point["pos"][:end], dtype=torch.float32)
    track = torch.as_tensor(arrays.point["track_ids"][:end].astype(np.int64))
    batch = torch.repeat_interleave(torch.arange(n), torch.as_tensor(np.diff(arrays.ptr[: n + 1])))
    print(
        f"ActsTrack-sim, {n} samples, {end} hits; same = same-particle edge fraction, "
        "linked = hits with an own-particle neighbour"
    )
    for k in args.k:
        results = {
            s: purity(pos, batch, track, k=k, space=s, edges=args.edges) for s in GRAPH_SPACES
        }
        print(f"\nk = {k}")
        print(
            f"{'rho band (mm)':>14} | " + " | ".join(f"{s:>9} same  linked" for s in GRAPH_SPACES)
        )
        for row in zip(*results.values(), strict=True):
            cells = " | ".join(f"{'':>9} {same:4.2f}  {linked:6.2f}" for _, same, linked in row)
            print(f"{row[0][0]:>14} | {cells}")


if __name__ == "__main__":
    main()
