"""``hepx train CONFIG --out RUN_DIR``: train a plain or LRI model (torchrun for several
processes)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hepx.cli.common import add_parser as _sub
from hepx.cli.common import add_threads_option

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = _sub(
        sub,
        "train",
        help="train a plain or LRI model (torchrun for distributed)",
        description="CONFIG is a YAML file or the name of a shipped config, e.g. "
        "tau3mu/lri_bernoulli_egnn (hepx.config.shipped_configs() lists them). "
        "train.epochs counts every epoch, warm-up included.",
    )
    p.add_argument("config", help="run config: a YAML file or a shipped config's name")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available"
    )
    p.add_argument("--seed", type=int, default=None, help="overrides train.seed")
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar per epoch")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from hepx.allocator import tune_allocator
    from hepx.threads import configure_threads

    configure_threads(args.threads)
    tune_allocator()
    from hepx.config import apply_overrides, find_config, load_yaml
    from hepx.training import train
    from hepx.training.distributed import init_process_group

    cfg = apply_overrides(load_yaml(find_config(args.config)), args.set or [])
    if args.seed is not None:
        cfg.setdefault("train", {})["seed"] = args.seed
    distributed = init_process_group(args.device)
    try:
        result = train(
            cfg,
            args.out,
            device=args.device,
            resume=args.resume,
            progress=False if args.no_progress else None,
        )
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    log.info("test metrics (selected epoch): %s", shown)
