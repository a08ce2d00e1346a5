"""``hepx plot RUN_DIR --kind ... --out DIR``: interpretation plots of an ``hepx explain`` output."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak

from hepx.errors import InputError

log = logging.getLogger("hepx")

__all__ = ["PLOT_KINDS", "load_events", "make_plots", "register_cli"]

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


def load_events(source: str | os.PathLike) -> ak.Array:
    """Annotated events from an ``hepx explain`` directory, a training run directory holding
    one in ``explain/``, or a Parquet file written by :func:`hepx.post.write_parquet`."""
    from hepx.post.outputs import read_parquet
    from hepx.post.pipeline import load_explained

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
        f"{source}: no importance outputs; run `hepx explain RUN_DIR INPUT... --out DIR` and "
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
) -> list[Path]:
    """Draw the plot ``kinds`` (names of :data:`PLOT_KINDS`, or ``"all"`` = every applicable one)
    for annotated ``events`` and save them as ``out/<kind>.<fmt>``. Returns the files written."""
    from hepx.plot.style import experiment_label, figure, save_figure
    from hepx.post.physics import detect_kind

    dkind = detect_kind(events)
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
    out = Path(out)
    written: list[Path] = []
    for k in kinds:
        wide = k == "profile"
        size = (12.0, 7.0) if wide else ((10.0, 8.0) if dkind == "tau3mu" else (8.5, 7.0))
        with figure(dkind, figsize=size) as fig:
            ax = fig.add_subplot()
            _draw(k, events, ax, event=event, by=by)
            experiment_label(ax, dkind)  # after the colour bar has resized the axes
            written += save_figure(fig, out / k, formats)
    return written


def _draw(kind: str, events: ak.Array, ax: Any, *, event: int | None, by: Any) -> None:
    from hepx.plot import plots

    if kind == "display-xy":
        plots.event_display(events, event, view="xy", ax=ax)
    elif kind == "display-rz":
        plots.event_display(events, event, view="rz", ax=ax)
    elif kind == "display-etaphi":
        plots.etaphi_display(events, event, ax=ax)
    elif kind == "importance":
        plots.importance_distribution(events, ax=ax)
    elif kind == "profile":
        plots.layer_profile(events, by, ax=ax)
    elif kind == "track-roc":
        plots.track_roc(events, ax=ax)
    elif kind == "axis-angle":
        plots.axis_angle_hist(events, ax=ax)
    else:  # pragma: no cover - guarded by make_plots
        raise InputError(f"unknown plot kind {kind!r}")


def _cmd_plot(args: argparse.Namespace) -> None:
    events = load_events(args.run_dir)
    files = make_plots(
        events,
        args.kind or ["all"],
        args.out,
        event=args.event,
        by=args.by,
        formats=args.format,
    )
    log.info("wrote %d plot files to %s", len(files), args.out)


def register_cli(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``hepx plot`` to the CLI's subparsers."""
    p = sub.add_parser(
        "plot",
        help="interpretation plots (event displays, importance, profiles, track ROC)",
        description="Plots of an `hepx explain` output directory (or RUN_DIR/explain, or a "
        "Parquet file of annotated events). Kinds: all, "
        + ", ".join(f"{k} ({d})" for k, (_, d) in PLOT_KINDS.items()),
    )
    p.add_argument(
        "run_dir", type=Path, help="hepx explain --out directory (or run dir / .parquet)"
    )
    p.add_argument(
        "--kind",
        action="append",
        choices=["all", *PLOT_KINDS],
        help="plot kind, repeatable (default: all applicable)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the images")
    p.add_argument(
        "--event",
        type=int,
        default=None,
        help="event position for displays (default: largest signal event)",
    )
    p.add_argument(
        "--by",
        nargs="+",
        default=None,
        help="hit fields of the profile (default volume_id layer_id / station ring)",
    )
    p.add_argument("--format", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"])
    p.set_defaults(func=_cmd_plot)
    return p
