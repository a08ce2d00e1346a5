"""Training speed: events/s of every backbone x method, the plain classifier as the baseline.

    python benchmarks/train_speed.py [--batches 20] [--device cpu|cuda] [--threads N]
        [--datasets actstrack tau3mu] [--backbones dgcnn point_transformer egnn]

Each configuration runs ``--batches`` training steps (after 2 untimed warm-up steps) on the
built-in ActsTrack-sim and Tau3Mu-sim with the reference model sizes and batch sizes. A step
is timed from the batch on the device (the host-to-device copy is not timed) to the end of the
optimiser step; on CUDA between ``torch.cuda.synchronize()`` calls.

The header names the device (on CUDA: the GPU and torch's CUDA version), torch and
torch-cluster (and whether it has CUDA kernels); each row the graph backends that actually
built the model's graphs (``model.graph.backend: auto``: torch-cluster's kernels where it has
them for the device and an event has more than 200 points, hepx's torch path otherwise) and,
on CUDA, the configuration's peak GPU memory (``torch.cuda.max_memory_allocated``); the
footer the process's peak resident memory. ``--device cuda`` where CUDA is not available
stops with one line (exit code 2) before any data is simulated.
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import time

import torch
from _common import simulated_dataset
from torch_geometric.loader import DataLoader

from hepx.config import load_yaml, resolve_run_config, shipped_config_dir
from hepx.data import load_dataset
from hepx.models import build_model
from hepx.training import TrainStep

CONFIGS = shipped_config_dir()
BACKBONES = ("dgcnn", "point_transformer", "egnn")
METHODS = ("plain", "lri_bernoulli", "lri_gaussian")
#: simulated events per dataset
EVENTS = {"actstrack": 3000, "tau3mu": 20000}


class DeviceError(ValueError):
    """The requested device cannot be used here (one line for the user)."""


def check_device(name: str) -> torch.device:
    """``torch.device(name)`` if it can run here (:func:`hepx.device.checked_device`) and is a
    CPU or a CUDA device; else :class:`DeviceError`."""
    from hepx.device import checked_device
    from hepx.errors import ConfigError

    try:
        device = checked_device(name)
    except ConfigError as err:
        raise DeviceError(f"--device {name}: {err}") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {name!r}: this benchmark runs on cpu or cuda")
    return device


def device_or_exit(name: str) -> torch.device:
    """:func:`check_device`, or one line on stderr and exit code 2."""
    try:
        return check_device(name)
    except DeviceError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def describe_environment(device: torch.device) -> str:
    """One line: device (the GPU's name and memory on CUDA), torch, torch-cluster."""
    from hepx.data.graph import cluster_available

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    else:
        where = f"cpu (torch threads {torch.get_num_threads()})"
    if cluster_available():
        import torch_cluster

        kernels = "CPU and CUDA kernels" if cluster_available("cuda") else "CPU kernels only"
        cluster = f"torch-cluster {torch_cluster.__version__} ({kernels})"
    else:
        cluster = "torch-cluster not installed (hepx's torch graph builder only)"
    return f"device {where}, torch {torch.__version__}, {cluster}"


def backend_counts(reset: bool = False) -> dict[str, int]:
    """Graphs built per backend (``torch``/``cluster``) in this process since the last reset
    (``reset``: start counting afresh after returning them).

    The first call wraps :func:`hepx.data.graph._resolve_backend`, which every kNN and radius
    graph goes through, so the counts are of the backend that actually ran, ``auto`` resolved.
    It runs on dask workers too (``client.run``; they import this module).
    """
    import hepx.data.graph as graph

    counts = getattr(graph._resolve_backend, "backend_counts", None)
    if counts is None:
        counts = collections.Counter()
        resolve = graph._resolve_backend

        def counted(*args, **kwargs):
            name = resolve(*args, **kwargs)
            counts[name] += 1
            return name

        counted.backend_counts = counts
        graph._resolve_backend = counted
    seen = dict(counts)
    if reset:
        counts.clear()
    return seen


def format_backends(counts: dict[str, int]) -> str:
    """``torch`` / ``cluster`` alone, or ``cluster 12 + torch 8`` (graphs built), or ``-``."""
    used = {k: v for k, v in sorted(counts.items()) if v}
    if len(used) <= 1:
        return next(iter(used), "-")
    return " + ".join(f"{k} {v}" for k, v in used.items())


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux ``ru_maxrss``: KiB) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mib(device: torch.device) -> float | None:
    """Peak GPU memory allocated by torch on ``device`` in MiB (``None`` off CUDA)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def events_per_second(
    kind: str, ds, backbone: str, method: str, batches: int, device: torch.device
) -> float:
    """Training events per second of the shipped ``<kind>/<method>_<backbone>`` config on
    ``ds`` (its batch size), over ``batches`` steps after 2 untimed warm-up steps. On CUDA the
    peak-memory statistics are reset first, so that :func:`peak_gpu_mib` is this run's."""
    cfg = load_yaml(CONFIGS / kind / f"{method}_{backbone}.yaml")
    cfg["dataset"]["path"] = "unused"
    cfg = resolve_run_config(cfg)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta["period"]
    ).to(device)
    step = TrainStep(model, pred_coef=1.0, info_coef=cfg["train"]["info_loss_coef"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(
        ds,
        batch_size=cfg["train"]["batch_size"],
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    it = iter(loader)
    n_events, elapsed = 0, 0.0
    for i in range(batches + 2):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        batch = batch.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = step(batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # the first steps pay one-off costs
            elapsed += time.perf_counter() - t0
            n_events += batch.num_graphs
    return n_events / elapsed


def run_table(
    datasets: dict[str, object], backbones, batches: int, device: torch.device, out=sys.stdout
) -> list[dict]:
    """Print the table (``datasets``: kind -> loaded dataset); returns its rows."""
    gpu = device.type == "cuda"
    head = f"{'dataset':<10} {'backbone':<18} {'method':<14} {'events/s':>9} {'vs plain':>8}"
    print((head + f" {'graphs':<10}" + (f" {'GPU MiB':>8}" if gpu else "")).rstrip(), file=out)
    rows = []
    for kind, ds in datasets.items():
        for backbone in backbones:
            base = None
            for method in METHODS:
                backend_counts(reset=True)
                eps = events_per_second(kind, ds, backbone, method, batches, device)
                base = base or eps
                row = {"dataset": kind, "backbone": backbone, "method": method, "eps": eps}
                row.update(ratio=eps / base, graphs=format_backends(backend_counts()))
                row["gpu_mib"] = peak_gpu_mib(device)
                rows.append(row)
                line = f"{kind:<10} {backbone:<18} {method:<14} {eps:>9.0f} {eps / base:>8.2f}"
                line += f" {row['graphs']:<10}"
                line += f" {row['gpu_mib']:>8.0f}" if gpu else ""
                print(line.rstrip(), file=out, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda (cuda:N); default: cuda when available",
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    ap.add_argument("--datasets", nargs="+", default=list(EVENTS), choices=list(EVENTS))
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    args = ap.parse_args(argv)
    device = device_or_exit(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_environment(device))
    print(f"{args.batches} timed batches per configuration\n")
    datasets = {k: load_dataset(simulated_dataset(k, EVENTS[k])) for k in args.datasets}
    run_table(datasets, args.backbones, args.batches, device)
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
