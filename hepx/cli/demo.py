"""``hepx demo``: simulate, convert, train, score and plot, end to end on built-in defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from hepx.cli.common import add_parser as _sub
from hepx.cli.common import add_threads_option

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = _sub(sub, "demo", help="the whole chain end to end on built-in defaults")
    p.add_argument("--out", type=Path, default=Path("hepx-demo"), help="output directory")
    p.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from hepx.allocator import tune_allocator
    from hepx.threads import configure_threads

    configure_threads(args.threads)
    tune_allocator()
    from hepx.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
