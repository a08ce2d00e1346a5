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
            _roc_plot(tmp / f"roc_{kind}_{backbone}.png", kind, backbone, items)


def _roc_plot(path, kind: str, backbone: str, items) -> None:
    """Point-score ROC curves of the methods, in the experiment's mplhep style."""
    from hepx.plot.style import experiment_label, figure
    from hepx.post.physics import roc_curve

    with figure(kind, figsize=(8.0, 7.0)) as fig:
        ax = fig.add_subplot()
        for label, lab, sc in items:
            if lab.any() and not lab.all():
                fpr, tpr = roc_curve(sc, lab > 0)
                ax.plot(fpr, tpr, lw=1.6, label=label)
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
        ax.set_xlabel("background-hit efficiency")
        ax.set_ylabel("signal-hit efficiency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize="x-small", loc="lower right", title=f"{backbone}, positive events")
        experiment_label(ax, kind)
        fig.savefig(path, dpi=100, bbox_inches="tight")
