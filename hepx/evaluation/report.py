"""The evaluation report: ``results.csv``, ``results.md``, ``results.json`` and ROC curves."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hepx.atomic import atomic_dir

__all__ = ["write_report"]

#: (dataset kind, backbone) -> [(label, point labels, point scores)] of the positive samples.
Curves = Mapping[tuple[str, str], Sequence[tuple[str, np.ndarray, np.ndarray]]]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def write_report(out_dir: str | os.PathLike, rows: list[dict[str, Any]], curves: Curves) -> None:
    """Write the table (CSV, JSON with NaN as null, Markdown) and one point-score ROC plot per
    (dataset, backbone) into ``out_dir``, atomically."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_dir(out_dir) as tmp:
        with open(tmp / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        clean = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in rows
        ]
        (tmp / "results.json").write_text(json.dumps(clean, indent=1) + "\n")
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
        (tmp / "results.md").write_text(
            "# hepx evaluate\n\nMedians over samples for the robustness columns; "
            "interpretation metrics on the positive test samples.\n\n" + "\n".join(lines) + "\n"
        )
        for (kind, backbone), items in curves.items():
            _roc_plot(tmp / f"roc_{kind}_{backbone}.png", f"{kind} / {backbone}", items)


def _roc_plot(path, title: str, items) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, lab, sc in items:
        if lab.any() and not lab.all():
            fpr, tpr, _ = roc_curve(lab > 0, sc)
            ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (points)")
    ax.set_ylabel("true positive rate (points)")
    ax.set_title(f"{title}: point-score ROC")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
