"""Ingest benchmark: bare uproot read of the needed branches vs hepx's full ROOT -> dataset.

    python benchmarks/ingest.py [--tau3mu-events 100000] [--acts-events 10000] [--workdir DIR]

Both figures come from the same run on the same files (the machine is noisy: read the ratio).
The simulated inputs are cached in the work directory and reused.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uproot

from hepx import sim
from hepx.data import convert
from hepx.io.acts import HIT_KINEMATICS, PARTICLE_FIELDS
from hepx.io.cms_muon import DEFAULT_FILTERS, HIT_FIELDS


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tau3mu-events", type=int, default=100_000)
    ap.add_argument("--acts-events", type=int, default=10_000)
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hepx-bench-ingest"
    )
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    work = args.workdir
    tau_dir = work / f"tau3mu_{args.tau3mu_events}"
    acts_dir = work / f"acts_{args.acts_events}"
    if not (tau_dir / "ntuple.root").exists():
        t0 = time.perf_counter()
        sim.simulate_tau3mu(tau_dir, events=args.tau3mu_events, seed=1)
        print(f"simulated {args.tau3mu_events} tau3mu events in {time.perf_counter() - t0:.1f} s")
    if not (acts_dir / "hits.root").exists():
        t0 = time.perf_counter()
        sim.simulate_actstrack(acts_dir, events=args.acts_events, seed=1)
        print(f"simulated {args.acts_events} actstrack events in {time.perf_counter() - t0:.1f} s")

    rows = []
    # Tau3Mu: per-event tree, vector branches.
    # Files are reopened for every read: uproot caches arrays on an open tree.
    tree = uproot.open(tau_dir / "ntuple.root")["Ntuplizer/MuonTrackTree"]
    branches = sorted(
        {
            *HIT_FIELDS.values(),
            *(f["branch"] for f in DEFAULT_FILTERS),
            "mu_hit_truth_tau",
            "n_gen_tau",
        }
    )
    n_hits = int(tree["n_mu_hit"].array(library="np").sum())
    bare = _best(
        lambda: uproot.open(tau_dir / "ntuple.root")["Ntuplizer/MuonTrackTree"].arrays(
            branches, library="ak"
        ),
        args.repeat,
    )
    full = _best(
        lambda: convert("tau3mu", [tau_dir / "ntuple.root"], work / "out_tau3mu"), args.repeat
    )
    rows.append(("tau3mu", args.tau3mu_events, n_hits, bare, full))

    # ActsTrack: flat hits tree + per-event particles tree.
    hits_tree = uproot.open(acts_dir / "hits.root")["hits"]
    hit_branches = ["event_id", "geometry_id", "particle_id", *HIT_KINEMATICS, "index"]
    part_branches = ["event_id", "particle_id", *PARTICLE_FIELDS]
    n_hits = hits_tree.num_entries

    def bare_acts():
        uproot.open(acts_dir / "hits.root")["hits"].arrays(hit_branches, library="np")
        uproot.open(acts_dir / "particles.root")["particles"].arrays(part_branches, library="ak")

    bare = _best(bare_acts, args.repeat)
    full = _best(lambda: convert("actstrack", [acts_dir], work / "out_acts"), args.repeat)
    rows.append(("actstrack", args.acts_events, n_hits, bare, full))

    print()
    print(
        f"{'dataset':<10} {'events':>8} {'hits':>10} | {'uproot read':>11} {'ev/s':>9} {'hits/s':>10} | "
        f"{'hepx convert':>12} {'ev/s':>9} {'hits/s':>10} | {'ratio':>5}"
    )
    for name, n_ev, n_h, bare, full in rows:
        print(
            f"{name:<10} {n_ev:>8} {n_h:>10} | {bare:>10.2f}s {n_ev / bare:>9.0f} {n_h / bare:>10.3g} | "
            f"{full:>11.2f}s {n_ev / full:>9.0f} {n_h / full:>10.3g} | {full / bare:>5.2f}"
        )
    print("\nratio = hepx full conversion time / bare uproot read time (goal: <= 2)")


if __name__ == "__main__":
    main()
