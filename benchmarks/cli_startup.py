"""How fast ``hepx --help`` answers: every subcommand's help against a bare Python start-up and
an ``import torch`` in the same run.

    python benchmarks/cli_startup.py [--repeat 5]

Each figure is the median wall time of ``--repeat`` fresh processes. The goal: every help
under a second. The parser imports nothing heavy (no torch, uproot or numba); each subcommand
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [
    "",
    "simulate",
    "simulate actstrack",
    "convert",
    "train",
    "score",
    "evaluate",
    "plot",
    "demo",
]


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=5, help="processes per figure (median)")
    args = ap.parse_args()
    py = sys.executable
    rows = [
        ("python -c pass (bare start-up)", wall([py, "-c", "pass"], args.repeat)),
        ("python -c 'import torch'", wall([py, "-c", "import torch"], args.repeat)),
    ]
    for cmd in COMMANDS:
        argv = [py, "-m", "hepx.cli", *cmd.split(), "--help"]
        rows.append((f"hepx {cmd} --help".replace("  ", " "), wall(argv, args.repeat)))
    print(f"\nmedian of {args.repeat} fresh processes:\n")
    print("| command | seconds | under 1 s |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| `{name}` | {seconds:.2f} | {'yes' if seconds < 1 else 'no'} |")


if __name__ == "__main__":
    main()
