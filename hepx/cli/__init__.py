"""The ``hepx`` command: a thin layer over the importable library, one module per subcommand.

Building the parser imports nothing heavy (no torch, uproot or numba), so ``hepx --help`` and
``hepx SUBCOMMAND --help`` answer at once; each subcommand imports what it needs when it runs.
Errors caused by the user's input (files, configs) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
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


#: The longest error line the command prints (a hostile value must not flood the terminal).
MAX_ERROR_CHARS = 2000


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hepx`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="hepx: %(message)s",
        stream=sys.stderr,
    )
    previous = _catch_signals()
    try:
        args.func(args)
    except _Terminated:
        print("hepx: terminated (SIGTERM); nothing half-written was kept", file=sys.stderr)
        return 143
    except HepxError as err:
        print(f"hepx: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hepx: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM (what batch systems send) unwinds like Ctrl-C: temporaries are removed."""


#: Libraries whose log records a signal silences: a dask cluster torn down by Ctrl-C or
#: SIGTERM logs its cancelled futures, closing scheduler and reaped workers with tracebacks.
_SHUTDOWN_NOISE = frozenset({"asyncio", "distributed", "tornado"})


class _NoShutdownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] not in _SHUTDOWN_NOISE


def _quiet_shutdown() -> None:
    """After a signal the command says in one line what happened; what the libraries log
    while the command unwinds and the interpreter exits is dropped (their loggers set their
    own levels, so the root handlers filter them, and the loggers that exist are disabled)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoShutdownNoise())
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in _SHUTDOWN_NOISE:
            logging.getLogger(name).disabled = True


def _on_sigterm(signum: int, frame: object) -> None:
    _quiet_shutdown()
    raise _Terminated()


def _on_sigint(signum: int, frame: object) -> None:
    _quiet_shutdown()
    raise KeyboardInterrupt


def _catch_signals() -> dict[int, object]:
    """Turn SIGTERM into :class:`_Terminated` and SIGINT into ``KeyboardInterrupt``, both
    quieting the shutdown, while a command runs (main thread only); the handlers replaced."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
        signal.SIGINT: signal.signal(signal.SIGINT, _on_sigint),
    }
