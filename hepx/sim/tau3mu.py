"""Built-in simulation of CMS Phase-2 endcap muon hits for Tau3Mu (Ds -> tau nu, tau -> 3 mu).

:func:`simulate_tau3mu` writes ``out_dir/ntuple.root`` with the tree
``Ntuplizer/MuonTrackTree`` in the layout of the CMS EMTF ntuples used for Tau3Mu (see
``root-formats.md``): one entry per event; hits ``mu_hit_*`` sharing the counter ``n_mu_hit``;
generated muons ``gen_mu_*`` (``n_gen_mu``), generated taus ``gen_tau_*`` (``n_gen_tau``,
1 in signal events, 0 otherwise) and emulated trigger tracks ``EMTF_mu_*`` (``n_EMTF_mu``).

Physics model (fast and approximate; the geometry is in :mod:`hepx.sim.detector_cms`):

* **Signal** (fraction ``signal_fraction``): Ds (pT 5-40 GeV, falling; 1.1 < abs(eta) < 2.6, the
  generator-level filter of an endcap sample) -> tau nu (two-body), tau -> 3 mu with flat
  three-body phase space (Dalitz sampling), all boosts done in numpy. The three muons are
  soft (pT of a few GeV) and collimated. Signal events also carry pileup.
* **Propagation**: muons keep their eta (solenoid field along z) and bend in phi by
  ``q * K(z) * f(eta) / pT`` degrees; K grows inside the solenoid and drops behind ME1 (return
  flux), so the hits of one muon line up in eta and drift in phi from station to station.
  Multiple scattering is a random walk (station by station) with width ~ 1/p. A muon reaches
  a layer when its (straggled) momentum exceeds the layer's p_min (about 3 GeV for station 1,
  5 GeV for station 4) and it is in the layer's eta range; each layer has an efficiency.
* **Bend**: ``q * slope * f(eta) / pT`` plus smearing, per layer (CSC clipped to [-16, 15],
  ME0 to [-64, 63], DT to [-127, 127]; RPC and GEM carry 0). Positive bend = positive
  charge in both endcaps.
* **Pileup** (``pileup`` / 200 scales every rate; a gamma-distributed per-event factor gives
  the event-to-event spread): random neutron / punch-through hits in every layer (densest in
  ME0, GE1/1 and ME1/1 and at high abs(eta), no coherent bend, random time), small shower
  clusters of 2-4 station-1 hits with incoherent bends, soft single muons (pi/K decays) and
  occasional opposite-sign dimuons (J/psi, open heavy flavour). All have
  ``mu_hit_truth_tau == 0``.

With ``generator="pythia8"`` (:mod:`hepx.sim.tau3mu_pythia`) the generated muons come from
Pythia 8 instead: signal events are ``HardQCD:hardccbar``/``hardbbbar`` with Ds -> tau nu and
tau -> 3 mu forced (taus from Ds or B hadrons, Pythia's record giving the three muons), and
every event overlays ``Poisson(pileup)`` ``SoftQCD:nonDiffractive`` interactions drawn from a
pool. All their muons that can reach a layer are written to ``gen_mu_*`` and propagated as
above; the random hits (neutrons, showers) are added as above, scaled by the interactions
drawn / 200.

Extra per-hit branches beyond the standard layout: ``mu_hit_truth_tau`` (1 = hit of a muon
from the tau decay) and ``mu_hit_sim_tp`` (index of the generating muon in ``gen_mu_*`` of
the same entry, -1 for hits not made by a generated muon). Units: ``mu_hit_sim_phi`` and
``mu_hit_sim_theta`` in degrees, ``mu_hit_sim_r``/``_z`` in cm; ``gen_*_phi`` in radians,
``gen_*_pt``/``_e`` in GeV; ``EMTF_mu_phi`` in degrees (as the hits).

uproot writes counted arrays (``short[n_mu_hit]``) rather than ``std::vector<short>``; both read
back as the same jagged arrays.

Reproducibility: events are generated in fixed blocks of :data:`BLOCK_EVENTS`, block ``i``
drawing from ``SeedSequence(seed, spawn_key=(i,))``. The output therefore depends only on
``seed``, ``signal_fraction`` and ``pileup``: not on ``chunk_size`` (the write granularity), and
the first N events are the same whatever ``events >= N`` is. The ``pythia8`` generator gives
each event its own stream (``SeedSequence(seed, spawn_key=(1, i))``) and seeds its Pythia
instances from ``seed``: the same properties hold (``pool_size`` is one more argument).

Compression: ZLIB level 1 by default (stdlib zlib: fast and readable everywhere; LZ4 would need
the ``lz4`` and ``xxhash`` packages).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from particle import Particle

from hepx.atomic import atomic_file, check_creatable, check_files_free, output_dir
from hepx.errors import ConfigError
from hepx.progress import progress_bar
from hepx.sim.detector_cms import (
    CSC,
    DT,
    GEM,
    LAYERS,
    ME0,
    RPC,
    clip_pattern,
    deflection_deg,
    digitise,
    emtf_phi,
    field_factor,
    wrap_deg,
)
from hepx.sim.pythia import load_pythia
from hepx.sim.tau3mu_pythia import MuonEvents, SignalSource, muon_pool, run_key

__all__ = [
    "BLOCK_EVENTS",
    "GENERATORS",
    "POOL_SIZE",
    "TREE_PATH",
    "Tau3MuTruth",
    "simulate_tau3mu",
    "standard_filter",
]

log = logging.getLogger("hepx")

TREE_PATH = "Ntuplizer/MuonTrackTree"
FILE_NAME = "ntuple.root"
#: Events per random-number block (the unit of reproducibility).
BLOCK_EVENTS = 2048
GENERATORS = ("fast", "pythia8")
#: Minimum-bias interactions of the pythia8 pileup pool (about 1 % of them have a muon that
#: can reach a layer; generating them takes 30-60 s).
POOL_SIZE = 10000
_PYTHIA_STREAM = 1  # spawn_key prefix of the pythia8 generator's per-event random streams

_DS_PDG = 431  # Ds+ (its tau+ has the same sign)


def _pdg_mass(pdgid: int) -> float:
    """Mass (GeV) of ``pdgid`` in the PDG tables of the ``particle`` package."""
    return Particle.from_pdgid(pdgid).mass / 1000.0


# Masses (GeV) from the ``particle`` package (PDG).
M_DS = _pdg_mass(_DS_PDG)
M_TAU = _pdg_mass(15)
M_MU = _pdg_mass(13)
M_JPSI = _pdg_mass(443)

# Signal kinematics: Ds pT (GeV) truncated exponential, |eta| uniform.
_DS_PT_MIN, _DS_PT_MAX, _DS_PT_SLOPE = 5.0, 40.0, 6.0
_DS_ABS_ETA = (1.1, 2.6)

# Pileup (per event at PU200).
_PU_SHAPE = 10.0  # gamma shape of the per-event pileup factor (relative spread 1/sqrt(10))
_PU_MU_RATE = 0.25  # soft single muons (pi/K decays in flight, heavy flavour)
_PU_DIMU_RATE = 0.04  # opposite-sign dimuons (J/psi, open heavy flavour)
_PU_SHOWER_RATE = 0.5  # small station-1 shower clusters

# Multiple scattering kicks per station gap: sigma(phi) in deg * GeV / p (the eta kick uses
# the same angle in radians, since d(eta) = -dr / r for small polar angles).
_MS_PHI = np.array([3.0, 2.5, 1.8, 1.5])
_STRAGGLE = 0.08  # relative spread of the range (momentum needed to reach a layer)
_MAX_DEFLECTION = 70.0  # degrees; beyond this the track curls up before the layer

# mu_hit_* branches: name -> dtype, in file order.
HIT_BRANCHES: dict[str, Any] = {
    "endcap": np.int16,
    "station": np.int16,
    "ring": np.int16,
    "sector": np.int16,
    "subsector": np.int16,
    "chamber": np.int16,
    "cscid": np.int16,
    "bx": np.int16,
    "type": np.int16,
    "neighbor": np.int16,
    "strip": np.int16,
    "wire": np.int16,
    "roll": np.int16,
    "quality": np.int16,
    "pattern": np.int16,
    "bend": np.int16,
    "time": np.int16,
    "fr": np.int16,
    "emtf_phi": np.int32,
    "emtf_theta": np.int32,
    "sim_phi": np.float32,
    "sim_theta": np.float32,
    "sim_eta": np.float32,
    "sim_r": np.float32,
    "sim_z": np.float32,
    "truth_tau": np.int16,
    "sim_tp": np.int16,
}
GEN_MU_BRANCHES: dict[str, Any] = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "e": np.float32,
    "charge": np.int16,
    "gentauidx": np.int16,
}
GEN_TAU_BRANCHES: dict[str, Any] = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "e": np.float32,
    "charge": np.int16,
}
EMTF_BRANCHES: dict[str, Any] = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "charge": np.int16,
}
COLLECTIONS: dict[str, dict[str, Any]] = {
    "mu_hit": HIT_BRANCHES,
    "gen_mu": GEN_MU_BRANCHES,
    "gen_tau": GEN_TAU_BRANCHES,
    "EMTF_mu": EMTF_BRANCHES,
}
_TRUTH_FIELDS = (
    "is_signal",
    "n_tau_mu_endcap",
    "n_hits",
    "n_sig_hits",
    "n_hits_filtered",
    "n_sig_hits_filtered",
    "n_pileup",
    "tau_parent",
)
_COMPRESSIONS = ("zlib", "lzma", "lz4", "zstd", "none")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tau3MuTruth:
    """Generator truth per event, in entry order (independent of the written file).

    Attributes
    ----------
    path
        The written ``ntuple.root``.
    is_signal
        bool: the event contains Ds (or B) -> tau -> 3 mu.
    n_tau_mu_endcap
        Generated tau muons that left at least one endcap hit (type != DT, neighbor == 0).
    n_hits, n_sig_hits
        All hits in the entry / hits with ``mu_hit_truth_tau == 1`` (neighbour copies and DT
        hits included).
    n_hits_filtered, n_sig_hits_filtered
        The same after the standard Tau3Mu filter (station == 1, neighbor == 0, type != 0).
    n_pileup
        ``generator="pythia8"``: pileup interactions overlaid on the event (Poisson); -1 with
        the fast generator, which scales its pileup rates instead.
    tau_parent
        PDG id of the mother of the event's (first) signal tau: +-431 (Ds) or a b hadron; 0
        in background events.
    """

    path: Path
    is_signal: np.ndarray
    n_tau_mu_endcap: np.ndarray
    n_hits: np.ndarray
    n_sig_hits: np.ndarray
    n_hits_filtered: np.ndarray
    n_sig_hits_filtered: np.ndarray
    n_pileup: np.ndarray
    tau_parent: np.ndarray

    def __len__(self) -> int:
        return len(self.is_signal)

    def to_awkward(self) -> ak.Array:
        """The per-event truth as an awkward record array."""
        return ak.zip({k: getattr(self, k) for k in _TRUTH_FIELDS})


def standard_filter(station: Any, neighbor: Any, typ: Any) -> Any:
    """The standard Tau3Mu hit selection: station 1, not a neighbour copy, not DT."""
    return (station == 1) & (neighbor == 0) & (typ != DT)


def simulate_tau3mu(
    out_dir: str | os.PathLike,
    *,
    events: int,
    seed: int = 0,
    signal_fraction: float = 0.24,
    pileup: float = 200,
    chunk_size: int = 10000,
    compression: Any = ...,
    truth: bool = True,
    generator: str = "fast",
    pool_size: int = POOL_SIZE,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Tau3MuTruth | None:
    """Simulate Tau3Mu events in the CMS endcap muon system and write ``out_dir/ntuple.root``.

    Parameters
    ----------
    out_dir
        Output directory (created if missing). The file is written atomically; an
        ``ntuple.root`` already there is refused unless ``overwrite``.
    events
        Number of events (entries), >= 1.
    seed
        Non-negative integer seed; same arguments give identical files.
    signal_fraction
        Probability that an event contains the signal decay, in [0, 1]. The default is the
        paper's 24/76 class ratio.
    pileup
        Pileup, in [0, 1000]. Fast generator: background rates scale as ``pileup / 200``;
        ``pythia8``: mean (Poisson) number of minimum-bias interactions per crossing, whose
        muons are propagated, the random hits scaling with the interactions drawn / 200.
        0 gives the signal event's muons only.
    chunk_size
        Events written per ``TTree.extend`` call (one basket per branch); bounds the memory.
    compression
        ``...`` (default: ZLIB level 1), ``None``/``"none"``, an ``uproot`` compression object,
        or a string ``"zlib"``, ``"lzma"``, ``"lz4"``, ``"zstd"`` with an optional level
        (``"zlib:6"``).
    truth
        Keep and return the per-event generator truth (a few bytes per event); ``False``
        returns ``None`` and keeps memory independent of ``events``.
    generator
        ``"fast"`` (built-in spectra and rates) or ``"pythia8"`` (signal and pileup muons from
        Pythia 8, :mod:`hepx.sim.tau3mu_pythia`; ``pip install 'hepx[pythia]'``). Same layout.
    pool_size
        ``pythia8``: minimum-bias interactions generated once, from which pileup is drawn.
    progress
        Progress bars of the ``pythia8`` generation (default: on a terminal).

    Returns
    -------
    Tau3MuTruth or None
        Per-event generator truth (entry order) and the output path (``None`` when not
        ``truth``).

    Raises
    ------
    ConfigError
        If an argument has the wrong type or is out of range, or for ``pythia8`` without
        Pythia's bindings.

    Example
    -------
    >>> truth = simulate_tau3mu("work/t3m", events=100, seed=1)       # doctest: +SKIP
    >>> truth = simulate_tau3mu("work/t3m_py", events=30, generator="pythia8")  # doctest: +SKIP
    """
    cfg = _config(events, seed, chunk_size, signal_fraction, pileup, compression)
    cfg = _with_generator(cfg, generator, pool_size, progress)
    final = check_creatable(out_dir) / FILE_NAME
    check_files_free([final], overwrite=overwrite)
    with output_dir(out_dir):
        truths = _write(final, cfg, truth)
    if not truth:
        return None
    return Tau3MuTruth(
        path=final, **{k: np.concatenate([t[k] for t in truths]) for k in _TRUTH_FIELDS}
    )


def _write(final: Path, cfg: _Config, keep_truth: bool) -> list[dict[str, np.ndarray]]:
    """Generate the events chunk by chunk into ``final`` (atomically); the chunks' truth."""
    truths: list[dict[str, np.ndarray]] = []
    with atomic_file(final) as tmp, uproot.recreate(tmp, compression=cfg.compression) as fout:
        tree = None
        for chunk in _event_chunks(cfg):
            arrays = {name: _to_jagged(chunk[name]) for name in COLLECTIONS}
            if tree is None:
                tree = fout.mktree(
                    TREE_PATH,
                    {name: arr.type.content for name, arr in arrays.items()},
                    counter_name=lambda c: "n_" + c,
                    field_name=lambda outer, inner: f"{outer}_{inner}",
                )
            tree.extend(arrays)
            if keep_truth:
                truths.append(chunk["truth"])
    return truths


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    events: int
    seed: int
    chunk_size: int
    signal_fraction: float
    pileup: float
    compression: Any
    generator: str = "fast"
    pool_size: int = POOL_SIZE
    progress: bool | None = None


def _config(
    events: Any, seed: Any, chunk_size: Any, signal_fraction: Any, pileup: Any, compression: Any
) -> _Config:
    """The checked arguments of the fast generator (ConfigError on a bad one)."""
    return _Config(
        events=_check_int("events", events, lo=1, hi=2**31 - 1),
        seed=_check_int("seed", seed, lo=0, hi=2**63 - 1),
        chunk_size=_check_int("chunk_size", chunk_size, lo=1, hi=10_000_000),
        signal_fraction=_check_float("signal_fraction", signal_fraction, lo=0.0, hi=1.0),
        pileup=_check_float("pileup", pileup, lo=0.0, hi=1000.0),
        compression=_parse_compression(compression),
    )


def _with_generator(cfg: _Config, generator: Any, pool_size: Any, progress: Any) -> _Config:
    """``cfg`` with the checked generator options; ``pythia8`` needs Pythia's bindings."""
    if generator not in GENERATORS:
        raise ConfigError(f"generator must be one of {list(GENERATORS)}, got {generator!r}")
    pool_size = _check_int("pool_size", pool_size, lo=1, hi=10_000_000)
    if progress is not None and not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None, got {progress!r}")
    if generator == "pythia8":
        load_pythia()  # fail early (exit 2 on the command line) when Pythia is not installed
    return replace(cfg, generator=generator, pool_size=pool_size, progress=progress)


def _check_int(name: str, value: Any, *, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= int(value) <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return int(value)


def _check_float(name: str, value: Any, *, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ConfigError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return v


def _parse_compression(value: Any) -> Any:
    allowed = f"allowed: None, ..., an uproot compression object, or one of {_COMPRESSIONS}"
    if value is ...:
        return uproot.ZLIB(1)
    if value is None:
        return None
    if isinstance(value, uproot.compression.Compression):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"compression {value!r} is not understood ({allowed})")
    name, _, level = value.strip().lower().partition(":")
    if name not in _COMPRESSIONS:
        raise ConfigError(f"compression {value!r} is not understood ({allowed})")
    if name == "none":
        return None
    try:
        lvl = int(level) if level else 1
    except ValueError:
        raise ConfigError(f"compression level in {value!r} must be an integer 1-9") from None
    if not 1 <= lvl <= 9:
        raise ConfigError(f"compression level in {value!r} must be an integer 1-9")
    needs = {"lz4": ("lz4", "xxhash"), "zstd": ("zstandard",)}.get(name, ())
    for module in needs:
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                f"compression {name!r} needs the Python package {module!r}, which is not "
                f"installed (use 'zlib' or 'lzma')"
            ) from None
    factory: Callable[[int], Any] = {
        "zlib": uproot.ZLIB,
        "lzma": uproot.LZMA,
        "lz4": uproot.LZ4,
        "zstd": uproot.ZSTD,
    }[name]
    return factory(lvl)


# --------------------------------------------------------------------------------------------
# Column containers, chunking
# --------------------------------------------------------------------------------------------


@dataclass
class _Jagged:
    """One jagged collection of a group of events: per-event counts + flat field arrays."""

    counts: np.ndarray
    fields: dict[str, np.ndarray]

    @staticmethod
    def concat(parts: list[_Jagged]) -> _Jagged:
        return _Jagged(
            np.concatenate([p.counts for p in parts]),
            {k: np.concatenate([p.fields[k] for p in parts]) for k in parts[0].fields},
        )

    def split(self, n_events: int) -> tuple[_Jagged, _Jagged]:
        cut = int(self.counts[:n_events].sum())
        head = _Jagged(self.counts[:n_events], {k: v[:cut] for k, v in self.fields.items()})
        tail = _Jagged(self.counts[n_events:], {k: v[cut:] for k, v in self.fields.items()})
        return head, tail


def _to_jagged(col: _Jagged) -> ak.Array:
    """Zero-copy awkward list-of-records from counts and flat numpy fields."""
    offsets = np.zeros(len(col.counts) + 1, dtype=np.int64)
    np.cumsum(col.counts, out=offsets[1:])
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in col.fields.values()],
        list(col.fields),
        length=int(offsets[-1]),
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _chunks(events: int, chunk_size: int, seed: int, signal_fraction: float, pu_scale: float):
    """Yield dicts of collections for consecutive groups of ``chunk_size`` events.

    Generation happens per fixed block of BLOCK_EVENTS with its own random stream; blocks
    are buffered and re-cut into chunks, so the content does not depend on chunk_size.
    """
    n_blocks = -(-events // BLOCK_EVENTS)
    buffer: list[dict[str, Any]] = []
    buffered = 0
    for b in range(n_blocks):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
        block = _generate_block(rng, BLOCK_EVENTS, signal_fraction, pu_scale)
        keep = min(BLOCK_EVENTS, events - b * BLOCK_EVENTS)
        if keep < BLOCK_EVENTS:  # last block: truncate (keeps the prefix property)
            block = _split_group(block, keep)[0]
        buffer.append(block)
        buffered += keep
        while buffered >= chunk_size or (b == n_blocks - 1 and buffered > 0):
            group = _concat_groups(buffer) if len(buffer) > 1 else buffer[0]
            take = min(chunk_size, buffered)
            head, tail = _split_group(group, take)
            yield head
            buffered -= take
            buffer = [tail] if buffered > 0 else []


def _event_chunks(cfg: _Config) -> Iterator[dict[str, Any]]:
    """The chunks of ``cfg.chunk_size`` events of the configured generator."""
    if cfg.generator == "fast":
        return _chunks(
            cfg.events, cfg.chunk_size, cfg.seed, cfg.signal_fraction, cfg.pileup / 200.0
        )
    return _pythia_chunks(cfg)


@dataclass
class _PythiaSource:
    signal: SignalSource
    pool: MuonEvents | None  # muons that can reach a layer; None without pileup


def _pythia_chunks(cfg: _Config) -> Iterator[dict[str, Any]]:
    """Pythia events, one at a time: event ``i`` draws its choices (signal, tau charge,
    interactions, pool draws) and its detector response from its own random stream, and takes
    the next accepted event of the signal instance of its tau charge. So the files depend
    neither on ``chunk_size`` nor (for the first N events) on ``events``."""
    key = run_key(cfg.seed)
    pool = None
    if cfg.pileup > 0:
        pool = _reachable_pool(muon_pool(cfg.pool_size, key, progress=cfg.progress))
    src = _PythiaSource(signal=SignalSource(key), pool=pool)
    bar = progress_bar(total=cfg.events, progress=cfg.progress, desc="pythia8 tau3mu", unit="event")
    with bar:
        for start in range(0, cfg.events, cfg.chunk_size):
            groups = []
            for i in range(start, min(start + cfg.chunk_size, cfg.events)):
                seq = np.random.SeedSequence(cfg.seed, spawn_key=(_PYTHIA_STREAM, i))
                groups.append(_pythia_event(np.random.default_rng(seq), src, cfg))
                bar.update(1)
            yield _concat_groups(groups)
    tried, kept = sum(src.signal.tried.values()), src.signal.accepted
    log.info(
        "pythia8 signal: %d events passed the filter of %d generated (%.1f %%)",
        kept,
        tried,
        100.0 * kept / max(tried, 1),
    )


def _pythia_event(rng: np.random.Generator, src: _PythiaSource, cfg: _Config) -> dict[str, Any]:
    """One event: the signal event's muons (if signal) and ``Poisson(pileup)`` interactions."""
    is_signal = bool(rng.random() < cfg.signal_fraction)
    sign = 1 if rng.random() < 0.5 else -1
    n_int = int(rng.poisson(cfg.pileup))
    hard = src.signal.events(sign, 1) if is_signal else MuonEvents.empty(1)
    pu_p4, pu_q = _overlay(rng, src.pool, n_int)
    mu, sig = _pythia_muons(hard, pu_p4, pu_q)
    return _detector_block(
        rng, np.array([is_signal]), np.array([n_int / 200.0]), sig, mu, np.array([n_int])
    )


def _reachable(p4: np.ndarray) -> np.ndarray:
    """Muons that can reach a layer of the model: |eta| in the layers' range and a momentum
    above the lowest p_min even after straggling (both with a margin of > 4 sigma)."""
    p = np.linalg.norm(p4[:, :3], axis=1)
    abs_eta = np.abs(_ptetaphi(p4)[1])
    lo, hi = LAYERS.eta_lo.min() - 0.2, LAYERS.eta_hi.max() + 0.2
    return (p > LAYERS.p_min.min() * np.exp(-5 * _STRAGGLE)) & (abs_eta > lo) & (abs_eta < hi)


def _reachable_pool(pool: MuonEvents) -> MuonEvents:
    """The pool with only the muons that can reach a layer (per interaction)."""
    keep = _reachable(pool.p4)
    ev = np.repeat(np.arange(len(pool)), pool.counts)
    return replace(
        pool,
        counts=np.bincount(ev[keep], minlength=len(pool)),
        **{k: getattr(pool, k)[keep] for k in ("p4", "q", "tau", "record_index")},
    )


def _overlay(
    rng: np.random.Generator, pool: MuonEvents | None, n_int: int
) -> tuple[np.ndarray, np.ndarray]:
    """Muons (four-momenta, charges) of ``n_int`` interactions drawn from the pool with
    replacement, each rotated by a random azimuth and, half of the time, by pi about the x
    axis (both symmetries of a pp collision)."""
    if pool is None or n_int == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    pick = rng.integers(0, len(pool), n_int)
    phi = rng.uniform(0.0, 2.0 * np.pi, n_int)
    flip = np.where(rng.random(n_int) < 0.5, -1.0, 1.0)
    mult = pool.counts[pick]
    row = np.repeat(np.arange(n_int), mult)
    j = np.arange(len(row)) - np.repeat(np.cumsum(mult) - mult, mult)
    src = pool.offsets[:-1][pick][row] + j
    p4 = pool.p4[src]
    c, s, f = np.cos(phi)[row], np.sin(phi)[row], flip[row]
    x, y, z = p4[:, 0], f * p4[:, 1], f * p4[:, 2]
    return np.stack([c * x - s * y, s * x + c * y, z, p4[:, 3]], axis=1), pool.q[src]


def _pythia_muons(
    hard: MuonEvents, pu_p4: np.ndarray, pu_q: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ``mu`` and ``sig`` inputs of :func:`_detector_block` for one event: the signal
    taus' muons first, the signal event's other muons that can reach a layer, the pileup's."""
    keep = (hard.tau >= 0) | _reachable(hard.p4)
    p4 = np.concatenate([hard.p4[keep], pu_p4])
    q = np.concatenate([hard.q[keep], pu_q]).astype(np.int64)
    n_mu = len(q)
    pt, eta, phi = _ptetaphi(p4)
    mu = {
        "p4": p4,
        "evt": np.zeros(n_mu, dtype=np.int64),
        "q": q,
        "tau": np.concatenate([hard.tau[keep], np.full(len(pu_q), -1, dtype=np.int64)]),
        "counts": np.array([n_mu]),
        "idx": np.arange(n_mu),
        "pt": pt,
        "eta": eta,
        "phi": phi,
    }
    t_pt, t_eta, t_phi = _ptetaphi(hard.tau_p4)
    sig = {
        "evt": np.zeros(len(hard.tau_q), dtype=np.int64),
        "tau": hard.tau_p4,
        "q": hard.tau_q,
        "parent": hard.tau_parent,
        "pt": t_pt,
        "eta": t_eta,
        "phi": t_phi,
    }
    return mu, sig


def _concat_groups(groups: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {n: _Jagged.concat([g[n] for g in groups]) for n in COLLECTIONS}
    out["truth"] = {k: np.concatenate([g["truth"][k] for g in groups]) for k in _TRUTH_FIELDS}
    return out


def _split_group(group: dict[str, Any], n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    head: dict[str, Any] = {}
    tail: dict[str, Any] = {}
    for name in COLLECTIONS:
        head[name], tail[name] = group[name].split(n)
    head["truth"] = {k: v[:n] for k, v in group["truth"].items()}
    tail["truth"] = {k: v[n:] for k, v in group["truth"].items()}
    return head, tail


# --------------------------------------------------------------------------------------------
# Kinematics
# --------------------------------------------------------------------------------------------


def _p4_from_ptetaphi(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, m: Any) -> np.ndarray:
    """(..., 4) array of (px, py, pz, E) in GeV."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + np.asarray(m) ** 2)
    return np.stack([px, py, pz, e], axis=-1)


def _boost(p4: np.ndarray, parent: np.ndarray, m_parent: float | np.ndarray) -> np.ndarray:
    """Boost rest-frame momenta ``p4`` (n, k, 4) into the frame where the parent has ``parent``.

    ``m_parent`` is a scalar or one mass per parent (GeV). gamma = E / m and
    gamma * beta = p / m avoid the cancellation in 1 - beta^2 at high boost.
    """
    m = np.asarray(m_parent, dtype=np.float64)
    m = m[:, None, None] if m.ndim else m
    gb = parent[:, None, :3] / m  # gamma * beta
    gamma = parent[:, None, 3:4] / m
    p3, e = p4[..., :3], p4[..., 3:4]
    gbp = np.sum(gb * p3, axis=-1, keepdims=True)
    # p' = p + gb * (gbp / (gamma + 1) + E);  E' = gamma E + gbp
    p3_new = p3 + gb * (gbp / (gamma + 1.0) + e)
    e_new = gamma * e + gbp
    return np.concatenate([p3_new, e_new], axis=-1)


def _isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    cos_t = rng.uniform(-1.0, 1.0, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=-1)


def _two_body(rng: np.random.Generator, m: np.ndarray, m1: float, m2: float) -> np.ndarray:
    """Isotropic two-body decays at rest: (n, 2, 4) daughter four-momenta."""
    m = np.asarray(m, dtype=np.float64)
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    d = _isotropic(rng, len(m)) * p[:, None]
    e1, e2 = np.sqrt(p**2 + m1**2), np.sqrt(p**2 + m2**2)
    return np.stack(
        [np.concatenate([d, e1[:, None]], -1), np.concatenate([-d, e2[:, None]], -1)], axis=1
    )


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Haar-uniform rotation matrices (n, 3, 3) from normalised Gaussian quaternions."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def _three_body_equal(rng: np.random.Generator, n: int, big_m: float, m: float) -> np.ndarray:
    """Flat phase-space decays M -> 3 particles of mass m, at rest: (n, 3, 4).

    Phase space is uniform in the Dalitz plane (m12^2, m23^2): sample the bounding box,
    keep points inside the kinematic boundary (vectorised rejection), then orient the decay
    plane with a uniform random rotation.
    """
    lo, hi = (2 * m) ** 2, (big_m - m) ** 2
    m12, m23 = np.empty(0), np.empty(0)
    while len(m12) < n:
        k = 2 * (n - len(m12)) + 16
        a, b = rng.uniform(lo, hi, k), rng.uniform(lo, hi, k)
        sa = np.sqrt(a)
        e2 = sa / 2  # energy of particle 2 in the (12) rest frame (equal masses)
        e3 = (big_m**2 - a - m**2) / (2 * sa)
        p2, p3 = np.sqrt(np.maximum(e2**2 - m**2, 0)), np.sqrt(np.maximum(e3**2 - m**2, 0))
        inside = ((e2 + e3) ** 2 - (p2 + p3) ** 2 <= b) & (b <= (e2 + e3) ** 2 - (p2 - p3) ** 2)
        m12, m23 = np.concatenate([m12, a[inside]]), np.concatenate([m23, b[inside]])
    m12, m23 = m12[:n], m23[:n]
    e1 = (big_m**2 + m**2 - m23) / (2 * big_m)
    e3 = (big_m**2 + m**2 - m12) / (2 * big_m)
    e2 = big_m - e1 - e3
    p1, p2, p3 = (np.sqrt(np.maximum(e**2 - m**2, 1e-30)) for e in (e1, e2, e3))
    cos13 = np.clip((p2**2 - p1**2 - p3**2) / (2 * p1 * p3), -1.0, 1.0)
    sin13 = np.sqrt(1.0 - cos13**2)
    zero = np.zeros(n)
    v1 = np.stack([zero, zero, p1], -1)
    v3 = np.stack([p3 * sin13, zero, p3 * cos13], -1)
    v2 = -(v1 + v3)
    vecs = np.stack([v1, v2, v3], axis=1)  # (n, 3, 3)
    vecs = np.einsum("nij,nkj->nki", _random_rotations(rng, n), vecs)
    energies = np.stack([e1, e2, e3], axis=-1)[..., None]
    return np.concatenate([vecs, energies], axis=-1)


def _ptetaphi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p4[..., 0], p4[..., 1])
    return pt, np.arcsinh(p4[..., 2] / np.maximum(pt, 1e-12)), np.arctan2(p4[..., 1], p4[..., 0])


def _truncated_exp(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float):
    u = rng.random(n)
    return lo - slope * np.log1p(-u * (1.0 - np.exp(-(hi - lo) / slope)))


# --------------------------------------------------------------------------------------------
# One block of events
# --------------------------------------------------------------------------------------------


def _generate_block(
    rng: np.random.Generator, n: int, signal_fraction: float, pu_scale: float
) -> dict[str, Any]:
    """Generate ``n`` events with the fast generator: all collections as flat columns +
    counts, and the truth.

    The helpers draw from ``rng`` in a fixed order, so a seed gives the same events."""
    is_signal = rng.random(n) < signal_fraction
    pu_factor = pu_scale * rng.gamma(_PU_SHAPE, 1.0 / _PU_SHAPE, n)
    sig = _signal_taus(rng, np.flatnonzero(is_signal))
    pu = _pileup_muons(rng, n, pu_factor)
    mu = _all_muons(rng, n, sig, pu)
    return _detector_block(rng, is_signal, pu_factor, sig, mu, np.full(n, -1))


def _detector_block(
    rng: np.random.Generator,
    is_signal: np.ndarray,
    pu_factor: np.ndarray,
    sig: dict[str, Any],
    mu: dict[str, np.ndarray],
    n_pileup: np.ndarray,
) -> dict[str, Any]:
    """The detector response of ``n`` events (their generated muons ``mu`` and signal taus
    ``sig``, both ordered by event): all collections as flat columns + counts, and the truth.

    ``pu_factor`` scales the random (neutron, shower) hits of each event (1 at PU200)."""
    n = len(is_signal)
    mh = _muon_hits(rng, mu["pt"], mu["eta"], mu["phi"], mu["q"], mu["p4"])
    hits, mu_of_hit = _event_hits(rng, mh, mu, pu_factor, n)
    hit_evt = hits.pop("evt")
    hit_counts = np.bincount(hit_evt, minlength=n)
    sel = standard_filter(hits["station"], hits["neighbor"], hits["type"])
    is_sig = hits["truth_tau"] == 1
    endcap_tau = is_sig & (hits["neighbor"] == 0) & (hits["type"] != DT)
    # distinct tau muons with an endcap hit, per event
    tau_mu_seen = np.unique(mu_of_hit[endcap_tau])
    first_tau = np.unique(sig["evt"], return_index=True)
    tau_parent = np.zeros(n, dtype=np.int32)
    tau_parent[first_tau[0]] = sig["parent"][first_tau[1]]
    truth_rec = {
        "is_signal": is_signal,
        "n_tau_mu_endcap": np.bincount(mu["evt"][tau_mu_seen], minlength=n).astype(np.int16),
        "n_hits": hit_counts.astype(np.int32),
        "n_sig_hits": np.bincount(hit_evt[is_sig], minlength=n).astype(np.int32),
        "n_hits_filtered": np.bincount(hit_evt[sel], minlength=n).astype(np.int32),
        "n_sig_hits_filtered": np.bincount(hit_evt[sel & is_sig], minlength=n).astype(np.int32),
        "n_pileup": np.asarray(n_pileup, dtype=np.int32),
        "tau_parent": tau_parent,
    }
    gen_mu = {
        "pt": mu["pt"],
        "eta": mu["eta"],
        "phi": mu["phi"],
        "e": mu["p4"][:, 3],
        "charge": mu["q"],
        "gentauidx": mu["tau"],
    }
    tau = sig["tau"]
    gen_tau = {"pt": sig["pt"], "eta": sig["eta"], "phi": sig["phi"], "e": tau[:, 3]}
    gen_tau["charge"] = sig["q"]
    emtf = _emtf_tracks(rng, mh, mu["pt"], mu["eta"], mu["phi"], mu["q"], mu["evt"], n)
    tau_counts = np.bincount(sig["evt"], minlength=n).astype(np.int64)
    return {
        "mu_hit": _Jagged(hit_counts, _cast(hits, HIT_BRANCHES)),
        "gen_mu": _Jagged(mu["counts"], _cast(gen_mu, GEN_MU_BRANCHES)),
        "gen_tau": _Jagged(tau_counts, _cast(gen_tau, GEN_TAU_BRANCHES)),
        "EMTF_mu": emtf,
        "truth": truth_rec,
    }


def _signal_taus(rng: np.random.Generator, sig_evt: np.ndarray) -> dict[str, Any]:
    """Ds -> tau nu, tau -> 3 mu in the signal events ``sig_evt``."""
    ns = len(sig_evt)
    ds_pt = _truncated_exp(rng, ns, _DS_PT_MIN, _DS_PT_MAX, _DS_PT_SLOPE)
    ds_eta = rng.uniform(*_DS_ABS_ETA, ns) * rng.choice([-1.0, 1.0], ns)
    ds = _p4_from_ptetaphi(ds_pt, ds_eta, rng.uniform(-np.pi, np.pi, ns), M_DS)
    tau = _boost(_two_body(rng, np.full(ns, M_DS), M_TAU, 0.0)[:, :1], ds, M_DS)[:, 0]
    mus = _boost(_three_body_equal(rng, ns, M_TAU, M_MU), tau, M_TAU)  # (ns, 3, 4)
    tau_q = rng.choice(np.array([-1, 1], dtype=np.int64), ns)
    tau_pt, tau_eta, tau_phi = _ptetaphi(tau)
    return {
        "evt": sig_evt,
        "tau": tau,
        "mus": mus,
        "q": tau_q,
        "parent": _DS_PDG * tau_q,
        "pt": tau_pt,
        "eta": tau_eta,
        "phi": tau_phi,
    }


def _pileup_muons(rng: np.random.Generator, n: int, pu_factor: np.ndarray) -> dict[str, Any]:
    """Pileup muons of ``n`` events: singles and dimuons (J/psi and a low-mass continuum)."""
    n_single = rng.poisson(_PU_MU_RATE * pu_factor)
    n_pairs = rng.poisson(_PU_DIMU_RATE * pu_factor)
    ns1 = int(n_single.sum())
    single_pt = 0.5 + rng.gamma(1.5, 1.3, ns1)
    single_eta = rng.uniform(0.9, 2.9, ns1) * rng.choice([-1.0, 1.0], ns1)
    single = _p4_from_ptetaphi(single_pt, single_eta, rng.uniform(-np.pi, np.pi, ns1), M_MU)
    npair = int(n_pairs.sum())
    pair_m = np.where(rng.random(npair) < 0.5, M_JPSI, rng.uniform(0.4, 2.5, npair))
    parent = _p4_from_ptetaphi(
        3.0 + rng.exponential(5.0, npair),
        rng.uniform(1.0, 2.8, npair) * rng.choice([-1.0, 1.0], npair),
        rng.uniform(-np.pi, np.pi, npair),
        pair_m,
    )
    pair = _boost(_two_body(rng, pair_m, M_MU, M_MU), parent, pair_m)  # (npair, 2, 4)
    pair_q0 = rng.choice(np.array([-1, 1], dtype=np.int64), npair)
    return {"n_single": n_single, "n_pairs": n_pairs, "single": single, "pair": pair, "q0": pair_q0}


def _all_muons(rng: np.random.Generator, n: int, sig: dict, pu: dict) -> dict[str, np.ndarray]:
    """All generated muons, ordered per event (tau muons first), with their event, charge,
    tau index (-1: not from the tau) and index inside the event's ``gen_mu`` collection."""
    ns, ns1, npair = len(sig["evt"]), len(pu["single"]), len(pu["pair"])
    p4 = np.concatenate([sig["mus"].reshape(-1, 4), pu["single"], pu["pair"].reshape(-1, 4)])
    evt = np.concatenate(
        [
            np.repeat(sig["evt"], 3),
            np.repeat(np.arange(n), pu["n_single"]),
            np.repeat(np.arange(n), 2 * pu["n_pairs"]),
        ]
    )
    q = np.concatenate(
        [
            (sig["q"][:, None] * np.array([1, 1, -1])).ravel(),
            rng.choice(np.array([-1, 1], dtype=np.int64), ns1),
            (pu["q0"][:, None] * np.array([1, -1])).ravel(),
        ]
    )
    tau = np.concatenate([np.repeat(np.zeros(ns, np.int64), 3), np.full(ns1 + 2 * npair, -1)])
    order = np.argsort(evt, kind="stable")
    p4, evt, q, tau = p4[order], evt[order], q[order], tau[order]
    counts = np.bincount(evt, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pt, eta, phi = _ptetaphi(p4)
    return {
        "p4": p4,
        "evt": evt,
        "q": q,
        "tau": tau,
        "counts": counts,
        "idx": np.arange(len(evt)) - first[evt],
        "pt": pt,
        "eta": eta,
        "phi": phi,
    }


def _event_hits(
    rng: np.random.Generator, mh: dict, mu: dict, pu_factor: np.ndarray, n: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Muon, noise and shower hits with their neighbour-sector copies, in the per-event order
    of a sector processor; returns the hit columns (with ``evt``) and each hit's muon."""
    nh = _noise_hits(rng, pu_factor)
    sh = _shower_hits(rng, pu_factor)
    layer = np.concatenate([mh["layer"], nh["layer"], sh["layer"]])
    evt = np.concatenate([mu["evt"][mh["mu"]], nh["evt"], sh["evt"]])
    endcap = np.concatenate([mh["endcap"], nh["endcap"], sh["endcap"]])
    abs_eta = np.concatenate([mh["abs_eta"], nh["abs_eta"], sh["abs_eta"]])
    phi = np.concatenate([mh["phi"], nh["phi"], sh["phi"]])
    bend = np.concatenate([mh["bend"], nh["bend"], sh["bend"]])
    n_mu_hits = len(mh["layer"])
    tp = np.full(len(layer), -1, dtype=np.int64)
    tp[:n_mu_hits] = mu["idx"][mh["mu"]]
    truth = np.zeros(len(layer), dtype=np.int64)
    truth[:n_mu_hits] = mu["tau"][mh["mu"]] >= 0
    mu_of = np.full(len(layer), -1, dtype=np.int64)
    mu_of[:n_mu_hits] = mh["mu"]
    hits = _finish_hits(rng, layer, evt, endcap, abs_eta, phi, bend, mu_of, tp, truth)
    # ---- neighbour-sector copies, then the per-event order
    last = hits.pop("last_in_sector")
    copy = {k: v[last] for k, v in hits.items()}
    copy["neighbor"] = np.ones(int(last.sum()), dtype=np.int64)
    copy["sector"] = copy["sector"] % 6 + 1
    copy["emtf_phi"] = emtf_phi(copy["sim_phi"], copy["sector"])
    hits["neighbor"] = np.zeros(len(layer), dtype=np.int64)
    hits = {k: np.concatenate([hits[k], copy[k]]) for k in hits}
    # Order as a sector processor would (endcap, sector, neighbour, station, type, chamber),
    # random among equals so that the position of a hit in the vector carries no truth.
    key = hits["evt"].astype(np.int64) << 40
    key |= ((hits["endcap"] > 0).astype(np.int64) << 39) | (hits["sector"].astype(np.int64) << 36)
    key |= (hits["neighbor"].astype(np.int64) << 35) | (hits["station"].astype(np.int64) << 32)
    key |= (hits["type"].astype(np.int64) << 29) | (hits["chamber"].astype(np.int64) << 22)
    key |= rng.integers(0, 1 << 22, len(key))
    order = np.argsort(key, kind="stable")
    hits = {k: v[order] for k, v in hits.items()}
    return hits, hits.pop("mu")


def _cast(fields: dict[str, np.ndarray], dtypes: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {k: np.asarray(fields[k]).astype(dt, copy=False) for k, dt in dtypes.items()}
    if "sim_phi" in out:
        # float32 rounding may turn a value just above -180 into -180: keep (-180, 180].
        out["sim_phi"][out["sim_phi"] <= -180.0] = 180.0
    return out


def _muon_hits(
    rng: np.random.Generator,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    p4: np.ndarray,
) -> dict[str, np.ndarray]:
    """Propagate muons through every layer at once ((muon, layer) grid): flat hit columns."""
    t = LAYERS
    nmu, nl = len(pt), len(t)
    p = np.linalg.norm(p4[:, :3], axis=1)
    # Multiple scattering: cumulative random walk over the four station gaps.
    kicks = rng.normal(size=(nmu, 2, 4)) * (_MS_PHI / np.maximum(p, 0.5)[:, None])[:, None, :]
    walk = np.cumsum(kicks, axis=2)  # [:, 0] phi (deg), [:, 1] eta (as radians of angle)
    st = t.station - 1
    ms_phi = walk[:, 0, st]  # (nmu, nl)
    ms_eta = np.radians(walk[:, 1, st])
    straggle = np.exp(_STRAGGLE * rng.normal(size=(nmu, 1)))

    sgn = np.where(eta >= 0, 1.0, -1.0)
    eta_hit = np.abs(eta[:, None] + sgn[:, None] * ms_eta)
    abs_z = np.where(t.barrel, t.pos * np.sinh(eta_hit), t.pos)
    defl = deflection_deg(abs_z, eta_hit, (q / pt)[:, None])
    ok = (eta_hit >= t.eta_lo) & (eta_hit < t.eta_hi)
    ok &= p[:, None] * straggle > t.p_min
    ok &= np.abs(defl) < _MAX_DEFLECTION
    ok &= rng.random((nmu, nl)) < t.eff
    mu, lay = np.nonzero(ok)
    e_h = eta_hit[mu, lay]
    phi_h = np.degrees(phi[mu]) - defl[mu, lay] + ms_phi[mu, lay]
    phi_h += rng.normal(size=len(mu)) * t.phi_res[lay]

    # Bend ~ q f(eta) / pT with a relative spread (MS, energy loss) and a resolution term.
    mean = q[mu] * t.bend_slope[lay] * field_factor(e_h) / pt[mu]
    bend = mean * (1.0 + 0.15 * rng.normal(size=len(mu))) + t.bend_sigma[lay] * rng.normal(
        size=len(mu)
    )
    bend = np.clip(np.rint(bend), t.bend_lo[lay], t.bend_hi[lay]).astype(np.int64)
    return {
        "mu": mu,
        "layer": lay,
        "endcap": sgn[mu].astype(np.int64),
        "abs_eta": e_h,
        "phi": phi_h,
        "bend": bend,
    }


def _sample_abs_eta(rng: np.random.Generator, layer: np.ndarray) -> np.ndarray:
    """|eta| in the layer's range with density ~ exp(slope |eta|) (background is forward)."""
    t = LAYERS
    lo, hi, a = t.eta_lo[layer], t.eta_hi[layer], t.noise_eta_slope[layer]
    u = rng.random(len(layer))
    a_safe = np.where(a > 0, a, 1.0)
    expo = np.log(np.exp(a_safe * lo) + u * (np.exp(a_safe * hi) - np.exp(a_safe * lo))) / a_safe
    return np.where(a > 0, expo, lo + u * (hi - lo))


def _noise_hits(rng: np.random.Generator, pu_factor: np.ndarray) -> dict[str, np.ndarray]:
    """Uncorrelated neutron / random hits: Poisson per (event, layer)."""
    t = LAYERS
    counts = rng.poisson(pu_factor[:, None] * t.noise_rate[None, :])  # (n, nl)
    evt, lay = np.nonzero(counts)
    rep = counts[evt, lay]
    evt, lay = np.repeat(evt, rep), np.repeat(lay, rep)
    m = len(lay)
    bend = rng.normal(size=m) * t.noise_bend_sigma[lay]
    bend = np.clip(np.rint(bend), t.bend_lo[lay], t.bend_hi[lay]).astype(np.int64)
    return {
        "evt": evt,
        "layer": lay,
        "endcap": rng.choice(np.array([-1, 1], dtype=np.int64), m),
        "abs_eta": _sample_abs_eta(rng, lay),
        "phi": rng.uniform(-180.0, 180.0, m),
        "bend": bend,
    }


_SHOWER_LAYERS = np.array([LAYERS.index(x) for x in ("ME0", "GE1/1a", "GE1/1b", "ME1/1")])


def _shower_hits(rng: np.random.Generator, pu_factor: np.ndarray) -> dict[str, np.ndarray]:
    """Small station-1 clusters (showers, punch-through): nearby hits with random bends."""
    t = LAYERS
    n_cl = rng.poisson(_PU_SHOWER_RATE * pu_factor)
    evt = np.repeat(np.arange(len(pu_factor)), n_cl)
    nc = len(evt)
    c_eta = _sample_abs_eta(rng, np.full(nc, LAYERS.index("ME1/1")))
    c_phi = rng.uniform(-180.0, 180.0, nc)
    c_end = rng.choice(np.array([-1, 1], dtype=np.int64), nc)
    nsl = len(_SHOWER_LAYERS)
    e2 = np.repeat(c_eta[:, None], nsl, axis=1) + 0.01 * rng.normal(size=(nc, nsl))
    lay2 = np.broadcast_to(_SHOWER_LAYERS, (nc, nsl))
    ok = (rng.random((nc, nsl)) < 0.7) & (e2 >= t.eta_lo[lay2]) & (e2 < t.eta_hi[lay2])
    ci, li = np.nonzero(ok)
    lay = _SHOWER_LAYERS[li]
    m = len(lay)
    bend = rng.normal(size=m) * np.maximum(t.noise_bend_sigma[lay], 1.0) * 1.2
    bend = np.clip(np.rint(bend), t.bend_lo[lay], t.bend_hi[lay]).astype(np.int64)
    return {
        "evt": evt[ci],
        "layer": lay,
        "endcap": c_end[ci],
        "abs_eta": e2[ci, li],
        "phi": c_phi[ci] + 0.3 * rng.normal(size=m),
        "bend": bend,
    }


def _finish_hits(
    rng: np.random.Generator,
    layer: np.ndarray,
    evt: np.ndarray,
    endcap: np.ndarray,
    abs_eta: np.ndarray,
    phi: np.ndarray,
    bend: np.ndarray,
    mu_of: np.ndarray,
    tp: np.ndarray,
    truth: np.ndarray,
) -> dict[str, np.ndarray]:
    """All mu_hit_* columns (before neighbour copies) for the concatenated hits.

    ``mu_of`` is the generating muon (block-wide index) or -1; ``evt`` and ``mu`` are
    returned as bookkeeping columns next to the branches.
    """
    t = LAYERS
    is_mu = mu_of >= 0
    typ = t.type[layer].astype(np.int64)
    m = len(layer)
    bend = np.where((typ == RPC) | (typ == GEM), 0, bend)
    # Quality: real muons give clean, high-quality primitives; background is mostly poor.
    q_mu = np.select(
        [typ == CSC, typ == ME0, typ == DT],
        [rng.integers(11, 16, m), rng.integers(8, 16, m), rng.integers(4, 7, m)],
        1 + rng.binomial(2, 0.3, m),
    )
    q_bg = np.select(
        [typ == CSC, typ == ME0, typ == DT],
        [1 + rng.binomial(14, 0.4, m), 1 + rng.binomial(14, 0.35, m), 1 + rng.binomial(5, 0.4, m)],
        1 + rng.binomial(5, 0.3, m),
    )
    # Time (ns, relative to the triggering crossing): in time for muons, flat for background.
    time = np.where(is_mu, rng.normal(size=m) * 2.0, rng.uniform(-37.5, 37.5, m))
    time = np.rint(time).astype(np.int64)
    bx = np.floor((time + 12.5) / 25.0).astype(np.int64)

    d = digitise(layer, endcap, np.clip(abs_eta, t.eta_lo[layer], t.eta_hi[layer] - 1e-9), phi)
    out = {
        "evt": evt,
        "mu": mu_of,
        "endcap": endcap,
        "station": t.station[layer].astype(np.int64),
        "ring": d["ring"],
        "sector": d["sector"],
        "subsector": d["subsector"],
        "chamber": d["chamber"],
        "cscid": d["cscid"],
        "bx": bx,
        "type": typ,
        "strip": d["strip"],
        "wire": d["wire"],
        "roll": d["roll"],
        "quality": np.where(is_mu, q_mu, q_bg),
        "pattern": np.where(typ == CSC, clip_pattern(bend), 0),
        "bend": bend,
        "time": time,
        "fr": d["fr"],
        "emtf_phi": d["emtf_phi"],
        "emtf_theta": d["emtf_theta"],
        "sim_phi": d["sim_phi"],
        "sim_theta": d["sim_theta"],
        "sim_eta": d["sim_eta"],
        "sim_r": d["sim_r"],
        "sim_z": d["sim_z"],
        "truth_tau": truth,
        "sim_tp": tp,
        "last_in_sector": d["last_in_sector"],
    }
    return out


def _emtf_tracks(
    rng: np.random.Generator,
    mh: dict[str, np.ndarray],
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    mu_evt: np.ndarray,
    n: int,
) -> _Jagged:
    """Emulated EMTF tracks: a muon with endcap hits in >= 2 stations, incl. a CSC or ME0.

    pT has a ~30% log-normal resolution (0.5 GeV steps), phi is the muon's phi at station 2
    (degrees), the charge is wrong for a few per cent of soft muons.
    """
    t = LAYERS
    nmu = len(pt)
    typ = t.type[mh["layer"]]
    endcap_hit = typ != DT
    st_mask = np.zeros((nmu, 4), dtype=bool)
    st_mask[mh["mu"][endcap_hit], t.station[mh["layer"][endcap_hit]] - 1] = True
    has_seg = np.zeros(nmu, dtype=bool)
    has_seg[mh["mu"][(typ == CSC) | (typ == ME0)]] = True
    found = (st_mask.sum(axis=1) >= 2) & has_seg & (rng.random(nmu) < 0.97)
    idx = np.flatnonzero(found)
    l1_pt = np.maximum(np.round(2.0 * pt[idx] * np.exp(0.3 * rng.normal(size=len(idx)))) / 2, 1.0)
    l1_eta = np.round((eta[idx] + 0.01 * rng.normal(size=len(idx))) * 100.0) / 100.0
    l1_phi = wrap_deg(
        np.degrees(phi[idx]) - deflection_deg(830.0, np.abs(eta[idx]), q[idx] / pt[idx])
    )
    flip = rng.random(len(idx)) < 0.01 + 0.1 * np.exp(-pt[idx] / 2.0)
    l1_q = np.where(flip, -q[idx], q[idx])
    return _Jagged(
        np.bincount(mu_evt[idx], minlength=n),
        _cast({"pt": l1_pt, "eta": l1_eta, "phi": l1_phi, "charge": l1_q}, EMTF_BRANCHES),
    )
