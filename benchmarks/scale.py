"""Scale-out of ``hepx explain``: events/s in one process vs a dask LocalCluster of 1 and N workers.

    python benchmarks/scale.py [--files 20] [--events 2000] [--workers 1 2]

Simulates ``--files`` Tau3Mu ntuples and trains the reference LRI-Bernoulli EGNN
(the shipped config tau3mu/lri_bernoulli_egnn) for one epoch on the first file (both cached under
the temporary work directory), then times :func:`hepx.scoring.score_files` over all
files, same run, same inputs:

* ``local``: the single-process run (``executor=None``), torch limited to 1 thread, the
  per-worker budget (``torch.set_num_threads(1)``);
* ``dask xN``: :func:`hepx.scale.local_cluster` of N single-threaded worker processes
  (``OMP_NUM_THREADS=1``: torch uses 1 thread), as ``hepx explain --executor dask`` starts it.

Each mode first explains one file per worker untimed (imports, numba kernels, first-call
set-up); the cluster start-up is printed apart. Loading the model on each worker is timed.
The outputs of every run are checked to be identical to the local one. Speed-ups are relative
to ``local``; they are bounded by the cores the machine really has free (see ``load``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import awkward as ak
import torch
from _common import WORKDIR

from hepx import sim
from hepx.config import find_config, load_yaml
from hepx.data import convert
from hepx.run import RunLayout
from hepx.scale import dask_executor, local_cluster
from hepx.scoring import load_scored as load_explained
from hepx.scoring import score_files as explain_files
from hepx.training import train

CONFIG = find_config("tau3mu/lri_bernoulli_egnn")


def simulated_files(n: int, events: int, workdir: Path) -> list[Path]:
    files = []
    for i in range(n):
        out = workdir / "sim" / f"tau3mu_{events}_s{i}"
        if not (out / "ntuple.root").exists():
            sim.simulate_tau3mu(out, events=events, seed=i)
        files.append(out / "ntuple.root")
    return files


def trained_run(file: Path, workdir: Path) -> Path:
    run = workdir / f"run_{file.parent.name}"
    if RunLayout(run).checkpoint("best").exists():
        return run
    data = workdir / "data" / file.parent.name
    if not (data / "manifest.json").exists():
        convert("tau3mu", [file], data)
    cfg = load_yaml(CONFIG)
    cfg["dataset"]["path"] = str(data)
    cfg["train"]["epochs"] = 1
    train(cfg, run, progress=False)
    return run


def _worker_warm_up() -> int:
    import torch

    import hepx.scoring  # noqa: F401  (imports torch_geometric, uproot, awkward)

    return torch.get_num_threads()


def timed(run: Path, files: list[Path], out: Path, executor=None) -> tuple[float, dict]:
    t0 = time.perf_counter()
    manifest = explain_files(run, files, out, overwrite=True, progress=False, executor=executor)
    return time.perf_counter() - t0, manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--events", type=int, default=2000, help="events per file")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=WORKDIR / "scale")
    args = ap.parse_args()

    from distributed import Client

    load = os.getloadavg()[0]  # other jobs on the machine, before this one starts
    t0 = time.perf_counter()
    files = simulated_files(args.files, args.events, args.workdir)
    run = trained_run(files[0], args.workdir)
    print(f"inputs and run ready in {time.perf_counter() - t0:.1f} s (cached in {args.workdir})")
    out_root = args.workdir / "explain"
    torch.set_num_threads(1)

    timed(run, files[:1], out_root / "warm-up")
    sec, ref = timed(run, files, out_root / "local")
    n_events = sum(o["events"] for o in ref["outputs"])
    rows = [("local", 1, sec)]
    _, ref_events = load_explained(out_root / "local")
    identical = True
    for n in args.workers:
        t0 = time.perf_counter()
        with local_cluster(n) as cluster, Client(cluster) as client:
            threads = set(client.run(_worker_warm_up).values())
            print(
                f"LocalCluster of {n} worker(s) up in {time.perf_counter() - t0:.1f} s "
                f"(torch threads per worker: {sorted(threads)})"
            )
            executor = dask_executor(cluster.scheduler_address)
            timed(run, files[:n], out_root / "warm-up", executor)
            out = out_root / f"dask{n}"
            sec, _ = timed(run, files, out, executor)
        rows.append((f"dask x{n}", n, sec))
        _, events = load_explained(out)
        identical &= bool(ak.array_equal(events, ref_events, equal_nan=True))

    print(
        f"\nhepx explain over {len(files)} Tau3Mu files, {n_events} events "
        f"({args.events}/file), reference LRI-Bernoulli EGNN, {os.cpu_count()} CPU(s), "
        f"load average {load:.1f} at start:"
    )
    print(f"{'mode':<10} {'workers':>7} {'seconds':>8} {'events/s':>9} {'speed-up':>8}")
    base = rows[0][2]
    for mode, workers, sec in rows:
        print(f"{mode:<10} {workers:>7} {sec:>8.2f} {n_events / sec:>9.0f} {base / sec:>7.2f}x")
    print(f"outputs identical to the local run: {'yes' if identical else 'NO'}")
    shutil.rmtree(out_root, ignore_errors=True)


if __name__ == "__main__":
    main()
