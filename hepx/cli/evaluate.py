"""``hepx evaluate RUN_DIR... --out REPORT_DIR``: the evaluation table of explanation methods."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from hepx.cli.common import add_parser as _sub
from hepx.cli.common import add_threads_option
from hepx.config.evaluate import EVALUATE_SCHEMA, PATH_BASELINES

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    d = {k: f.default for k, f in EVALUATE_SCHEMA.items()}
    p = _sub(
        sub,
        "evaluate",
        help="explain trained runs and write the results table (md/csv/json) and ROC plots",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="hepx train run dirs")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods (space or comma separated); default: all applicable "
        "(post-hoc for plain runs, the run's own scores for LRI runs)",
    )
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument(
        "--data", type=Path, default=None, help="evaluate on this dataset instead of the test split"
    )
    p.add_argument(
        "--max-samples", type=int, default=None, help="test samples to explain (default: all)"
    )
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="samples per batch")
    p.add_argument(
        "--robustness-samples",
        type=int,
        default=d["robustness_samples"],
        help="samples of the invariance and sanity checks",
    )
    p.add_argument("--draws", type=int, default=d["robustness_draws"], help="group draws")
    p.add_argument("--no-robustness", action="store_true", help="skip the invariance checks")
    p.add_argument("--no-sanity", action="store_true", help="skip the sanity checks")
    p.add_argument(
        "--bernmask-iterations", type=int, default=None, help="BernMask steps (default 500)"
    )
    p.add_argument(
        "--fit-epochs",
        type=int,
        default=None,
        help="BernMask-P / post-hoc PointMask epochs (default: the reference's)",
    )
    p.add_argument("--fit-max-batches", type=int, default=None, help="batches per fit epoch")
    p.add_argument(
        "--fit-batch-size",
        type=int,
        default=None,
        help="samples per batch of the fits (default: the run's training batch size for "
        "BernMask-P, as the reference; --batch-size for the others)",
    )
    p.add_argument("--ig-steps", type=int, default=d["ig_steps"], help="IG path steps")
    p.add_argument(
        "--ig-baseline",
        choices=PATH_BASELINES,
        default=d["ig_baseline"],
        help="IG / GGIG path baseline: the origin (beam spot, eta = 0) or each sample's centroid",
    )
    p.add_argument("--seed", type=int, default=d["seed"], help="seed of fits and draws")
    p.add_argument(
        "--ensemble",
        type=int,
        default=None,
        metavar="N",
        help="also add one row per post-hoc method for the ensemble of the first N plain runs "
        "(by directory name) of each dataset and backbone: the mean of their rank-normalised "
        "explanations, and their mean logit",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what is at OUT (only a hepx report is replaced without it)",
    )
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from hepx.allocator import tune_allocator
    from hepx.threads import configure_threads

    configure_threads(args.threads)
    tune_allocator()
    from hepx.evaluation import evaluate

    methods = None
    if args.methods:
        methods = [m.strip() for item in args.methods for m in item.split(",") if m.strip()]
    opts = {
        "max_samples": args.max_samples,
        "batch_size": args.batch_size,
        "robustness_samples": args.robustness_samples,
        "robustness_draws": args.draws,
        "sanity": not args.no_sanity,
        "robustness": not args.no_robustness,
        "bernmask_iterations": args.bernmask_iterations,
        "fit_epochs": args.fit_epochs,
        "fit_max_batches": args.fit_max_batches,
        "fit_batch_size": args.fit_batch_size,
        "ig_steps": args.ig_steps,
        "ig_baseline": args.ig_baseline,
        "seed": args.seed,
        "data": args.data,
        "ensemble": args.ensemble,
    }
    t0 = time.perf_counter()
    progress = False if args.no_progress else None
    rows = evaluate(
        args.runs,
        args.out,
        methods=methods,
        device=args.device,
        progress=progress,
        overwrite=args.overwrite,
        **opts,
    )
    log.info(
        "evaluated %d rows in %.0f s -> %s/results.{md,csv}",
        len(rows),
        time.perf_counter() - t0,
        args.out,
    )
