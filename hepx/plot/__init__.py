"""Interpretation plots with hist + mplhep ("ACTS Simulation", "CMS Phase-2 Simulation").

The functions take the annotated awkward events of :func:`hepx.post.annotate` (or read back
with :func:`hepx.post.read_parquet`, :func:`hepx.plot.load_events`) and return Axes;
:func:`make_plots` draws and saves several kinds as PNG and PDF (``hepx plot``).
Matplotlib runs with the non-interactive Agg backend.

The names below are imported on first use (matplotlib takes a while to import), so that
``hepx --help`` can read :data:`hepx.plot.catalogue.PLOT_KINDS` at once.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> the module that defines it.
_EXPORTS = {
    "PLOT_KINDS": "hepx.plot.catalogue",
    "load_events": "hepx.plot.make",
    "make_plots": "hepx.plot.make",
    "axis_angle_hist": "hepx.plot.plots",
    "default_event": "hepx.plot.plots",
    "etaphi_display": "hepx.plot.plots",
    "event_display": "hepx.plot.plots",
    "importance_distribution": "hepx.plot.plots",
    "layer_profile": "hepx.plot.plots",
    "track_roc": "hepx.plot.plots",
    "experiment_label": "hepx.plot.style",
    "figure": "hepx.plot.style",
    "save_figure": "hepx.plot.style",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hepx.plot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*_EXPORTS, "catalogue", "make", "plots", "style"])
