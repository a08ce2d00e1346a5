"""``hepx demo`` wall time, idle and beside other work, with hepx's threads and with all cores.

    python benchmarks/demo_time.py [--loads 0 1 2] [--settings default all]

Runs the README's demo (``hepx demo --out DIR``, a fresh directory each time, so nothing is
reused) as a fresh process per measurement and prints its wall time (start-up included) with
hepx's default thread setting (``auto``) and with as many threads as cores (the setting hepx
used to leave to torch), on an idle machine and beside busy pure-Python processes (one core
each). The goal: within 3 minutes on 2 cores in every load condition. The demo's own figures
(test and held-out interpretation AUC) are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threads import competing_load


def run_demo(threads: str | None) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HEPX_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "hepx.cli", "-q", "demo", "--out", str(Path(tmp) / "demo")]
        if threads is not None:
            cmd += ["--threads", threads]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        seconds = time.perf_counter() - t0
        return seconds, json.loads((Path(tmp) / "demo" / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2], help="busy processes")
    ap.add_argument(
        "--settings", nargs="+", default=["default", "all"], choices=["default", "all", "1"]
    )
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    for load in args.loads:
        with competing_load(load):
            for setting in args.settings:
                threads = {"default": None, "all": str(cores), "1": "1"}[setting]
                seconds, s = run_demo(threads)
                rows.append((load, setting, s["threads"], seconds, s))
                print(
                    f"{load} busy, {setting}: {seconds:.0f} s ({s['threads']} threads)", flush=True
                )
    print(f"\n`hepx demo` on {cores} cores (wall time, start-up included):\n")
    print("| competing busy processes | threads setting | threads used | seconds | within 3 min | "
          "ActsTrack interp AUC test / held-out | Tau3Mu pred AUC / interp AUC test |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for load, setting, used, seconds, s in rows:
        a, t = s["actstrack"], s["tau3mu"]
        print(
            f"| {load} | {'hepx default (auto)' if setting == 'default' else setting} | {used} | "
            f"{seconds:.0f} | {'yes' if seconds <= 180 else 'NO'} | "
            f"{a['test']['test_interp_auc']:.3f} / {a['held_out']['interp_auc']:.3f} | "
            f"{t['test']['test_pred_auc']:.3f} / {t['test']['test_interp_auc']:.3f} |"
        )


if __name__ == "__main__":
    main()
