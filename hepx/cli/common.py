"""Pieces shared by the subcommands: help formatting, reader-option files, executors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = [
    "HelpFormatter",
    "add_executor_options",
    "add_threads_option",
    "executor_of",
    "reader_options_of",
]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help text (unless it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def add_parser(sub, name: str, **kw: Any) -> argparse.ArgumentParser:
    """A subcommand parser with hepx's help formatting."""
    return sub.add_parser(name, formatter_class=HelpFormatter, **kw)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--scheduler``, ``--workers``: where the per-file work runs."""
    p.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="local: inputs one after the other; dask: inputs in parallel on a dask cluster",
    )
    p.add_argument(
        "--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)"
    )
    p.add_argument("--workers", type=int, default=2, help="workers of the default LocalCluster")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads``: CPU threads of torch (hepx.threads)."""
    p.add_argument(
        "--threads",
        default=None,
        metavar="N|auto",
        help="CPU threads; auto: the cores other processes leave free (default: "
        "$HEPX_THREADS, else $OMP_NUM_THREADS, else auto)",
    )


def executor_of(args: argparse.Namespace):
    """The executor the options name (``None``: here, one input after the other)."""
    if args.executor != "dask":
        return None
    from hepx.scale import dask_executor

    return dask_executor(args.scheduler, workers=args.workers)


def reader_options_of(path: Path | str | None) -> dict[str, Any]:
    """The ``reader:`` section of a YAML file or shipped config such as ``convert/tau3mu``
    (its keys are checked by the dataset kind later)."""
    if path is None:
        return {}
    from hepx.config import Field, find_config, load_yaml, validate

    cfg = validate({"reader": Field("mapping", {})}, load_yaml(find_config(path)), where=str(path))
    return dict(cfg["reader"])
