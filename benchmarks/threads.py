"""CPU threads under load: hepx's default against one thread, idle and beside other work.

    python benchmarks/threads.py [--repeat 3] [--batches 12] [--events 4000]

Runs the same short training (the shipped Tau3Mu LRI-Bernoulli EGNN config, one epoch of
``--batches`` batches plus its validation) as a fresh ``hepx train`` process per measurement,
with hepx's default thread setting (``auto``, no ``OMP_NUM_THREADS`` or ``HEPX_THREADS`` set)
and with one thread, each on an idle machine and beside competing CPU load: one or as many
busy processes as the machine has cores (pure-Python loops, one core each). For reference it
also runs two fixed settings: as many threads as cores, with OpenMP's default wait policy and
with ``OMP_WAIT_POLICY=PASSIVE``. The figure is the epoch's time from the run's own record
(``metrics.csv``: training and validation, start-up excluded), the median of ``--repeat``.
The goal: hepx's default within 1.2x of the better of the default and one thread, in every
load condition.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from _common import WORKDIR, simulated_dataset

BURN = "import time\nt = time.time()\nwhile time.time() - t < 3600:\n    sum(range(10000))\n"


@contextmanager
def competing_load(processes: int):
    """``processes`` busy pure-Python loops, one core each, for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(processes)]
    try:
        time.sleep(1.0 if processes else 0.0)  # let the scheduler settle
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def epoch_seconds(data: Path, threads: str | None, env_extra: dict, batches: int) -> float:
    """One ``hepx train`` process; the epoch's seconds from its ``metrics.csv``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HEPX_THREADS")}
    env.update(env_extra)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "hepx.cli", "-q", "train", "tau3mu/lri_bernoulli_egnn"]
        cmd += ["--out", str(run), "--no-progress", "--set", f"dataset.path={data}"]
        cmd += ["--set", "train.epochs=1", "--set", f"train.max_batches_per_epoch={batches}"]
        if threads is not None:
            cmd += ["--threads", threads]
        subprocess.run(cmd, check=True, env=env)
        with open(run / "metrics.csv", newline="") as fh:
            return float(next(csv.DictReader(fh))["seconds"])


SETTINGS = {
    "hepx default (auto)": (None, {}),
    "1 thread": ("1", {}),
    "all cores, active wait": ("all", {}),
    "all cores, passive wait": ("all", {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3, help="measurements per cell (median)")
    ap.add_argument("--batches", type=int, default=12, help="training batches of the epoch")
    ap.add_argument("--events", type=int, default=4000, help="simulated Tau3Mu events")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    data = simulated_dataset("tau3mu", args.events, workdir=WORKDIR)
    loads = {"idle": 0, "1 busy process": 1, f"{cores} busy processes": cores}
    table: dict[str, dict[str, float]] = {}
    for load, n in loads.items():
        with competing_load(n):
            for name, (threads, env) in SETTINGS.items():
                t = threads if threads != "all" else str(cores)
                times = [epoch_seconds(data, t, env, args.batches) for _ in range(args.repeat)]
                table.setdefault(load, {})[name] = statistics.median(times)
                print(f"{load:<18} {name:<26} {table[load][name]:6.2f} s", flush=True)
    print(f"\nEpoch seconds ({cores} cores, median of {args.repeat}, {args.batches} batches):\n")
    names = list(SETTINGS)
    print("| load | " + " | ".join(names) + " | default / best of (default, 1 thread) |")
    print("|---|" + "---|" * (len(names) + 1))
    for load, row in table.items():
        best = min(row["hepx default (auto)"], row["1 thread"])
        ratio = row["hepx default (auto)"] / best
        cells = " | ".join(f"{row[n]:.2f}" for n in names)
        print(
            f"| {load} | {cells} | {ratio:.2f} ({'within' if ratio <= 1.2 else 'NOT within'} 1.2) |"
        )


if __name__ == "__main__":
    main()
