"""Hits per second and step memory against event size: training and scoring in batches capped
by hits, glibc's allocator defaults beside hepx's (:func:`hepx.allocator.tune_allocator`), and
batches of a fixed number of events (the baseline), side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/event_size.py [--events 600] [--budget 50000]
        [--steps 8] [--repeats 2] [--baseline-events 128] [--baseline-max-hits 200000]
        [--work DIR]

One ActsTrack simulation at pileup 200, converted three times: 10 sampled tracks per event
(about a hundred hits), 100 tracks (about a thousand) and full events (about ten thousand).
Every step sees about the same number of hits (a batch budget of ``--budget`` hits, the
full-event configs' training budget; the table shows the hits per step), so hits per second
measures the cost per hit at each event size. The model is the shipped LRI-Bernoulli
EGNN of ActsTrack. Each (size, allocator) cell runs in a fresh single-threaded process, the
allocator settings alternating, ``--repeats`` times; the table gives the best repeat (the one
least slowed by other jobs), with the system-time share and the page faults per step.

Memory: the peak resident memory of each loop (warm-up step included) above the process's
resident memory before it (data set loaded, batches collated, the allocator's free memory
returned with ``malloc_trim``), from Linux's ``VmHWM`` reset through ``/proc/self/clear_refs``;
where the reset is refused, the process's peak since it started (the row says so). The
baseline rows batch ``--baseline-events`` events whatever their size (the shipped ActsTrack
batch size), with hepx's allocator; a size whose batches would exceed ``--baseline-max-hits``
hits is not run (it would not fit the machine) and says so.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"10 tracks": 10, "100 tracks": 100, "full": None}


def _datasets(work: Path, events: int, seed: int) -> dict[str, Path]:
    from hepx.data import convert
    from hepx.sim import simulate_actstrack

    raw = work / f"sim_pu200_{events}_s{seed}"
    if not (raw / "particles.root").exists():
        simulate_actstrack(raw, events=events, seed=seed, pileup=200)
    out = {}
    for name, tracks in SIZES.items():
        data = work / f"data_{events}_s{seed}_{tracks or 'full'}"
        if not (data / "manifest.json").exists():
            convert("actstrack", [raw], data, reader_options={"tracks_per_event": tracks})
        out[name] = data
    return out


def _usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Return the allocator's free memory to the system (glibc's ``malloc_trim``: hepx's
    settings keep it mapped, which would count the last loop's buffers as this one's) and reset
    this process's peak resident memory to its current one (Linux >= 4.0)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    """Peak resident memory of this process since the last :func:`_reset_peak` (or start)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _batches(ds, budget: int, batch_events: int | None, steps: int) -> list:
    """``steps + 1`` full batches of ``ds`` (repeated as needed): capped by ``budget`` hits,
    or of ``batch_events`` events each when given."""
    from hepx.data.batching import make_loader

    if batch_events is None:
        batches = list(make_loader(ds, batch_size=10**6, max_points=budget))
        # the budget's full batches only (the last, partial one would lower the hits per step)
        full = [b for b in batches if b.num_nodes >= 0.8 * budget]
    else:
        batches = list(make_loader(ds, batch_size=batch_events))
        full = [b for b in batches if b.num_graphs == batch_events]
    batches = full or batches
    return (batches * (steps // len(batches) + 2))[: steps + 1]


def measure(
    data: Path,
    budget: int,
    steps: int,
    tuned: bool,
    batch_events: int | None = None,
    max_hits: int | None = None,
) -> dict:
    """Train and score hits/s and step memory of the shipped ActsTrack LRI-Bernoulli EGNN on
    ``data`` (in this process, one thread), with or without the allocator tuning, in batches
    capped by ``budget`` hits or, with ``batch_events``, of that many events (not run, the
    result saying why, if a batch would hold more than ``max_hits`` hits)."""
    import torch

    import hepx.allocator

    torch.set_num_threads(1)
    applied = hepx.allocator.tune_allocator() if tuned else False
    from hepx.config import find_config, load_yaml, resolve_run_config
    from hepx.data import load_dataset
    from hepx.models import build_model
    from hepx.training import TrainStep

    ds = load_dataset(data)
    batches = _batches(ds, budget, batch_events, steps)
    batching = f"{batch_events} events" if batch_events else f"{budget:,} hits"
    largest = max(b.num_nodes for b in batches)
    if max_hits is not None and largest > max_hits:
        return {"batching": batching, "skipped": f"not run: {largest:,} hits per batch"}
    cfg = load_yaml(find_config("actstrack/lri_bernoulli_egnn"))
    cfg["dataset"]["path"] = str(data)
    cfg = resolve_run_config(cfg)
    torch.manual_seed(0)
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta["period"]
    )
    step = TrainStep(model, pred_coef=1.0, info_coef=cfg["train"]["info_loss_coef"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_one(b) -> None:
        opt.zero_grad()
        step(b)[0].backward()
        opt.step()

    def score_one(b) -> None:
        with torch.no_grad():
            model(b)

    out = {
        "batching": batching,
        "allocator": "hepx" if applied else "glibc default",
        "hits_per_event": sum(b.num_nodes for b in batches) / sum(b.num_graphs for b in batches),
        "hits_per_step": sum(b.num_nodes for b in batches) / len(batches),
    }
    for name, fn, mode in (("train", train_one, True), ("score", score_one, False)):
        model.train(mode)
        out["peak_reset"] = _reset_peak()
        before = _rss_bytes()
        fn(batches[0])  # warm-up
        u0, s0, f0 = _usage()
        t0 = time.perf_counter()
        for b in batches[1:]:
            fn(b)
        wall = time.perf_counter() - t0
        u1, s1, f1 = _usage()
        hits = sum(b.num_nodes for b in batches[1:])
        out[f"{name}_hits_per_s"] = hits / wall
        out[f"{name}_sys_share"] = (s1 - s0) / max(u1 - u0 + s1 - s0, 1e-9)
        out[f"{name}_faults_per_step"] = (f1 - f0) / steps
        out[f"{name}_peak_mb"] = (_peak_bytes() - before) / 2**20
    return out


def _child(args, data: Path, tuned: bool, batch_events: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(data), "--budget", str(args.budget)]
    cmd += ["--steps", str(args.steps)] + (["--tuned"] if tuned else [])
    if batch_events is not None:
        cmd += ["--batch-events", str(batch_events), "--max-hits", str(args.baseline_max_hits)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HEPX_MALLOC": "" if tuned else "default"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _row_line(r: dict) -> str:
    head = f"| {r['size']} | {r['batching']} "
    if "skipped" in r:
        return head + f"| {r['skipped']} |" + " |" * 9
    peak = "" if r.get("peak_reset", True) else " (process peak)"
    return (
        head + f"| {r['allocator']} | {r['hits_per_event']:.0f} | {r['hits_per_step']:,.0f} "
        f"| {r['train_hits_per_s']:,.0f} | {r['train_sys_share']:.0%} "
        f"| {r['train_faults_per_step']:,.0f} | {r['train_peak_mb']:,.0f}{peak} "
        f"| {r['score_hits_per_s']:,.0f} | {r['score_sys_share']:.0%} "
        f"| {r['score_peak_mb']:,.0f}{peak} |"
    )


def _table(rows: list[dict]) -> str:
    head = (
        "| event size | batches of | allocator | hits / event | hits / step | train hits/s | sys "
        "| faults/step | train peak MB | score hits/s | sys | score peak MB |"
    )
    lines = [head, "|" + "---|" * 12, *(_row_line(r) for r in rows), ""]
    groups = dict.fromkeys((r["batching"], r.get("allocator")) for r in rows if "skipped" not in r)
    for batching, alloc in groups:
        mine = [r for r in rows if r["batching"] == batching and r.get("allocator") == alloc]
        for what in ("train", "score"):
            v = [r[f"{what}_hits_per_s"] for r in mine]
            m = [r[f"{what}_peak_mb"] for r in mine]
            lines.append(
                f"{batching}, {alloc}, {what}: fastest / slowest size = "
                f"{max(v) / min(v):.2f}; peak MB {min(m):,.0f} to {max(m):,.0f} "
                f"over {len(mine)} sizes"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--events",
        type=int,
        default=600,
        help="simulated events at pileup 200 (enough for "
        "the smallest events to fill a batch: budget / 100 at least)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--budget", type=int, default=50_000, help="hits per batch")
    p.add_argument("--steps", type=int, default=8, help="timed steps per cell")
    p.add_argument("--repeats", type=int, default=2, help="processes per cell (best kept)")
    p.add_argument(
        "--baseline-events",
        type=int,
        default=128,
        help="events per batch of the baseline rows (0: none)",
    )
    p.add_argument(
        "--baseline-max-hits",
        type=int,
        default=200_000,
        help="baseline batches larger than this are not run",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/hepx-bench/event_size"))
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch-events", type=int, help=argparse.SUPPRESS)
    p.add_argument("--max-hits", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        r = measure(
            args.measure, args.budget, args.steps, args.tuned, args.batch_events, args.max_hits
        )
        print(json.dumps(r))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    data = _datasets(args.work, args.events, args.seed)
    rows = []
    for size, path in data.items():
        rows += [{"size": size, **r} for r in _budget_cells(args, path)]
        if args.baseline_events:
            rows.append({"size": size, **_child(args, path, True, args.baseline_events)})
        print(f"{size}: done", file=sys.stderr, flush=True)
    text = _table(rows)
    print(text)
    (args.work / "event_size.md").write_text(text + "\n")
    (args.work / "event_size.json").write_text(json.dumps(rows, indent=1))


def _budget_cells(args, path: Path) -> list[dict]:
    """The budget rows of one event size: glibc's allocator, then hepx's, each the best of
    ``args.repeats`` processes (alternating which goes first)."""
    best: dict[bool, dict] = {}
    for rep in range(args.repeats):
        for tuned in (False, True) if rep % 2 == 0 else (True, False):
            r = _child(args, path, tuned)
            keep = best.get(tuned)
            if keep is None or r["train_hits_per_s"] > keep["train_hits_per_s"]:
                best[tuned] = r
    return [best[False], best[True]]


if __name__ == "__main__":
    main()
