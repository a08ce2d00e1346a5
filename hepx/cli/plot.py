"""``hepx plot DIR --out IMGDIR``: interpretation plots of a ``hepx score`` output."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hepx.cli.common import add_parser as _sub
from hepx.plot.catalogue import PLOT_KINDS

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = _sub(
        sub,
        "plot",
        help="interpretation plots (event displays, importance, profiles, track ROC)",
        description="Plots of a `hepx score` output directory (or a Parquet file of annotated "
        "events). Kinds: all, " + ", ".join(f"{k} ({d})" for k, (_, d) in PLOT_KINDS.items()),
    )
    p.add_argument(
        "source",
        type=Path,
        metavar="SCORED",
        help="hepx score --out directory (or a .parquet file)",
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
        help="hit fields of the profile (default: volume_id layer_id / station ring)",
    )
    p.add_argument(
        "--format", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"], help="formats"
    )
    p.add_argument("--overwrite", action="store_true", help="replace plot files already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from hepx.plot import load_events, make_plots

    events = load_events(args.source)
    files = make_plots(
        events,
        args.kind or ["all"],
        args.out,
        event=args.event,
        by=args.by,
        formats=args.format,
        overwrite=args.overwrite,
    )
    log.info("wrote %d plot files to %s", len(files), args.out)
