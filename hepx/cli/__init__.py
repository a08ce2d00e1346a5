"""The ``hepx`` command: a thin layer over the importable library, one module per subcommand.

Building the parser imports nothing heavy (no torch, uproot or numba), so ``hepx --help`` and
``hepx SUBCOMMAND --help`` answer at once; each subcommand imports what it needs when it runs.
Errors caused by the user's input (files, configs) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hepx.cli import convert, demo, evaluate, plot, score, simulate, train
from hepx.cli.common import HelpFormatter
from hepx.errors import HepxError

__all__ = ["build_parser", "main"]

#: The subcommand modules, in the order ``hepx --help`` lists them.
COMMANDS = (simulate, convert, train, score, evaluate, plot, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``hepx`` argument parser with every subcommand."""
    from hepx import __version__

    parser = argparse.ArgumentParser(
        prog="hepx",
        description="Interpretable geometric deep learning (LRI) on HEP tracking data.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hepx {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hepx`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="hepx: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except HepxError as err:
        print(f"hepx: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hepx: interrupted", file=sys.stderr)
        return 130
    return 0
