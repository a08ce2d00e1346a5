"""``hepx score RUN_DIR INPUT... --out OUT`` (alias ``hepx explain``): a trained run over ROOT
files, per-hit and per-track importance written back as friend trees and Parquet."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hepx.cli.common import add_executor_options, add_threads_option, executor_of, reader_options_of
from hepx.cli.common import add_parser as _sub
from hepx.errors import ConfigError

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run"]

#: Default size of the per-event top set (``hepx.post.physics.DEFAULT_TOPK``).
DEFAULT_TOP_K = 24


def add_parser(sub) -> None:
    p = _sub(
        sub,
        "score",
        aliases=["explain"],
        help="run a trained model over ROOT files: per-hit/track importance + event scores",
        description="Writes OUT/<input>.importance.root (friend-ready TTrees), "
        "OUT/<input>.events.parquet and OUT/manifest.json; nothing is written on error.",
    )
    p.add_argument("run_dir", type=Path, help="training run directory (hepx train --out)")
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="ActsTrack: directories with hits.root + particles.root (or hits files); "
        "Tau3Mu: ntuples",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights")
    p.add_argument(
        "--config",
        help="YAML file (or shipped config) with a 'reader:' section overriding the run's options",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="events per model batch (the cap on events with --max-points)",
    )
    p.add_argument(
        "--max-points",
        type=int,
        default=None,
        help="hits per model batch at most, an event with more alone (default: the run's "
        "train.eval_max_points_per_batch, else --batch-size events); bounds memory whatever the "
        "event size",
    )
    p.add_argument(
        "--chunk-entries", type=int, default=20_000, help="Tau3Mu tree entries read per chunk"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--top-k", default=str(DEFAULT_TOP_K), help="hits in the per-event top set, or 'signal'"
    )
    p.add_argument(
        "--explainer",
        default=None,
        help="post-hoc method for plain runs (gradcam, ig, ...; default: the LRI run's scores)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_options(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def _top_k(text: str) -> int | str:
    if text == "signal":
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--top-k must be an integer or 'signal', got {text!r}") from None


def run(args: argparse.Namespace) -> None:
    from hepx.allocator import tune_allocator
    from hepx.threads import configure_threads

    configure_threads(args.threads)
    tune_allocator()
    from hepx.scoring import score_files

    manifest = score_files(
        args.run_dir,
        args.inputs,
        args.out,
        checkpoint=args.checkpoint,
        reader_options=reader_options_of(args.config),
        batch_size=args.batch_size,
        chunk_entries=args.chunk_entries,
        device=args.device,
        k=_top_k(args.top_k),
        explainer=args.explainer,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        executor=executor_of(args),
        max_points=args.max_points,
    )
    n = sum(o["events"] for o in manifest["outputs"])
    log.info(
        "scored %d events from %d file(s) in %.1f s -> %s",
        n,
        len(manifest["outputs"]),
        manifest["seconds"],
        args.out,
    )
