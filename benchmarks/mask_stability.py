"""How stable is a self-interpretable run's mask from epoch to epoch, and what does the
reference's model selection pick from it?

    python benchmarks/mask_stability.py RUN_DIR [RUN_DIR ...] [--from-epoch N]

Reads each run's ``metrics.csv`` (one row per epoch) and ``test_metrics.json``. Over the
epochs from ``--from-epoch`` on (default: the second half of the run) it prints the spread of
the validation interpretation ROC AUC (mean, standard deviation, range) beside that of the
validation prediction ROC AUC, their Pearson correlation, and, side by side, the
interpretation AUC of the epoch the reference's rule selected (highest validation prediction
AUC) against the mean over those epochs (what an epoch drawn at random would give). A
correlation near 0 with a wide interpretation spread means that selecting by the prediction
leaves the mask's quality to chance.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from hepx.run import RunLayout


def mask_stability(rows: list[dict[str, str]], selected_epoch: int, from_epoch: int) -> dict:
    """Spread of ``val_interp_auc`` and ``val_pred_auc`` over the rows with ``epoch >=
    from_epoch``, their correlation, and the selected epoch's ``val_interp_auc``.

    Example:
        >>> rows = [{"epoch": str(e), "val_interp_auc": str(a), "val_pred_auc": str(p)}
        ...         for e, a, p in [(0, 0.5, 0.90), (1, 0.9, 0.95), (2, 0.7, 0.96)]]
        >>> mask_stability(rows, selected_epoch=2, from_epoch=1)["selected_interp_auc"]
        0.7
    """
    late = [r for r in rows if int(r["epoch"]) >= from_epoch]
    if len(late) < 2:
        raise ValueError(f"need at least 2 epochs from epoch {from_epoch}, got {len(late)}")
    interp = np.array([float(r["val_interp_auc"]) for r in late])
    pred = np.array([float(r["val_pred_auc"]) for r in late])
    selected = [float(r["val_interp_auc"]) for r in rows if int(r["epoch"]) == selected_epoch]
    return {
        "epochs": len(late),
        "interp_mean": float(interp.mean()),
        "interp_sd": float(interp.std(ddof=1)),
        "interp_min": float(interp.min()),
        "interp_max": float(interp.max()),
        "pred_sd": float(pred.std(ddof=1)),
        "correlation": float(np.corrcoef(interp, pred)[0, 1]),
        "selected_epoch": selected_epoch,
        "selected_interp_auc": selected[0] if selected else float("nan"),
    }


#: The per-epoch columns :func:`mask_stability` reads.
COLUMNS = ("epoch", "val_interp_auc", "val_pred_auc")


def read_run(run: Path) -> tuple[list[dict[str, str]], dict]:
    """A run's per-epoch ``metrics.csv`` rows and its ``test_metrics.json``.

    Raises:
        ValueError: one line naming what is missing: a file, a per-epoch column (a plain
            run has no interpretation AUC) or the selected epoch.
    """
    layout = RunLayout(run)
    for path in (layout.metrics_csv, layout.test_metrics):
        if not path.is_file():
            raise ValueError(f"{run}: no {path.name}; expected a finished training run")
    with open(layout.metrics_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{layout.metrics_csv}: no column {', '.join(missing)}; expected a "
                "self-interpretable run (LRI, GMT, PointMask), whose epochs record val_interp_auc"
            )
        rows = list(reader)
    try:
        test = json.loads(layout.test_metrics.read_text())
        test["selected_epoch"] = int(test["selected_epoch"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{layout.test_metrics}: no integer selected_epoch ({err})") from None
    return rows, test


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--from-epoch", type=int, default=None, help="default: half the epochs")
    args = ap.parse_args(argv)
    try:  # every run read and checked before the table starts
        stats = []
        for run in args.runs:
            rows, test = read_run(run)
            start = len(rows) // 2 if args.from_epoch is None else args.from_epoch
            stats.append((run, test, mask_stability(rows, test["selected_epoch"], start)))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"{'run':<48} {'epochs':>6} {'val interp AUC: mean':>20} {'sd':>6} {'min':>6} "
        f"{'max':>6} {'pred sd':>8} {'corr':>6} {'selected (epoch)':>17} {'test':>6}"
    )
    for run, test, s in stats:
        print(
            f"{run.name:<48} {s['epochs']:>6} {s['interp_mean']:>20.3f} {s['interp_sd']:>6.3f} "
            f"{s['interp_min']:>6.3f} {s['interp_max']:>6.3f} {s['pred_sd']:>8.4f} "
            f"{s['correlation']:>6.2f} {s['selected_interp_auc']:>10.3f} ({s['selected_epoch']:>3})"
            f" {test.get('test_interp_auc', float('nan')):>6.3f}"
        )


if __name__ == "__main__":
    main()
