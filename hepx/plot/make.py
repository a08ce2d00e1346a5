"""Several interpretation plots at once, saved as files (``hepx plot``).

:func:`load_events` reads annotated events (a ``hepx score`` output, or Parquet);
:func:`make_plots` draws the requested kinds of plot and saves them as PNG / PDF / SVG.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak

from hepx.errors import InputError
from hepx.plot.catalogue import PLOT_KINDS

log = logging.getLogger("hepx")

__all__ = ["PLOT_KINDS", "load_events", "make_plots"]


def load_events(source: str | os.PathLike) -> ak.Array:
    """Annotated events from a ``hepx score`` directory, a training run directory holding
    one in ``explain/``, or a Parquet file written by :func:`hepx.post.write_parquet`.

    Example
    -------
    >>> events = load_events("scored")          # doctest: +SKIP
    """
    from hepx.post.outputs import read_parquet
    from hepx.scoring import load_scored as load_explained

    source = Path(source)
    if source.is_file() and source.suffix == ".parquet":
        return read_parquet(source)
    if (source / "manifest.json").exists():
        return load_explained(source)[1]
    if (source / "explain" / "manifest.json").exists():
        return load_explained(source / "explain")[1]
    if not source.exists():
        raise InputError(f"{source}: no such file or directory")
    raise InputError(
        f"{source}: no importance outputs; run `hepx score RUN_DIR INPUT... --out DIR` and "
        "plot DIR (or RUN_DIR/explain), or give an events .parquet file"
    )


def _applicable(events: ak.Array, kind: str, plot: str) -> bool:
    if kind not in PLOT_KINDS[plot][0]:
        return False
    if plot == "axis-angle":
        return "axis_angle" in events.hits.fields
    return True


def make_plots(
    events: ak.Array,
    kinds: Sequence[str] | str = "all",
    out: str | os.PathLike = ".",
    *,
    event: int | None = None,
    by: Sequence[str] | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    overwrite: bool = False,
) -> list[Path]:
    """Draw the plot ``kinds`` (names of :data:`PLOT_KINDS`, or ``"all"`` = every applicable one)
    for annotated ``events`` and save them as ``out/<kind>.<fmt>``. Returns the files written.

    Files already at those names are refused before anything is drawn, unless ``overwrite``;
    ``out`` is created if missing (and removed again if nothing could be written)."""
    from hepx.atomic import check_creatable, check_files_free, output_dir
    from hepx.kinds import detect_kind
    from hepx.plot.style import experiment_label, figure, save_figure

    kind = detect_kind(events)
    dkind = kind.name
    if isinstance(kinds, str):
        kinds = [kinds]
    if "all" in kinds:
        kinds = [k for k in PLOT_KINDS if _applicable(events, dkind, k)]
    unknown = [k for k in kinds if k not in PLOT_KINDS]
    if unknown:
        raise InputError(f"unknown plot kind(s) {unknown} (allowed: all, {', '.join(PLOT_KINDS)})")
    for k in kinds:
        if not _applicable(events, dkind, k):
            why = (
                "needs an LRI-Gaussian ActsTrack run"
                if k == "axis-angle"
                else f"is for {', '.join(PLOT_KINDS[k][0])}"
            )
            raise InputError(f"plot kind '{k}' {why}; these events are {dkind}")
    out = check_creatable(out, what="plot directory")
    check_files_free(
        [out / f"{k}.{fmt}" for k in kinds for fmt in formats], overwrite=overwrite, what="plot"
    )
    written: list[Path] = []
    with output_dir(out):
        for k in kinds:
            size = (12.0, 7.0) if k == "profile" else kind.figsize
            with figure(dkind, figsize=size) as fig:
                ax = fig.add_subplot()
                _draw(k, events, ax, event=event, by=by)
                experiment_label(ax, dkind)  # after the colour bar has resized the axes
                written += save_figure(fig, out / k, formats)
    return written


def _draw(kind: str, events: ak.Array, ax: Any, *, event: int | None, by: Any) -> None:
    from hepx.plot import plots

    draw = {
        "display-xy": lambda: plots.event_display(events, event, view="xy", ax=ax),
        "display-rz": lambda: plots.event_display(events, event, view="rz", ax=ax),
        "display-etaphi": lambda: plots.etaphi_display(events, event, ax=ax),
        "importance": lambda: plots.importance_distribution(events, ax=ax),
        "profile": lambda: plots.layer_profile(events, by, ax=ax),
        "track-roc": lambda: plots.track_roc(events, ax=ax),
        "axis-angle": lambda: plots.axis_angle_hist(events, ax=ax),
    }
    draw[kind]()
