"""Where in the detector does an ActsTrack LRI model put its importance?

    python benchmarks/importance_by_radius.py RUN_DIR [RUN_DIR ...] [--edges 0 100 250 700 2000]

For each run (an LRI-Bernoulli or LRI-Gaussian ActsTrack run), scores the test split and prints,
per band of transverse radius (mm), the number of signal hits, the median score of signal and
other hits, and the ROC AUC of the scores against the ground truth within the band (positive
samples only, as the interpretation ROC AUC). The pooled AUC of ``hepx train`` is the same
computation over all bands.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from _common import score_test_split
from sklearn.metrics import roc_auc_score


def scores_by_radius(run: str, edges: list[float]) -> list[dict]:
    scored = score_test_split(run)
    if "score" not in scored:
        raise SystemExit(f"{run}: not an LRI run (no point scores of its own)")
    score, label, rho, positive = (scored[k] for k in ("score", "label", "rho", "positive"))
    rows = [{"band": "all", "mask": positive}]
    rows += [
        {"band": f"{lo:g}-{hi:g}", "mask": positive & (rho >= lo) & (rho < hi)}
        for lo, hi in itertools.pairwise(edges)
    ]
    for r in rows:
        m = r.pop("mask")
        sig, other = m & (label == 1), m & (label == 0)
        r["signal_hits"] = int(sig.sum())
        r["median_signal"] = float(np.median(score[sig])) if sig.any() else float("nan")
        r["median_other"] = float(np.median(score[other])) if other.any() else float("nan")
        both = sig.any() and other.any()
        r["auc"] = float(roc_auc_score(label[m], score[m])) if both else float("nan")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--edges", type=float, nargs="+", default=[0, 100, 250, 700, 2000])
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        print(f"\n{run}")
        print(
            f"{'rho [mm]':>10} {'signal hits':>11} {'median signal':>13} {'median other':>12} {'AUC':>6}"
        )
        for r in scores_by_radius(run, args.edges):
            print(
                f"{r['band']:>10} {r['signal_hits']:>11} {r['median_signal']:>13.3f} "
                f"{r['median_other']:>12.3f} {r['auc']:>6.3f}"
            )


if __name__ == "__main__":
    main()
