"""Interpretation plots with hist + mplhep ("ACTS Simulation", "CMS Phase-2 Simulation").

The functions take the annotated awkward events of :func:`hepx.post.annotate` (or read back
with :func:`hepx.post.read_parquet`, :func:`hepx.plot.cli.load_events`) and return Axes;
:func:`make_plots` draws and saves several kinds as PNG and PDF (``hepx plot``).
Matplotlib runs with the non-interactive Agg backend.
"""

from hepx.plot.cli import PLOT_KINDS, load_events, make_plots
from hepx.plot.plots import (
    axis_angle_hist,
    default_event,
    etaphi_display,
    event_display,
    importance_distribution,
    layer_profile,
    track_roc,
)
from hepx.plot.style import EXPERIMENT, experiment_label, figure, save_figure

__all__ = [
    "EXPERIMENT",
    "PLOT_KINDS",
    "axis_angle_hist",
    "default_event",
    "etaphi_display",
    "event_display",
    "experiment_label",
    "figure",
    "importance_distribution",
    "layer_profile",
    "load_events",
    "make_plots",
    "save_figure",
    "track_roc",
]
