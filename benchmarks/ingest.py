"""Ingest benchmark: hepx's ROOT -> dataset conversion beside a bare uproot read of the same
branches, for Tau3Mu and ActsTrack.

    python benchmarks/ingest.py [--tau3mu-events 100000] [--acts-events 10000] [--repeat 3]
                                [--base REV] [--workdir DIR]

Two comparisons, on the same files in the same run (the machine is noisy: read the ratios):

* whole process: ``hepx convert KIND ...`` in a fresh process, start-up and imports included,
  against ``python -c`` reading the same branches with uproot in a fresh process;
* in process: :func:`hepx.data.convert` against the same uproot read, imports done.

The goal: both ratios at most 1.5. ``--step-sizes N ...`` adds a third table: the ActsTrack
conversion in process with the reader's ``step_size`` set to each value (hits-tree entries per
chunk; smaller chunks bound the memory more tightly), per side. With ``--base REV`` the hepx
figures are also measured with the code of REV (a git worktree, put first on ``PYTHONPATH``;
the processes run in the work directory, so that the current directory does not shadow it),
interleaved with this tree's.
Each figure is the best of ``--repeat``. The simulated inputs are cached in the work directory
and reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("tau3mu", "actstrack")
GOAL = 1.5


def prepare(args: argparse.Namespace) -> dict[str, dict]:
    """Per kind: ``hepx convert``'s inputs, the bare read (Python source), events and hits.
    The inputs are simulated once into the work directory."""
    import uproot

    from hepx import sim
    from hepx.io.acts import HIT_KINEMATICS, PARTICLE_FIELDS
    from hepx.io.cms_muon import DEFAULT_FILTERS, HIT_FIELDS

    tau_dir = args.workdir / f"tau3mu_{args.tau3mu_events}"
    acts_dir = args.workdir / f"acts_{args.acts_events}"
    if not (tau_dir / "ntuple.root").exists():
        sim.simulate_tau3mu(tau_dir, events=args.tau3mu_events, seed=1)
    if not (acts_dir / "hits.root").exists():
        sim.simulate_actstrack(acts_dir, events=args.acts_events, seed=1)
    ntuple = str(tau_dir / "ntuple.root")
    tau_branches = sorted(
        {
            *HIT_FIELDS.values(),
            *(f["branch"] for f in DEFAULT_FILTERS),
            "mu_hit_truth_tau",
            "n_gen_tau",
        }
    )
    hit_branches = ["event_id", "geometry_id", "particle_id", *HIT_KINEMATICS, "index"]
    part_branches = ["event_id", "particle_id", *PARTICLE_FIELDS]
    # Files are reopened for every read: uproot caches arrays on an open tree.
    tau_read = (
        "import uproot\n"
        f"uproot.open({ntuple!r})['Ntuplizer/MuonTrackTree'].arrays({tau_branches!r}, "
        "library='ak')\n"
    )
    acts_read = (
        "import uproot\n"
        f"uproot.open({str(acts_dir / 'hits.root')!r})['hits'].arrays({hit_branches!r}, "
        "library='np')\n"
        f"uproot.open({str(acts_dir / 'particles.root')!r})['particles'].arrays("
        f"{part_branches!r}, library='ak')\n"
    )
    tree = uproot.open(ntuple)["Ntuplizer/MuonTrackTree"]
    tau_hits = int(tree["n_mu_hit"].array(library="np").sum())
    acts_hits = uproot.open(acts_dir / "hits.root")["hits"].num_entries
    return {
        "tau3mu": {
            "inputs": [ntuple],
            "read": tau_read,
            "events": args.tau3mu_events,
            "hits": tau_hits,
        },
        "actstrack": {
            "inputs": [str(acts_dir)],
            "read": acts_read,
            "events": args.acts_events,
            "hits": acts_hits,
        },
    }


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def _check_source(src: Path, cwd: Path) -> None:
    """Refuse a side whose ``import hepx`` would not come from ``src``."""
    code = "import hepx; print(hepx.__file__)"
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, env=_env(src), cwd=cwd, capture_output=True, text=True, check=True)
    if not Path(out.stdout.strip()).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"hepx comes from {out.stdout.strip()}, not from {src}")


def _wall(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def whole_process(cases: dict, sides: dict[str, Path], work: Path, repeat: int) -> dict:
    """Best wall time of fresh processes: ``{(kind, "uproot read" or side): seconds}``,
    the commands interleaved."""
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeat):
        for kind, case in cases.items():
            runs = [("uproot read", [sys.executable, "-c", case["read"]], dict(os.environ))]
            for name, src in sides.items():
                out = work / f"out_{kind}_{name.replace(' ', '_')}"
                cmd = [sys.executable, "-m", "hepx.cli", "-q", "convert", kind, *case["inputs"]]
                runs.append((name, [*cmd, "--out", str(out)], _env(src)))
            for name, cmd, env in runs:
                seconds = _wall(cmd, env, work)
                best[kind, name] = min(best.get((kind, name), seconds), seconds)
    return best


def in_process(cases: dict, sides: dict[str, Path], work: Path, repeat: int) -> dict:
    """Best times inside one process per kind and side (this script with ``--child``, the
    side's hepx first on ``PYTHONPATH``): ``{(kind, "uproot read" or side): seconds}``; the
    uproot figure is the best of all sides'."""
    best: dict[tuple[str, str], float] = {}
    for kind, case in cases.items():
        for name, src in sides.items():
            spec = {
                "kind": kind,
                **case,
                "out": str(work / f"inproc_{kind}_{name.replace(' ', '_')}"),
                "repeat": repeat,
            }
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
            proc = subprocess.run(cmd, env=_env(src), cwd=work, capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(proc.stderr)
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            best[kind, name] = got["hepx"]
            read = best.get((kind, "uproot read"), got["uproot read"])
            best[kind, "uproot read"] = min(read, got["uproot read"])
    return best


def by_step_size(case: dict, sides: dict[str, Path], work: Path, steps, repeat: int) -> dict:
    """Best in-process ActsTrack conversion time per side and ``step_size`` (one process per
    side, the steps interleaved): ``{(step, side): seconds}``, and ``(step, "uproot read")``."""
    best: dict[tuple, float] = {}
    for name, src in sides.items():
        spec = {
            "kind": "actstrack",
            **case,
            "out": str(work / f"steps_{name.replace(' ', '_')}"),
            "repeat": repeat,
            "steps": list(steps),
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
        proc = subprocess.run(cmd, env=_env(src), cwd=work, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        for step in steps:
            best[step, name] = got[f"hepx {step}"]
        read = min(got["uproot read"], best.get((None, "uproot read"), math.inf))
        best[None, "uproot read"] = read
    return best


def child(spec: dict) -> None:
    """``--child``: the in-process figures of one kind with the hepx on ``sys.path`` (with
    ``steps``: one per ``step_size``, interleaved)."""
    from hepx.data import convert

    steps = spec.get("steps") or [None]
    times: dict[str, list[float]] = {"uproot read": []}
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        exec(spec["read"], {})
        times["uproot read"].append(time.perf_counter() - t0)
        for step in steps:
            options = None if step is None else {"step_size": step}
            t0 = time.perf_counter()
            convert(
                spec["kind"], spec["inputs"], spec["out"], reader_options=options, overwrite=True
            )
            times.setdefault("hepx" if step is None else f"hepx {step}", []).append(
                time.perf_counter() - t0
            )
    print(json.dumps({key: min(values) for key, values in times.items()}))


def table(title: str, cases: dict, sides: dict[str, Path], best: dict) -> None:
    """One markdown table: the uproot read, then each side's time and ratio to it."""
    print(f"\n{title}\n")
    head = "| dataset | events | hits | uproot read |"
    head += "".join(f" {name} | ratio |" for name in sides)
    print(head)
    print("|" + "---|" * (4 + 2 * len(sides)))
    for kind, case in cases.items():
        bare = best[kind, "uproot read"]
        row = f"| {kind} | {case['events']:,} | {case['hits'] / 1e6:.2f}M | {bare:.2f} s |"
        for name in sides:
            row += f" {best[kind, name]:.2f} s | {best[kind, name] / bare:.2f} |"
        print(row)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tau3mu-events", type=int, default=100_000)
    ap.add_argument("--acts-events", type=int, default=10_000)
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hepx-bench-ingest"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (the best is kept)")
    ap.add_argument("--base", default=None, help="git revision to measure beside this tree")
    ap.add_argument("--kind", choices=KINDS, nargs="+", default=list(KINDS))
    ap.add_argument(
        "--step-sizes", type=int, nargs="*", default=[], help="ActsTrack chunk sizes (entries)"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = {k: v for k, v in prepare(args).items() if k in args.kind}
    sides = {"hepx convert": REPO}
    if args.base:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from seeded_equivalence import checkout

        sides[f"base {args.base}"] = checkout(args.base, args.workdir)
    for src in sides.values():
        _check_source(src, args.workdir)
    every = f"best of {args.repeat}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"
    if args.step_sizes and "actstrack" in cases:
        steps = args.step_sizes
        best = by_step_size(cases["actstrack"], sides, args.workdir, steps, args.repeat)
        print(f"\nActsTrack in process by chunk size ({every}; uproot read: the whole file)\n")
        print("| step_size (entries) |" + "".join(f" {name} |" for name in sides))
        print("|---|" + "---|" * len(sides))
        print(f"| uproot read | {best[None, 'uproot read']:.2f} s |" + " |" * (len(sides) - 1))
        for step in steps:
            print(f"| {step:,} |" + "".join(f" {best[step, name]:.2f} s |" for name in sides))
    best = whole_process(cases, sides, args.workdir, args.repeat)
    table(f"Whole process (fresh `python`, start-up included; {every}):", cases, sides, best)
    best = in_process(cases, sides, args.workdir, args.repeat)
    table(f"In process (imports done; {every}):", cases, sides, best)
    print(f"\nratio = hepx / bare uproot read of the same branches (goal: <= {GOAL})")


if __name__ == "__main__":
    main()
