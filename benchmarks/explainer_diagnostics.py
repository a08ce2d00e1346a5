"""Two diagnostics of the library explainers on a trained plain run, each beside its baseline.

    python benchmarks/explainer_diagnostics.py RUN_DIR [--events 1024] [--fit-epochs 3]
        [--fit-batches 40] [--batch-size 64]

* **PGExplainer's size term**: PyG sums the size term over every edge of a training call and
  averages the prediction loss over its graphs. hepx trains on batches with the coefficient
  per graph (:func:`hepx.explain.algorithm.library.per_graph_coeffs`); the baseline is the
  batch fed unchanged, i.e. the per-graph coefficient times the batch's graphs. Printed per
  side: the interpretation ROC AUC (pooled over the points of positive events), the mean score
  of signal and of background points. A short fit (``--fit-epochs`` of ``--fit-batches``), the
  same for both sides.
  The median scores and the share of points scored below 1e-3 show whether the mask
  collapsed towards 0 (the size term outweighing the prediction term); the points and graph
  edges per test event set that balance, since the size term sums over a graph's edges.
  ``--fit-epochs 30 --fit-batches 0`` is the table's fit (30 epochs over the training split).
* **GNNExplainer's random start**: the explanation of the same model and events from two seeds
  of the mask's random start; printed: each seed's interpretation ROC AUC and the mean over
  events of the Spearman correlation between the two seeds' point scores. A low correlation
  means the ranking of the points is mostly the start, not the model.

The first ``--events`` test events of the run are explained, ``--batch-size`` per batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from _common import run_script
from torch_geometric.loader import DataLoader

from hepx.evaluation.table import open_run
from hepx.explain import get_explainer
from hepx.explain.metric.groundtruth import interpretation_roc_auc
from hepx.explain.metric.robustness import spearman_per_sample


def scores(explainer, model, test, batch_size: int) -> dict[str, torch.Tensor]:
    """Point scores, labels and event index ``[N]`` and event labels ``[S]`` of ``test``."""
    parts: dict[str, list] = {"score": [], "label": [], "event": [], "y": []}
    first = 0
    for data in DataLoader(test, batch_size=batch_size):
        parts["score"].append(explainer(model, data).scores)
        parts["label"].append(data.node_label.view(-1))
        parts["event"].append(data.batch + first)
        parts["y"].append(data.y.view(-1))
        first += int(data.num_graphs)
    return {k: torch.cat(v) for k, v in parts.items()}


def signal_auc(s: dict[str, torch.Tensor]) -> float:
    """The table's interpretation ROC AUC (pooled over the points of positive events)."""
    return interpretation_roc_auc(s["score"], s["label"], s["event"], s["y"])


def mean_scores(s: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Mean score of the signal and of the background points of positive events."""
    pos = s["y"][s["event"]] > 0.5
    sig = pos & (s["label"] > 0)
    return float(s["score"][sig].mean()), float(s["score"][pos & ~sig].mean())


def median_scores(s: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Median score of the signal and of the background points of positive events (a mask
    that collapsed towards 0 has means set by a few points and medians far below them)."""
    pos = s["y"][s["event"]] > 0.5
    sig = pos & (s["label"] > 0)
    return float(s["score"][sig].median()), float(s["score"][pos & ~sig].median())


def event_spearman(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Mean over events of 3 or more points of the Spearman correlation between two
    explanations of the same events (:func:`~hepx.explain.metric.robustness.
    spearman_per_sample`, the sanity checks' measure)."""
    rho = spearman_per_sample(a["score"], b["score"], a["event"])
    counts = torch.bincount(a["event"], minlength=len(rho))
    return float(rho[counts >= 3].mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained plain run directory")
    ap.add_argument("--events", type=int, default=1024, help="test events explained")
    ap.add_argument("--fit-epochs", type=int, default=3, help="PGExplainer fit epochs")
    ap.add_argument(
        "--fit-batches", type=int, default=40, help="batches per fit epoch (0: all, as the table)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    run = open_run(args.run)
    test = run.test[: args.events]
    train = DataLoader(
        run.train,
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    print(f"run {args.run.name}: {len(test)} test events, batches of {args.batch_size}")
    print("\nPGExplainer, the size coefficient (per graph 0.05):")
    points = edges = 0
    for data in DataLoader(test, batch_size=args.batch_size):
        points += data.num_nodes
        edges += run.model.build_graph(run.model.scale_pos(data.pos), data.batch).shape[1]
    print(f"per test event: {points / len(test):.1f} points, {edges / len(test):.0f} graph edges")
    print(
        "| side | interp AUC | mean score signal | mean score background "
        "| median signal | median background | share of points below 1e-3 |"
    )
    print("|---|---|---|---|---|---|---|")
    sides = (("per graph (hepx)", 0.05), ("per batch (baseline)", 0.05 * args.batch_size))
    for label, edge_size in sides:
        algo = get_explainer("pgexplainer", edge_size=edge_size, seed=0)
        algo.fit(run.model, train, epochs=args.fit_epochs, max_batches=args.fit_batches or None)
        s = scores(algo, run.model, test, args.batch_size)
        sig, bkg = mean_scores(s)
        med_sig, med_bkg = median_scores(s)
        low = float((s["score"] < 1e-3).float().mean())
        print(
            f"| {label} | {signal_auc(s):.3f} | {sig:.3g} | {bkg:.3g} | {med_sig:.3g} "
            f"| {med_bkg:.3g} | {low:.3f} |",
            flush=True,
        )
    print("\nGNNExplainer, two seeds of the random start:")
    seeds = [
        scores(get_explainer("gnnexplainer", seed=k), run.model, test, args.batch_size)
        for k in (0, 1)
    ]
    aucs = ", ".join(f"seed {k} {signal_auc(s):.3f}" for k, s in enumerate(seeds))
    print(f"interp AUC: {aucs}")
    print(f"per-event Spearman, seed 0 vs seed 1: {event_spearman(*seeds):.3f}")


if __name__ == "__main__":
    run_script(main)
