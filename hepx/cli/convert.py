"""``hepx convert KIND INPUT... --out DIR``: input files -> a cached point-cloud dataset."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from hepx.cli.common import add_executor_options, executor_of, reader_options_of
from hepx.cli.common import add_parser as _sub
from hepx.config.run import DATASET_KINDS

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = _sub(sub, "convert", help="turn ROOT/Parquet files into a cached point-cloud dataset")
    p.add_argument(
        "dataset",
        choices=(*DATASET_KINDS, "lri", "plbind"),
        help="the kind of input (lri: a processed data set of the LRI reference code, data.pt; "
        "plbind: protein-ligand complex directories, PDBbind layout)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="input files (actstrack: directories or hits files; plbind: complex directories "
        "or directories of them)",
    )
    p.add_argument(
        "--lri-kind",
        choices=("actstrack", "tau3mu", "generic"),
        help="with lri: the kind of the imported data (default: guessed from its fields)",
    )
    p.add_argument(
        "--affinity",
        type=Path,
        help="with plbind: PDBbind index file or 'complex_id,affinity' CSV (Kd/Ki, e.g. Kd=12nM)",
    )
    p.add_argument(
        "--pocket-cutoff",
        type=float,
        default=15.0,
        help="with plbind: Å; residues whose C-alpha is closer to the ligand get node_label 1",
    )
    p.add_argument(
        "--threshold-nm",
        type=float,
        default=10.0,
        help="with plbind: a complex with Kd/Ki below this (nM) is positive (y = 1)",
    )
    p.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    p.add_argument(
        "--config",
        help="YAML file (or shipped config, e.g. convert/tau3mu) with a 'reader:' section",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what is at OUT (only a hepx dataset is replaced without it)",
    )
    add_executor_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from hepx.data import convert

    t0 = time.perf_counter()
    if args.dataset == "lri":
        manifest = _import_lri(args)
    elif args.dataset == "plbind":
        manifest = _import_plbind(args)
    else:
        manifest = convert(
            args.dataset,
            args.inputs,
            args.out,
            reader_options=reader_options_of(args.config),
            executor=executor_of(args),
            overwrite=args.overwrite,
        )
    log.info(
        "wrote %s: %d samples (%d positive), %d points, in %.1f s",
        args.out,
        manifest["num_samples"],
        manifest["num_positive"],
        manifest["num_points"],
        time.perf_counter() - t0,
    )


def _import_lri(args: argparse.Namespace) -> dict:
    from hepx.data.lri import import_lri
    from hepx.errors import InputError

    if len(args.inputs) != 1 or args.config:
        raise InputError("convert lri takes one processed file (data.pt) and no --config")
    return import_lri(args.inputs[0], args.out, kind=args.lri_kind, overwrite=args.overwrite)


def _import_plbind(args: argparse.Namespace) -> dict:
    from hepx.errors import InputError
    from hepx.io.plbind import convert_plbind

    if args.affinity is None:
        raise InputError(
            "convert plbind needs --affinity FILE (PDBbind index or 'complex_id,affinity' CSV)"
        )
    if args.config or args.executor != "local":
        raise InputError("convert plbind takes no --config and runs locally (no --executor dask)")
    return convert_plbind(
        args.inputs,
        args.affinity,
        args.out,
        pocket_cutoff=args.pocket_cutoff,
        threshold_nm=args.threshold_nm,
        overwrite=args.overwrite,
    )
