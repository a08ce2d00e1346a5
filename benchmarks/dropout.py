"""hepx's CPU dropout against ``torch.nn.Dropout``, as an op and inside a training step.

    python benchmarks/dropout.py [--edges 130000] [--channels 64] [--repeat 10] [--threads 1]

Op: forward + backward of dropout (p = 0.2) on an ``[edges, channels]`` tensor, the size of an
edge-level message MLP activation of an ActsTrack batch (128 events, ~100 hits, k = 10).
Step: an LRI-Gaussian EGNN training step on 128 ActsTrack-sim events with every
``hepx`` dropout module swapped for ``torch.nn.Dropout`` (baseline) or left in place.
"""

from __future__ import annotations

import argparse

import torch
from _common import simulated_dataset, timed
from torch import nn
from torch_geometric.loader import DataLoader

from hepx.data import load_dataset
from hepx.models import build_model
from hepx.models.backbones.base import Dropout
from hepx.training import TrainStep


def swap_to_torch(model: nn.Module) -> int:
    """Replace every hepx ``Dropout`` by ``torch.nn.Dropout`` in place; returns the count."""
    count = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
                count += 1
    return count


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--edges", type=int, default=130_000)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    x = torch.randn(args.edges, args.channels, requires_grad=True)
    ops = {"torch.nn.Dropout": nn.Dropout(0.2), "hepx Dropout": Dropout(0.2)}
    base = None
    print(f"\nop: forward + backward on [{args.edges}, {args.channels}]")
    for name, mod in ops.items():
        sec = timed(lambda mod=mod: mod(x).sum().backward(), args.repeat)
        base = base or sec
        print(f"  {name:<18} {sec * 1e3:8.1f} ms   x{base / sec:.2f}")

    ds = load_dataset(simulated_dataset("actstrack", 3000))
    batch = next(iter(DataLoader([ds[i] for i in range(128)], batch_size=128)))
    cfg = {
        "backbone": "egnn",
        "method": "lri_gaussian",
        "pos_scale": 0.001,
        "frame": "beam",
        "graph": {"kind": "knn", "k": 10},
    }
    print(f"\nstep: LRI-Gaussian EGNN, 128 events ({batch.num_nodes} hits)")
    base = None
    for name in ops:
        torch.manual_seed(0)
        model = build_model(cfg, pos_dim=3, x_dim=0)
        if name == "torch.nn.Dropout":
            swap_to_torch(model)
        step = TrainStep(model, pred_coef=1.0, info_coef=1.0).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def one(step=step, opt=opt):
            loss = step(batch)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        sec = timed(one, max(2, args.repeat // 3))
        base = base or sec
        print(f"  {name:<18} {sec:8.2f} s    x{base / sec:.2f}")


if __name__ == "__main__":
    main()
