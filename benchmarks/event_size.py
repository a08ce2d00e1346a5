"""Hits per second against event size: training and scoring, glibc's allocator defaults
beside hepx's (:func:`hepx.allocator.tune_allocator`), side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/event_size.py [--events 600] [--budget 50000]
        [--steps 8] [--repeats 2] [--work DIR]

One ActsTrack simulation at pileup 200, converted three times: 10 sampled tracks per event
(about a hundred hits), 100 tracks (about a thousand) and full events (about ten thousand).
Every step sees about the same number of hits (a batch budget of ``--budget`` hits, the
full-event configs' training budget; the table shows the hits per step), so hits per second
measures the cost per hit at each event size. The model is the shipped LRI-Bernoulli
EGNN of ActsTrack. Each (size, allocator) cell runs in a fresh single-threaded process, the
allocator settings alternating, ``--repeats`` times; the table gives the best repeat (the one
least slowed by other jobs), with the system-time share and the page faults per step.
"""

from __future__ import annotations

import argparse
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


def measure(data: Path, budget: int, steps: int, tuned: bool) -> dict:
    """Train and score hits/s of the shipped ActsTrack LRI-Bernoulli EGNN on ``data`` (in this
    process, one thread), with or without the allocator tuning."""
    import torch

    import hepx.allocator

    torch.set_num_threads(1)
    applied = hepx.allocator.tune_allocator() if tuned else False
    from hepx.config import find_config, load_yaml, resolve_run_config
    from hepx.data import load_dataset
    from hepx.data.batching import make_loader
    from hepx.models import build_model
    from hepx.training import TrainStep

    ds = load_dataset(data)
    cfg = load_yaml(find_config("actstrack/lri_bernoulli_egnn"))
    cfg["dataset"]["path"] = str(data)
    cfg = resolve_run_config(cfg)
    torch.manual_seed(0)
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta["period"]
    )
    step = TrainStep(model, pred_coef=1.0, info_coef=cfg["train"]["info_loss_coef"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = list(make_loader(ds, batch_size=10**6, max_points=budget))
    # the budget's full batches only (the last, partial one would lower the hits per step)
    batches = [b for b in batches if b.num_nodes >= 0.8 * budget] or batches
    batches = (batches * (steps // len(batches) + 2))[: steps + 1]

    def train_one(b) -> None:
        opt.zero_grad()
        step(b)[0].backward()
        opt.step()

    def score_one(b) -> None:
        with torch.no_grad():
            model(b)

    out = {
        "allocator": "hepx" if applied else "glibc default",
        "hits_per_event": sum(b.num_nodes for b in batches) / sum(b.num_graphs for b in batches),
        "hits_per_step": sum(b.num_nodes for b in batches) / len(batches),
    }
    for name, fn, mode in (("train", train_one, True), ("score", score_one, False)):
        model.train(mode)
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
    return out


def _child(args, data: Path, tuned: bool) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(data), "--budget", str(args.budget)]
    cmd += ["--steps", str(args.steps)] + (["--tuned"] if tuned else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HEPX_MALLOC": "" if tuned else "default"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    head = (
        "| event size | hits / event | hits / step | allocator | train hits/s | sys "
        "| faults/step | score hits/s | sys | faults/step |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['hits_per_event']:.0f} | {r['hits_per_step']:,.0f} "
            f"| {r['allocator']} "
            f"| {r['train_hits_per_s']:,.0f} | {r['train_sys_share']:.0%} "
            f"| {r['train_faults_per_step']:,.0f} | {r['score_hits_per_s']:,.0f} "
            f"| {r['score_sys_share']:.0%} | {r['score_faults_per_step']:,.0f} |"
        )
    lines.append("")
    for alloc in dict.fromkeys(r["allocator"] for r in rows):
        mine = [r for r in rows if r["allocator"] == alloc]
        for what in ("train", "score"):
            v = [r[f"{what}_hits_per_s"] for r in mine]
            lines.append(f"{alloc}, {what}: fastest / slowest size = {max(v) / min(v):.2f}")
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
    p.add_argument("--work", type=Path, default=Path("/tmp/hepx-bench/event_size"))
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.budget, args.steps, args.tuned)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    data = _datasets(args.work, args.events, args.seed)
    rows = []
    for size, path in data.items():
        best: dict[bool, dict] = {}
        for rep in range(args.repeats):
            for tuned in (False, True) if rep % 2 == 0 else (True, False):
                r = _child(args, path, tuned)
                keep = best.get(tuned)
                if keep is None or r["train_hits_per_s"] > keep["train_hits_per_s"]:
                    best[tuned] = r
        rows += [{"size": size, **best[False]}, {"size": size, **best[True]}]
        print(f"{size}: done", file=sys.stderr, flush=True)
    text = _table(rows)
    print(text)
    (args.work / "event_size.md").write_text(text + "\n")
    (args.work / "event_size.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
