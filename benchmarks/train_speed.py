"""Training speed: events/s of every backbone x method, the plain classifier as the baseline.

    python benchmarks/train_speed.py [--batches 20] [--device cpu|cuda] [--threads N]

Each configuration runs ``--batches`` training steps (after 2 untimed warm-up steps) on the
built-in ActsTrack-sim and Tau3Mu-sim with the reference model sizes and batch sizes.
"""

from __future__ import annotations

import argparse
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


def events_per_second(
    kind: str, ds, backbone: str, method: str, batches: int, device: torch.device
) -> float:
    cfg = load_yaml(CONFIGS / kind / f"{method}_{backbone}.yaml")
    cfg["dataset"]["path"] = "unused"
    cfg = resolve_run_config(cfg)
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
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step(batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # the first steps pay one-off costs
            elapsed += time.perf_counter() - t0
            n_events += batch.num_graphs
    return n_events / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    ap.add_argument("--datasets", nargs="+", default=["actstrack", "tau3mu"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {args.batches} timed batches per configuration\n"
    )
    print(f"{'dataset':<10} {'backbone':<18} {'method':<14} {'events/s':>9} {'vs plain':>8}")
    for kind in args.datasets:
        ds = load_dataset(simulated_dataset(kind, 3000 if kind == "actstrack" else 20000))
        for backbone in BACKBONES:
            base = None
            for method in METHODS:
                eps = events_per_second(kind, ds, backbone, method, args.batches, device)
                base = base or eps
                print(f"{kind:<10} {backbone:<18} {method:<14} {eps:>9.0f} {eps / base:>8.2f}")


if __name__ == "__main__":
    main()
