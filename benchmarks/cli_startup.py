"""How fast ``hepx`` starts: every subcommand's help, and the imports ``hepx convert`` makes
before it reads a file, beside a bare Python start-up, ``import uproot`` (what a bare read of
the inputs imports) and ``import torch``, in the same run.

    python benchmarks/cli_startup.py [--repeat 5] [--base REV]

Each figure is the median wall time of ``--repeat`` fresh processes, the commands interleaved.
With ``--base REV`` the hepx figures are also measured with the code of REV (a git worktree,
put first on ``PYTHONPATH``). The goal: every help under a second; ``hepx convert``'s imports
close to ``import uproot``'s. The parser imports nothing heavy (no torch, uproot or numba);
each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Baselines (the same for every side): label -> Python source.
BASELINES = {
    "python -c pass (bare start-up)": "pass",
    "python -c 'import uproot'": "import uproot",
    "python -c 'import torch'": "import torch",
}

#: hepx's figures: label -> arguments of ``python``.
COMMANDS = {
    **{
        f"hepx {cmd} --help".replace("  ", " "): ["-m", "hepx.cli", *cmd.split(), "--help"]
        for cmd in (
            "",
            "simulate",
            "simulate actstrack",
            "convert",
            "train",
            "score",
            "evaluate",
            "plot",
            "demo",
        )
    },
    # what `hepx convert` imports before it reads its inputs
    "hepx convert's imports (import hepx.cli, hepx.data)": ["-c", "import hepx.cli, hepx.data"],
}


def wall(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    return time.perf_counter() - t0


def measure(sides: dict[str, Path], repeat: int, cwd: Path) -> dict[tuple[str, str], float]:
    """Median seconds per (label, side); baselines under the side ``""``. The processes run
    in ``cwd``: in the repository, ``python -c`` would import hepx from the current directory
    whatever ``PYTHONPATH`` says."""
    py = sys.executable
    runs = [(label, "", [py, "-c", code], dict(os.environ)) for label, code in BASELINES.items()]
    for label, argv in COMMANDS.items():
        for name, src in sides.items():
            runs.append((label, name, [py, *argv], {**os.environ, "PYTHONPATH": str(src)}))
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):
        for label, name, cmd, env in runs:
            times.setdefault((label, name), []).append(wall(cmd, env, cwd))
    return {key: statistics.median(t) for key, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=5, help="processes per figure (median)")
    ap.add_argument("--base", default=None, help="git revision to measure beside this tree")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hepx-startup")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sides = {"this tree": REPO}
    if args.base:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from seeded_equivalence import checkout

        sides[f"base {args.base}"] = checkout(args.base, args.workdir)
    for name, src in sides.items():
        code = "import hepx; print(hepx.__file__)"
        env = {**os.environ, "PYTHONPATH": str(src)}
        cmd = [sys.executable, "-c", code]
        where = subprocess.run(cmd, env=env, cwd=args.workdir, capture_output=True, text=True)
        if not Path(where.stdout.strip()).resolve().is_relative_to(src.resolve()):
            raise SystemExit(f"{name}: hepx comes from {where.stdout.strip()}, not from {src}")
    got = measure(sides, args.repeat, args.workdir)
    print(f"\nmedian of {args.repeat} fresh processes, seconds:\n")
    print("| command | " + " | ".join(sides) + " |")
    print("|---|" + "---|" * len(sides))
    for label in BASELINES:
        print(f"| `{label}` | {got[label, '']:.2f} |" + " |" * (len(sides) - 1))
    for label in COMMANDS:
        print(f"| `{label}` | " + " | ".join(f"{got[label, n]:.2f}" for n in sides) + " |")


if __name__ == "__main__":
    main()
