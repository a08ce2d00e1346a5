"""How does a run's prediction AUC depend on how many ground-truth points a signal event has?

    python benchmarks/auc_by_signal_hits.py RUN_DIR [RUN_DIR ...] [--edges 3 4 6 9 1000]

Scores the run's test split and prints, per band of ground-truth point count (e.g. hits of the
three tau muons in Tau3Mu), the number of signal events and the ROC AUC of those signal events
against all background events. A task whose hard cases are few-hit signal events shows it here.
"""

from __future__ import annotations

import argparse
import itertools

import torch
from _common import score_test_split
from sklearn.metrics import roc_auc_score


def auc_by_signal_hits(run: str, edges: list[int]) -> list[dict]:
    scored = score_test_split(run)
    s, y, n = scored["logit"], scored["y"], scored["n_signal"]
    rows = [{"band": "all", "signal_events": int((y == 1).sum()), "auc": roc_auc_score(y, s)}]
    for lo, hi in itertools.pairwise(edges):
        band = (y == 1) & (n >= lo) & (n < hi)
        sel = (y == 0) | band
        auc = roc_auc_score(y[sel], s[sel]) if band.any() and (y == 0).any() else float("nan")
        rows.append({"band": f"{lo}-{hi - 1}", "signal_events": int(band.sum()), "auc": auc})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--edges", type=int, nargs="+", default=[3, 4, 6, 9, 1000])
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        print(f"\n{run}")
        print(f"{'signal hits':>11} {'signal events':>13} {'AUC vs all background':>22}")
        for r in auc_by_signal_hits(run, args.edges):
            print(f"{r['band']:>11} {r['signal_events']:>13} {r['auc']:>22.3f}")


if __name__ == "__main__":
    main()
