"""``hepx simulate {actstrack,tau3mu,synmol}``: ROOT files from the built-in detector simulations,
and SynMol (real molecules in 3D, generic Parquet; needs RDKit and molsets)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from hepx.cli.common import add_parser as _sub

log = logging.getLogger("hepx")

__all__ = ["add_parser", "run_actstrack", "run_synmol", "run_tau3mu"]


def add_parser(sub) -> None:
    p = _sub(sub, "simulate", help="write realistic ROOT files with the built-in simulations")
    kinds = p.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    pa = _sub(kinds, "actstrack", help="ACTS generic detector: hits.root + particles.root")
    pa.add_argument("--events", type=int, required=True, help="events to simulate")
    pa.add_argument("--bfield", type=float, default=2.0, help="solenoid field in tesla")
    pa.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    pa.add_argument("--out", type=Path, required=True, help="output directory")
    pa.add_argument(
        "--signal-fraction", type=float, default=0.5, help="fraction of events with a Z"
    )
    pa.add_argument(
        "--pileup",
        type=float,
        default=5.0,
        metavar="MU",
        help="mean number of pileup interactions per crossing (Poisson), each at its own "
        "vertex: ~5 charged particles each with the fast generator, a Pythia minimum-bias "
        "event with pythia8 (HL-LHC: 200)",
    )
    pa.add_argument(
        "--generator",
        default="fast",
        choices=["fast", "pythia8"],
        help="fast: built-in spectra; pythia8: hard scatter and pileup from Pythia 8 "
        "(pip install 'hepx[pythia]')",
    )
    pa.add_argument(
        "--pool-size",
        type=int,
        default=2000,
        metavar="N",
        help="pythia8: minimum-bias events generated once, from which pileup is drawn",
    )
    pa.add_argument(
        "--schema", default="v43", choices=["v43", "v44.0", "v44.3"], help="ACTS hits layout"
    )
    pa.add_argument(
        "--particles-layout",
        default="per_event",
        choices=["per_event", "per_particle"],
        help="one particles entry per event (vectors) or per particle (old files)",
    )
    pa.add_argument(
        "--event-order",
        default="shuffled",
        choices=["sorted", "shuffled", "interleaved"],
        help="order of the events in the files (multi-threaded ACTS interleaves them)",
    )
    pa.add_argument("--no-progress", action="store_true", help="no progress bar")
    pa.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier simulation"
    )
    pa.set_defaults(func=run_actstrack)
    _add_tau3mu(kinds)
    _add_synmol(kinds)


def _add_tau3mu(kinds) -> None:
    pt = _sub(kinds, "tau3mu", help="CMS endcap muon ntuple: ntuple.root")
    pt.add_argument("--events", type=int, required=True, help="events to simulate")
    pt.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    pt.add_argument("--out", type=Path, required=True, help="output directory")
    pt.add_argument(
        "--signal-fraction", type=float, default=0.24, help="fraction of tau -> 3 mu events"
    )
    pt.add_argument(
        "--pileup",
        type=float,
        default=200.0,
        metavar="MU",
        help="pileup interactions: fast, rates scale as MU/200; pythia8, mean (Poisson) number "
        "of minimum-bias interactions per crossing",
    )
    pt.add_argument(
        "--generator",
        default="fast",
        choices=["fast", "pythia8"],
        help="fast: built-in spectra and rates; pythia8: Ds/B -> tau -> 3 mu and pileup muons "
        "from Pythia 8 (pip install 'hepx[pythia]')",
    )
    pt.add_argument(
        "--pool-size",
        type=int,
        default=10000,
        metavar="N",
        help="pythia8: minimum-bias interactions generated once, from which pileup is drawn",
    )
    pt.add_argument("--no-progress", action="store_true", help="no progress bar")
    pt.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier simulation"
    )
    pt.set_defaults(func=run_tau3mu)


def _add_synmol(kinds) -> None:
    pm = _sub(
        kinds,
        "synmol",
        help="SynMol: MOSES (ZINC) molecules in 3D, logic8 labels: synmol.parquet (needs RDKit)",
        description="Real molecules from the MOSES set of molsets, labelled by the logic8 rule\n"
        "of the graph-attribution benchmark (unbranched alkane AND carbonyl), embedded in\n"
        "3D with RDKit (ETKDG + MMFF), hydrogens removed; writes OUT/synmol.parquet\n"
        "(generic layout) and OUT/manifest.json. Needs RDKit and molsets:\n"
        "  pip install 'hepx[mol]' && pip install --no-deps molsets",
    )
    pm.add_argument(
        "--samples", type=int, default=8663, help="molecules to keep (the paper's SynMol size)"
    )
    pm.add_argument("--seed", type=int, default=0, help="seed of the selection and embeddings")
    pm.add_argument("--out", type=Path, required=True, help="output directory")
    pm.add_argument(
        "--positive-fraction",
        type=float,
        default=0.18,
        help="fraction of positive molecules (the paper's 18:82)",
    )
    pm.add_argument(
        "--workers", type=int, default=1, help="processes that embed molecules (same files)"
    )
    pm.add_argument("--no-progress", action="store_true", help="no progress bar")
    pm.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier simulation"
    )
    pm.set_defaults(func=run_synmol)


def run_actstrack(args: argparse.Namespace) -> None:
    from hepx.sim import simulate_actstrack

    t0 = time.perf_counter()
    simulate_actstrack(
        args.out,
        events=args.events,
        bfield=args.bfield,
        seed=args.seed,
        signal_fraction=args.signal_fraction,
        pileup=args.pileup,
        schema=args.schema,
        particles_layout=args.particles_layout,
        event_order=args.event_order,
        generator=args.generator,
        pool_size=args.pool_size,
        progress=False if args.no_progress else None,
        overwrite=args.overwrite,
    )
    _done(args, time.perf_counter() - t0, "hits.root, particles.root")


def run_tau3mu(args: argparse.Namespace) -> None:
    from hepx.sim import simulate_tau3mu

    t0 = time.perf_counter()
    simulate_tau3mu(
        args.out,
        events=args.events,
        seed=args.seed,
        signal_fraction=args.signal_fraction,
        pileup=args.pileup,
        truth=False,
        generator=args.generator,
        pool_size=args.pool_size,
        progress=False if args.no_progress else None,
        overwrite=args.overwrite,
    )
    _done(args, time.perf_counter() - t0, "ntuple.root")


def run_synmol(args: argparse.Namespace) -> None:
    """``hepx simulate synmol``: build SynMol and log its statistics.

    Example
    -------
    >>> hepx.cli.main(["simulate", "synmol", "--samples", "50", "--out", "o"])  # doctest: +SKIP
    0
    """
    from hepx.sim import simulate_synmol
    from hepx.sim.synmol import FILE_NAME, MANIFEST_NAME, describe

    t0 = time.perf_counter()
    stats = simulate_synmol(
        args.out,
        samples=args.samples,
        seed=args.seed,
        positive_fraction=args.positive_fraction,
        workers=args.workers,
        progress=False if args.no_progress else None,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - t0
    log.info(
        "simulated %d synmol samples in %.1f s -> %s/{%s, %s}",
        stats["samples"],
        seconds,
        args.out,
        FILE_NAME,
        MANIFEST_NAME,
    )
    for line in describe(stats):
        log.info("%s", line)


def _done(args: argparse.Namespace, seconds: float, files: str) -> None:
    log.info(
        "simulated %d %s events in %.1f s -> %s/{%s}",
        args.events,
        args.dataset,
        seconds,
        args.out,
        files,
    )
