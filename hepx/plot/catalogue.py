"""The kinds of plot ``hepx plot`` makes (no plotting imports: the CLI reads it at start-up)."""

from __future__ import annotations

__all__ = ["PLOT_KINDS"]

#: Plot kind -> (dataset kinds it applies to, short description).
PLOT_KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "display-xy": (("actstrack",), "event display, x-y view"),
    "display-rz": (("actstrack",), "event display, r-z view"),
    "display-etaphi": (("tau3mu",), "eta-phi display of muon hits"),
    "importance": (("actstrack", "tau3mu"), "importance of signal vs background hits"),
    "profile": (("actstrack", "tau3mu"), "mean importance per layer / station"),
    "track-roc": (("actstrack",), "track-level ROC of the per-track importance"),
    "axis-angle": (("actstrack",), "LRI-Gaussian main noise axis vs track direction"),
}
