"""Peak memory of simulate, convert and score against the number of events.

    python benchmarks/memory.py --base REV [--head REV] [--events 100000 1000000 3000000]
                                [--kind tau3mu|actstrack] [--work DIR]

For each sample size the script simulates a Tau3Mu ntuple, converts it and scores it with a
small trained run, each step in its own process through the command line, and prints the
peak resident memory (the process's ``ru_maxrss``) of hepx and of hepx at ``--base`` (a git
worktree, the baseline) side by side; ``--kind actstrack`` measures simulate and convert of
ActsTrack (hits and particles files, 2 T) instead. hepx streams: its peaks should not grow with the
number of events, only with the reader's chunk (``step_size``, default 100 MB) and the
scoring chunk. Single-threaded on both sides; the times printed are for orientation only
(the machine may be shared). Each finished measurement is kept in ``WORK/records.json``, so a
run that is stopped resumes where it stopped when given the same ``--work``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeded_equivalence import checkout

#: A small LRI-Bernoulli DGCNN: the run that scores the files (its quality is not the point here).
RUN_CONFIG = """dataset: {path: DATA, kind: tau3mu}
model: {backbone: dgcnn, method: lri_bernoulli, hidden_channels: 16, num_layers: 2,
        graph: {kind: radius, r: 1.0}}
train: {epochs: 1, warmup: 0, batch_size: 128, seed: 1}
eval: {precision_k: [3]}
"""
TRAIN_ENTRIES = 20000
#: Events per model batch when scoring (larger than the default 64: fewer, cheaper steps).
SCORE_BATCH = 512


def peak_rss(src: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``hepx ARGS`` with the hepx in ``src``; (peak RSS in MB, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update(HEPX_THREADS="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "hepx.cli", "-q", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0


def trained_run(src: Path, ntuple: Path, work: Path) -> Path:
    """A one-epoch run of :data:`RUN_CONFIG` on the first entries of ``ntuple``."""
    run = work / "run"
    if (run / "checkpoints" / "last.pt").exists():
        return run
    data = work / "train_data"
    reader = work / "reader.yaml"
    reader.write_text(f"reader: {{entry_stop: {TRAIN_ENTRIES}}}\n")
    convert = ["convert", "tau3mu", str(ntuple), "--out", str(data), "--config", str(reader)]
    peak_rss(src, convert, work)
    (work / "run.yaml").write_text(RUN_CONFIG.replace("DATA", str(data)))
    peak_rss(src, ["train", str(work / "run.yaml"), "--out", str(run), "--no-progress"], work)
    return run


def measure(src: Path, events: int, work: Path, run: Path | None) -> dict[str, tuple]:
    """Peak RSS and time of each step for one sample size with the hepx in ``src``."""
    sim, data, scored = work / f"sim_{events}", work / f"data_{events}", work / f"scored_{events}"
    subprocess.run(["rm", "-rf", str(sim)], check=True)  # a stopped run's files
    out = {"simulate": peak_rss(src, _simulate(events, sim), work)}
    ntuple = str(sim / "ntuple.root")
    out["convert"] = peak_rss(src, ["convert", "tau3mu", ntuple, "--out", str(data)], work)
    if run is None:
        run = trained_run(src, sim / "ntuple.root", work)
    score = ["explain", str(run), ntuple, "--out", str(scored), "--batch-size", str(SCORE_BATCH)]
    out["score"] = peak_rss(src, score, work)
    for path in (data, scored):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    return out


def measure_actstrack(src: Path, events: int, work: Path) -> dict[str, tuple]:
    """Peak RSS and time of simulating and converting ``events`` ActsTrack events."""
    sim, data = work / f"sim_{events}", work / f"data_{events}"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rm", "-rf", str(sim)], check=True)
    simulate = ["simulate", "actstrack", "--events", str(events), "--seed", "3", "--out", str(sim)]
    out = {"simulate": peak_rss(src, simulate, work)}
    out["convert"] = peak_rss(src, ["convert", "actstrack", str(sim), "--out", str(data)], work)
    subprocess.run(["rm", "-rf", str(data)], check=True)
    return out


def _simulate(events: int, out: Path) -> list[str]:
    return ["simulate", "tau3mu", "--events", str(events), "--seed", "3", "--out", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision of the baseline")
    parser.add_argument("--head", default=None, help="git revision (default: this tree)")
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument("--kind", choices=("tau3mu", "actstrack"), default="tau3mu")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hepx-memory-"))
    sides = {"hepx": checkout(args.head, work), f"base {args.base}": checkout(args.base, work)}
    records = work / ("records.json" if args.kind == "tau3mu" else f"records_{args.kind}.json")
    results = json.loads(records.read_text()) if records.exists() else {}
    for name, src in sides.items():
        side = work / name.replace(" ", "_")
        side.mkdir(parents=True, exist_ok=True)
        done = results.setdefault(name, {})
        for events in sorted(args.events):
            if str(events) in done:
                continue
            if args.kind == "tau3mu":
                done[str(events)] = measure(src, events, side, None)
            else:
                done[str(events)] = measure_actstrack(src, events, side / args.kind)
            subprocess.run(["rm", "-rf", str(side / f"sim_{events}")], check=True)
            records.write_text(json.dumps(results, indent=1))
            print(f"{name}: {events} events done", file=sys.stderr, flush=True)
    print(f"{'step':9} {'events':>9} " + " ".join(f"{n:>24}" for n in sides))
    print(f"{'':9} {'':>9} " + " ".join(f"{'peak MB':>12}{'s':>12}" for _ in sides))
    steps = ("simulate", "convert", "score") if args.kind == "tau3mu" else ("simulate", "convert")
    print(f"kind: {args.kind}")
    for step in steps:
        for events in sorted(args.events):
            cells = [results[n][str(events)][step] for n in sides]
            line = " ".join(f"{mb:12.0f}{sec:12.1f}" for mb, sec in cells)
            print(f"{step:9} {events:9d} {line}")


if __name__ == "__main__":
    main()
