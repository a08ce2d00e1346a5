"""The ``hepx`` command line: a thin layer over the importable library.

Errors caused by the user's input (files, configs) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hepx.errors import HepxError

log = logging.getLogger("hepx")


def _cmd_simulate(args: argparse.Namespace) -> None:
    from hepx import sim

    t0 = time.perf_counter()
    if args.dataset == "actstrack":
        sim.simulate_actstrack(
            args.out,
            events=args.events,
            bfield=args.bfield,
            seed=args.seed,
            signal_fraction=args.signal_fraction,
            pileup_mean=args.pileup,
            schema=args.schema,
            particles_layout=args.particles_layout,
            event_order=args.event_order,
        )
        files = "hits.root, particles.root"
    else:
        sim.simulate_tau3mu(
            args.out,
            events=args.events,
            seed=args.seed,
            signal_fraction=args.signal_fraction,
            pileup=args.pileup,
        )
        files = "ntuple.root"
    log.info(
        "simulated %d %s events in %.1f s -> %s/{%s}",
        args.events,
        args.dataset,
        time.perf_counter() - t0,
        args.out,
        files,
    )


def _cmd_convert(args: argparse.Namespace) -> None:
    from hepx.config import check_keys, load_yaml
    from hepx.data import convert

    options = {}
    if args.config:
        cfg = load_yaml(args.config)
        check_keys(cfg, ["reader"], where=str(args.config))
        options = cfg.get("reader") or {}
    executor = None
    if args.executor == "dask":
        from hepx.scale import dask_executor

        executor = dask_executor(args.scheduler, workers=args.workers)
    t0 = time.perf_counter()
    arrays = convert(args.dataset, args.inputs, args.out, reader_options=options, executor=executor)
    n_pos = int((arrays.sample["y"] > 0).sum())
    log.info(
        "wrote %s: %d samples (%d positive), %d points, in %.1f s",
        args.out,
        arrays.num_samples,
        n_pos,
        arrays.num_points,
        time.perf_counter() - t0,
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from hepx.config import apply_overrides, load_yaml
    from hepx.training import train

    cfg = apply_overrides(load_yaml(args.config), args.set or [])
    if args.seed is not None:
        cfg.setdefault("train", {})["seed"] = args.seed
    distributed = _init_distributed(args.device)
    try:
        result = train(cfg, args.out, device=args.device, resume=args.resume)
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    log.info("test metrics (selected epoch): %s", shown)


def _init_distributed(device: str | None) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    use_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def _cmd_demo(args: argparse.Namespace) -> None:
    from hepx.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepx",
        description="Interpretable geometric deep learning (LRI) on HEP tracking data.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "simulate", help="write realistic ROOT files with the built-in detector simulation"
    )
    sim_sub = p.add_subparsers(dest="dataset", required=True)
    pa = sim_sub.add_parser("actstrack", help="ACTS generic detector: hits.root + particles.root")
    pa.add_argument("--events", type=int, required=True)
    pa.add_argument("--bfield", type=float, default=2.0, help="solenoid field in tesla (default 2)")
    pa.add_argument("--seed", type=int, default=0)
    pa.add_argument("--out", type=Path, required=True)
    pa.add_argument(
        "--signal-fraction",
        type=float,
        default=0.5,
        help="fraction of events with a generated Z (default 0.5)",
    )
    pa.add_argument(
        "--pileup", type=float, default=25.0, help="mean number of pileup charged particles"
    )
    pa.add_argument("--schema", default="v43", choices=["v43", "v44.0", "v44.3"])
    pa.add_argument(
        "--particles-layout", default="per_event", choices=["per_event", "per_particle"]
    )
    pa.add_argument(
        "--event-order", default="shuffled", choices=["sorted", "shuffled", "interleaved"]
    )
    pa.set_defaults(func=_cmd_simulate)
    pt = sim_sub.add_parser("tau3mu", help="CMS endcap muon ntuple: ntuple.root")
    pt.add_argument("--events", type=int, required=True)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--out", type=Path, required=True)
    pt.add_argument("--signal-fraction", type=float, default=0.24)
    pt.add_argument("--pileup", type=float, default=200.0)
    pt.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("convert", help="turn ROOT/Parquet files into a cached point-cloud dataset")
    p.add_argument("dataset", choices=["actstrack", "tau3mu", "generic"])
    p.add_argument(
        "inputs", nargs="+", type=Path, help="input files (actstrack: directories or hits files)"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path, help="YAML with a 'reader:' section of reader options")
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument(
        "--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)"
    )
    p.add_argument("--workers", type=int, default=2, help="workers of the default LocalCluster")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("train", help="train a plain or LRI model (torchrun for distributed)")
    p.add_argument("config", type=Path, help="run config YAML (see configs/)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.epochs=5",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available"
    )
    p.add_argument("--seed", type=int, default=None, help="overrides train.seed")
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt"
    )
    p.set_defaults(func=_cmd_train)

    from hepx.evaluate import register_cli as register_evaluate
    from hepx.plot.cli import register_cli as register_plot
    from hepx.post.pipeline import register_cli as register_explain

    register_explain(sub)
    register_plot(sub)
    register_evaluate(sub)

    p = sub.add_parser("demo", help="end-to-end demo on built-in defaults")
    p.add_argument("--out", type=Path, default=Path("hepx-demo"))
    p.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="hepx: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except HepxError as err:
        print(f"hepx: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hepx: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
