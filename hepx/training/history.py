"""Per-epoch records of a run (``metrics.csv`` / ``metrics.json``) and the metrics in them."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from hepx.atomic import atomic_file
from hepx.inference import Predictions
from hepx.run import RunLayout

__all__ = ["finite", "metrics_of", "write_history"]


def metrics_of(pred: Predictions, ks: Sequence[int]) -> dict[str, float]:
    """Prediction metrics (ROC AUC, accuracy, loss) and, when point scores exist, the
    interpretation metrics (ROC AUC, precision@k, info loss) of :func:`hepx.inference.predict`'s
    output."""
    from hepx.explain.metric.groundtruth import (
        interpretation_roc_auc,
        precision_at_k,
        prediction_metrics,
    )

    m = prediction_metrics(pred.logits, pred.y)
    out = {"pred_auc": m["auc"], "pred_acc": m["acc"], "loss": float(pred.loss)}
    if len(pred.scores):
        out["interp_auc"] = interpretation_roc_auc(pred.scores, pred.node_label, pred.batch, pred.y)
        for k, v in precision_at_k(pred.scores, pred.node_label, pred.batch, pred.y, ks).items():
            out[f"prec@{k}"] = v
        out["info_loss"] = float(pred.info_loss)
    return out


def finite(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` with NaN floats as ``None`` (valid JSON)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def write_history(layout: RunLayout, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` and ``metrics.json`` atomically (one row per epoch)."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_file(layout.metrics_csv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    with atomic_file(layout.metrics_json) as tmp:
        tmp.write_text(json.dumps([finite(r) for r in history], indent=1) + "\n")
