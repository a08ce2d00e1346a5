"""Scale-out of ``hepx explain``: events/s in one process vs a dask LocalCluster of 1 and N workers.

    python benchmarks/scale.py [--files 20] [--events 2000] [--workers 1 2] [--device cpu|cuda]

Simulates ``--files`` Tau3Mu ntuples and trains the reference LRI-Bernoulli EGNN
(the shipped config tau3mu/lri_bernoulli_egnn) for one epoch on the first file (both cached under
the temporary work directory), then times :func:`hepx.scoring.score_files` over all
files, same run, same inputs, the model on ``--device`` (default: cuda when available):

* ``local``: the single-process run (``executor=None``), torch limited to 1 thread, the
  per-worker budget (``torch.set_num_threads(1)``);
* ``dask xN``: :func:`hepx.scale.local_cluster` of N single-threaded worker processes
  (``OMP_NUM_THREADS=1``: torch uses 1 thread), as ``hepx explain --executor dask`` starts it.
  On CUDA every worker loads the model onto the same GPU (``cuda``, the current device: each
  worker process holds its own CUDA context there); reading ROOT files and the numba
  post-processing stay on the workers' CPUs.

Each mode first explains one file per worker untimed (imports, numba kernels, first-call
set-up); the cluster start-up is printed apart. Loading the model on each worker is timed.
The outputs of every run are compared with the local one: on CPU they are identical; on CUDA
the scatter sums of message passing add in a varying order, so the largest difference of the
per-event probabilities and per-hit importances is printed instead when they are not.
Speed-ups are relative to ``local``; they are bounded by the cores the machine really has free
(see ``load``). Printed beside them: the device, torch and torch-cluster, the graph backends that
built the graphs in each mode, the peak resident memory and, on CUDA, the peak GPU memory
allocated by torch (per process: the local one and each worker). ``--device cuda`` where CUDA
is not available stops with one line (exit code 2) before anything is simulated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import torch
from _common import WORKDIR
from train_speed import (
    backend_counts,
    describe_environment,
    device_or_exit,
    format_backends,
    peak_gpu_mib,
    peak_rss_mib,
)

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


def trained_run(file: Path, workdir: Path, device: torch.device | str = "cpu") -> Path:
    """The one-epoch reference run on ``file``, trained on ``device`` (reused if there)."""
    run = workdir / f"run_{file.parent.name}"
    if RunLayout(run).checkpoint("best").exists():
        return run
    data = workdir / "data" / file.parent.name
    if not (data / "manifest.json").exists():
        convert("tau3mu", [file], data)
    cfg = load_yaml(CONFIG)
    cfg["dataset"]["path"] = str(data)
    cfg["train"]["epochs"] = 1
    train(cfg, run, device=str(device), progress=False)
    return run


def _worker_warm_up(device: str = "cpu") -> tuple[int, str | None]:
    """On a worker: imports; returns its torch threads and, for ``device`` cuda, the GPU's
    name (``None`` where the worker has no CUDA)."""
    import torch

    import hepx.scoring  # noqa: F401  (imports torch_geometric, uproot, awkward)

    gpu = None
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return torch.get_num_threads(), gpu


def _worker_stats(device: str = "cpu") -> dict:
    """On a worker (or here): peak RSS, peak GPU memory on ``device`` (MiB) and the graphs
    built per backend since the last reset (which this call does)."""
    return {
        "rss": peak_rss_mib(),
        "gpu": peak_gpu_mib(torch.device(device)),
        "graphs": backend_counts(reset=True),
    }


def timed(
    run: Path, files: list[Path], out: Path, executor=None, device: torch.device | str = "cpu"
) -> tuple[float, dict]:
    t0 = time.perf_counter()
    manifest = explain_files(
        run, files, out, overwrite=True, progress=False, executor=executor, device=str(device)
    )
    return time.perf_counter() - t0, manifest


def compare(events: ak.Array, ref: ak.Array) -> str:
    """``yes`` if ``events`` equal ``ref`` bit for bit, else the largest difference of the
    per-event ``prob`` and the per-hit ``importance`` (or ``NO`` if their layout differs)."""
    if bool(ak.array_equal(events, ref, equal_nan=True)):
        return "yes"
    if len(events) != len(ref) or not bool(
        ak.all(ak.num(events.hits, axis=1) == ak.num(ref.hits, axis=1))
    ):
        return "NO (different events or hits)"
    dp = np.nanmax(np.abs(ak.to_numpy(events.prob) - ak.to_numpy(ref.prob)), initial=0.0)
    imp = ak.to_numpy(ak.flatten(events.hits.importance))
    di = np.nanmax(np.abs(imp - ak.to_numpy(ak.flatten(ref.hits.importance))), initial=0.0)
    return f"not bitwise; max |diff| prob {dp:.2e}, hit importance {di:.2e}"


def local_mode(run: Path, files: list[Path], out_root: Path, device: torch.device) -> dict:
    """The single-process baseline: warm-up, then the timed run over ``files``."""
    timed(run, files[:1], out_root / "warm-up", device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    backend_counts(reset=True)
    sec, ref = timed(run, files, out_root / "local", device=device)
    stats = _worker_stats(str(device))
    return {"mode": "local", "workers": 1, "sec": sec, "manifest": ref, "stats": [stats]}


def dask_mode(run: Path, files: list[Path], out_root: Path, device: torch.device, n: int) -> dict:
    """A LocalCluster of ``n`` workers: start-up printed, warm-up, then the timed run."""
    from distributed import Client

    t0 = time.perf_counter()
    with local_cluster(n) as cluster, Client(cluster) as client:
        info = list(client.run(_worker_warm_up, str(device)).values())
        threads = sorted({t for t, _ in info})
        gpus = sorted({str(g) for _, g in info})
        if device.type == "cuda" and "None" in gpus:
            print(f"error: a dask worker has no CUDA for --device {device}", file=sys.stderr)
            raise SystemExit(2)
        share = (
            f"; {n} worker(s) share {device} ({', '.join(gpus)})" if device.type == "cuda" else ""
        )
        print(
            f"LocalCluster of {n} worker(s) up in {time.perf_counter() - t0:.1f} s "
            f"(torch threads per worker: {threads}{share})"
        )
        executor = dask_executor(cluster.scheduler_address)
        timed(run, files[:n], out_root / "warm-up", executor, device)
        client.run(_worker_stats, str(device))  # resets the graph counts
        out = out_root / f"dask{n}"
        sec, manifest = timed(run, files, out, executor, device)
        stats = list(client.run(_worker_stats, str(device)).values())
    return {"mode": f"dask x{n}", "workers": n, "sec": sec, "manifest": manifest, "stats": stats}


def memory_note(stats: list[dict]) -> str:
    """Peak RSS (and GPU memory) of the processes of a mode: the largest of them."""
    note = f"RSS {max(s['rss'] for s in stats):.0f}"
    gpu = [s["gpu"] for s in stats if s["gpu"] is not None]
    return note + (f", GPU {max(gpu):.0f}" if gpu else "")


def print_table(rows: list[dict], n_events: int) -> None:
    print(
        f"{'mode':<10} {'workers':>7} {'seconds':>8} {'events/s':>9} {'speed-up':>8}  "
        f"{'graphs':<10} {'peak MiB (process)':<22} identical to local"
    )
    base = rows[0]["sec"]
    for r in rows:
        graphs: dict[str, int] = {}
        for s in r["stats"]:
            for k, v in s["graphs"].items():
                graphs[k] = graphs.get(k, 0) + v
        print(
            f"{r['mode']:<10} {r['workers']:>7} {r['sec']:>8.2f} {n_events / r['sec']:>9.0f} "
            f"{base / r['sec']:>7.2f}x  {format_backends(graphs):<10} "
            f"{memory_note(r['stats']):<22} {r.get('identical', '-')}"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--events", type=int, default=2000, help="events per file")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=WORKDIR / "scale")
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda (cuda:N); default: cuda when available",
    )
    args = ap.parse_args(argv)
    device = device_or_exit(args.device)

    load = os.getloadavg()[0]  # other jobs on the machine, before this one starts
    print(describe_environment(device))
    t0 = time.perf_counter()
    files = simulated_files(args.files, args.events, args.workdir)
    run = trained_run(files[0], args.workdir, device)
    print(f"inputs and run ready in {time.perf_counter() - t0:.1f} s (cached in {args.workdir})")
    out_root = args.workdir / "explain"
    torch.set_num_threads(1)

    rows = [local_mode(run, files, out_root, device)]
    n_events = sum(o["events"] for o in rows[0]["manifest"]["outputs"])
    _, ref_events = load_explained(out_root / "local")
    rows[0]["identical"] = "(reference)"
    for n in args.workers:
        row = dask_mode(run, files, out_root, device, n)
        row["identical"] = compare(load_explained(out_root / f"dask{n}")[1], ref_events)
        rows.append(row)

    print(
        f"\nhepx explain over {len(files)} Tau3Mu files, {n_events} events "
        f"({args.events}/file), reference LRI-Bernoulli EGNN on {device}, {os.cpu_count()} "
        f"CPU(s), load average {load:.1f} at start:"
    )
    print_table(rows, n_events)
    shutil.rmtree(out_root, ignore_errors=True)


if __name__ == "__main__":
    main()
