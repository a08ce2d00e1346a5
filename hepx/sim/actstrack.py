"""Built-in ACTS-like tracking simulation writing ``hits.root`` / ``particles.root``.

Events are generated and propagated through the ACTS Generic detector
(:mod:`hepx.sim.detector_acts`) in a uniform solenoid field, and written in the layouts of the
real ACTS producers (``RootSimHitWriter`` and ``RootParticleWriter``; see
``root-formats.md``): a flat ``hits`` tree with one entry per hit, and a ``particles`` tree with
one entry per event (vector branches) or, for old files, one entry per particle.

Physics (``generator="fast"``, the default)
-------------------------------------------
* Signal events (``signal_fraction``) contain ``Z -> mu mu`` or ``Z -> e e``: relativistic
  Breit-Wigner mass (PDG mass and width from the ``particle`` package, truncated to
  60-120 GeV), a vector-boson like pT spectrum peaked near 2.5 GeV with a power-law tail,
  rapidity from a wide Gaussian (sigma 1.8) truncated to ``|y| < 2.5``, isotropic decay in
  the Z rest frame. Every particle's mass and charge come from the ``particle`` package.
* About 18 % of background events carry a lepton pair that is not a Z: opposite-charge
  Drell-Yan continuum (mass 12-70 or 112-300 GeV), opposite-charge J/psi / Upsilon, or a
  same-charge pair (mass 40-140 GeV), so "two leptons" does not mean signal.
* Every event has an underlying event at the hard-scatter vertex (Poisson mean 5) and pileup:
  a Poisson number (mean ``pileup``) of interactions per crossing, each at its own vertex with
  a Poisson number (mean 5) of charged particles, with a soft ``pT (1 + pT/1 GeV)**-7``
  spectrum above 0.15 GeV, flat ``|eta| < 3`` and the species mix pi 80 %, K 10 %, p 5 %,
  e 3 %, mu 2 %. Vertices: ``z ~ N(0, 50 mm)``, transverse 15 um, ``c t ~ N(0, 54 mm)``.

Physics (``generator="pythia8"``)
---------------------------------
The hard scatter comes from Pythia 8 (pp at 14 TeV, :mod:`hepx.sim.pythia`): signal
``Z/gamma* -> l+ l-`` (60-120 GeV); the background events with a lepton pair (the same 18 %)
are Drell-Yan continuum (12-60 GeV: 35 %, 120-300 GeV: 15 %), J/psi (20 %) or Upsilon(1S)
(5 %) to l+ l-, and dileptonic ttbar (25 %); the others are ``HardQCD:all`` (pTHat > 20 GeV).
All final-state charged particles within ``|eta| < 4`` and ``pT > 0.1 GeV`` are propagated,
from their production points (decays keep their displaced vertices). Pileup overlays a Poisson
number (mean ``pileup``) of ``SoftQCD:nonDiffractive`` events drawn with replacement from a
pool of ``pool_size`` events generated once per run, each rotated by a random azimuth (and by
pi about the x axis half of the time) and placed at its own vertex as above.

Propagation (both generators)
-----------------------------
Propagation is analytic, surface to surface on helices (straight lines for ``bfield=0``), in a
numba kernel. At each crossed layer: Highland multiple scattering (Gaussian), Bethe-Bloch
ionisation loss in silicon (density correction; Landau-like Moyal fluctuations around the
mean), Bethe-Heitler bremsstrahlung for electrons.
Sensitive layers record a hit with probability ``hit_efficiency``. A particle stops when it
leaves the detector, when it turns back towards the beam line (loopers: half a turn), after
``MAX_HITS`` hits, or when it has lost its kinetic energy.

Hit records follow ACTS: position and ``tt = c t`` (mm) on the surface, four-momentum *before*
the material interaction (``tpx, tpy, tpz, te``) and ``delta* = after - before``; between two
hits of a particle only the field acts, so ``|p|``, ``pz`` and ``E`` of hit n+1 equal those after
hit n (exactly, when no passive material or inefficient layer lies in between). Within an event,
hits are ordered by ``geometry_id`` as in ACTS's hit container (not grouped by particle).

Particles carry the generated (initial) kinematics, the barcode components (all primaries:
``vertex_secondary = generation = sub_particle = 0``; ``vertex_primary`` 1 is the hard scatter,
2, 3, ... are pileup vertices; ``particle`` counts from 1 within a vertex; the Z or background
pair leptons are particles 1 and 2 of vertex 1), and the simulation summary ``e_loss`` (GeV),
``total_x0``, ``total_l0``, ``number_of_hits`` and ``outcome`` (ACTS ``ParticleOutcome``:
1 stopped in material, 2 left the detector, 3 stopped as a looper or at ``MAX_HITS``).

Reproducibility
---------------
All hepx random numbers are counter-based hashes of ``(key, event_id, stream, index)`` with
the key derived from ``seed`` by :class:`numpy.random.SeedSequence`: the content of an event
depends on ``seed`` and its ``event_id`` only, never on ``chunk_size`` or on the other events. With
``event_order="sorted"`` the files are identical (as arrays) for any ``chunk_size``; the
``shuffled``/``interleaved`` orders permute within each chunk, like multi-threaded ACTS.
With ``generator="pythia8"`` each Pythia instance (one per process and lepton flavour, and the
pileup pool's) is seeded from ``seed`` and gives its events in ``event_id`` order, so the files
again depend only on the arguments, not on ``chunk_size``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numba
import numpy as np
import uproot
from particle import Particle

from hepx.atomic import atomic_file, check_creatable, check_files_free, output_dir
from hepx.errors import ConfigError
from hepx.progress import progress_bar
from hepx.sim.detector_acts import (
    CYLINDER,
    L0_SILICON_MM,
    X0_SILICON_MM,
    encode_geometry_id,
    generic_detector,
    module_index,
)
from hepx.sim.kinematics import (
    TabulatedSampler,
    hash_u64,
    mix64,
    normal,
    p4_from_pt_y_phi_m,
    poisson,
    sample_power_pt,
    sample_relativistic_bw,
    two_body_decay,
    uniform,
    uniform_scalar,
)
from hepx.sim.pythia import HardScatter, PythiaParticles, load_pythia, minbias_pool

__all__ = [
    "EVENT_ORDERS",
    "GENERATORS",
    "MAX_HITS",
    "PAIR_KINDS",
    "PARTICLES_LAYOUTS",
    "SCHEMAS",
    "Z_LABEL_MASS",
    "Z_MASS",
    "Z_WIDTH",
    "ActsTrackTruth",
    "pack_barcode",
    "simulate_actstrack",
    "unpack_barcode",
]

SCHEMAS = ("v43", "v44.0", "v44.3")
PARTICLES_LAYOUTS = ("per_event", "per_particle")
EVENT_ORDERS = ("sorted", "shuffled", "interleaved")
COMPRESSIONS = ("zlib", "lzma", "lz4", "zstd", "none")
GENERATORS = ("fast", "pythia8")


def _pdg_mass(pdgid: int) -> float:
    """Mass (GeV) of ``pdgid`` in the PDG tables of the ``particle`` package."""
    return Particle.from_pdgid(pdgid).mass / 1000.0


Z_MASS = _pdg_mass(23)  # GeV: the generated Z line shape (particle package, PDG)
Z_WIDTH = Particle.from_pdgid(23).width / 1000.0  # GeV (particle package, PDG)
#: GeV: the centre of the ActsTrack label window, the LRI paper's rule "within 2 GeV of
#: 91.1876 GeV" (as :data:`hepx.io.acts.Z_MASS`); fixed, not the current PDG mass.
Z_LABEL_MASS = 91.1876
Z_WINDOW = 2.0  # GeV: the ActsTrack label is an opposite-charge pair within this of Z_LABEL_MASS
MAX_HITS = 25  # per particle
_MAX_STEPS = 64  # surface crossings per particle (hits, inefficient layers, beam pipe)
_HITS_PER_PARTICLE_BUFFER = 16  # hit-buffer rows allocated per particle of a chunk

# pair_kind codes of the truth record
PAIR_NONE, PAIR_Z, PAIR_OS_CONTINUUM, PAIR_OS_RESONANCE, PAIR_SAME_SIGN = 0, 1, 2, 3, 4
PAIR_TTBAR = 5
PAIR_KINDS = {
    PAIR_NONE: "none",
    PAIR_Z: "Z -> l+ l-",
    PAIR_OS_CONTINUUM: "opposite-charge Drell-Yan continuum",
    PAIR_OS_RESONANCE: "opposite-charge J/psi or Upsilon(1S)",
    PAIR_SAME_SIGN: "same-charge pair",
    PAIR_TTBAR: "ttbar -> b l+ nu b~ l- nu~ (pythia8 only)",
}
_BKG_PAIR_FRACTION = 0.18  # of background events
# The pythia8 processes (hepx.sim.pythia.HARD_PROCESSES): name, pair kind, fraction of the
# background events with a pair (as the fast generator's continuum / resonance / third kind).
_PYTHIA_SIGNAL = ("z", PAIR_Z)
_PYTHIA_PAIRS = (
    ("dy_low", PAIR_OS_CONTINUUM, 0.35),
    ("dy_high", PAIR_OS_CONTINUUM, 0.15),
    ("jpsi", PAIR_OS_RESONANCE, 0.20),
    ("upsilon", PAIR_OS_RESONANCE, 0.05),
    ("ttbar", PAIR_TTBAR, 0.25),
)
_PYTHIA_PROCESSES = (_PYTHIA_SIGNAL, *((p, k) for p, k, _ in _PYTHIA_PAIRS), ("qcd", PAIR_NONE))
_PYTHIA_NO_FLAVOUR = ("ttbar", "qcd")  # the lepton flavour is Pythia's, not muon_fraction's
_PYTHIA_HARD_PARTICLES = 200  # a generous mean of kept hard-scatter particles (chunk sizing)
_MAX_CHUNK_PARTICLES = 250_000  # a chunk holds at most about this many particles (memory)

# Particle data from the ``particle`` package (its PDG tables; masses in GeV, charges in e).
ELECTRON_MASS = _pdg_mass(11)
MUON_MASS = _pdg_mass(13)
_JPSI_MASS, _UPSILON_MASS = _pdg_mass(443), _pdg_mass(553)  # the background resonances
#: The generated species (positive PDG ids: pi+, K+, p, e-, mu-), their masses and charges.
_SPECIES_PDG = np.array([211, 321, 2212, 11, 13], dtype=np.int32)
_SPECIES_MASS = np.array([_pdg_mass(int(p)) for p in _SPECIES_PDG])
_SPECIES_CHARGE = np.array([Particle.from_pdgid(int(p)).charge for p in _SPECIES_PDG], float)
_SPECIES_CUMFRAC = np.cumsum([0.80, 0.10, 0.05, 0.03, 0.02])
_SPECIES_BY_PDG = np.argsort(_SPECIES_PDG)  # species index of each sorted |PDG id|

_UE_MEAN = 5.0  # charged particles of the underlying event at the hard-scatter vertex
_PU_PER_VERTEX = 5.0  # mean charged particles per pileup vertex (in the simulated acceptance)
_PILEUP_DEFAULT = 5.0  # interactions per crossing: 25 charged particles, as before the change
_SOFT_PT_MIN, _SOFT_PT_MAX = 0.15, 50.0  # GeV
_SOFT_ETA_MAX = 3.0
_VTX_SIGMA_T, _VTX_SIGMA_Z, _VTX_SIGMA_CT = 0.015, 50.0, 54.0  # mm
_VTX_SIGMAS = np.array([_VTX_SIGMA_T, _VTX_SIGMA_T, _VTX_SIGMA_Z, _VTX_SIGMA_CT])
_C_MM_PER_NS = 299.792458

# Random streams: every draw is hashed with (event_id, stream, index...).
(
    _S_SIGNAL,
    _S_FLAVOUR,
    _S_BKG_PAIR,
    _S_BKG_KIND,
    _S_MASS,
    _S_MASS_REGION,
    _S_PAIR_PT,
    _S_PAIR_Y,
    _S_PAIR_PHI,
    _S_DECAY_COS,
    _S_DECAY_PHI,
    _S_SS_SIGN,
    _S_VTX,
    _S_N_UE,
    _S_N_PU,
    _S_PU_VTX,
    _S_SOFT_PT,
    _S_SOFT_ETA,
    _S_SOFT_PHI,
    _S_SOFT_SPECIES,
    _S_SOFT_SIGN,
    _S_PROPAGATE,
    _S_ORDER_HITS,
    _S_ORDER_HIT_MIX,
    _S_ORDER_PARTICLES,
    _S_ORDER_PARTICLE_MIX,
    _S_PU_MULT,
    _S_POOL_PICK,
    _S_POOL_ROT,
    _S_POOL_FLIP,
) = range(1, 31)


def _soft_pt_sampler() -> TabulatedSampler:
    # Tsallis-like minimum-bias spectrum pT (1 + pT/p0)^-n: peak ~0.17 GeV, <pT> ~ 0.6 GeV above cut.
    x = np.geomspace(_SOFT_PT_MIN, _SOFT_PT_MAX, 4000)
    return TabulatedSampler(x, x * (1.0 + x / 1.0) ** -7.0)


_SOFT_PT = _soft_pt_sampler()


# ----------------------------------------------------------------------------- barcodes
def pack_barcode(
    vertex_primary: np.ndarray,
    vertex_secondary: np.ndarray | int = 0,
    particle: np.ndarray | int = 0,
    generation: np.ndarray | int = 0,
    sub_particle: np.ndarray | int = 0,
) -> np.ndarray:
    """Pack barcode components into the uint64 ``particle_id`` of ACTS <= v43.

    ``vertex_primary << 52 | vertex_secondary << 40 | particle << 24 | generation << 16 |
    sub_particle`` (12, 12, 16, 8 and 16 bits).
    """
    u = np.uint64
    return (
        (np.asarray(vertex_primary, dtype=u) & u(0xFFF)) << u(52)
        | (np.asarray(vertex_secondary, dtype=u) & u(0xFFF)) << u(40)
        | (np.asarray(particle, dtype=u) & u(0xFFFF)) << u(24)
        | (np.asarray(generation, dtype=u) & u(0xFF)) << u(16)
        | (np.asarray(sub_particle, dtype=u) & u(0xFFFF))
    )


def unpack_barcode(particle_id: np.ndarray) -> dict[str, np.ndarray]:
    """Split packed uint64 barcodes into uint32 components (keys as the v44 branch suffixes)."""
    p = np.asarray(particle_id, dtype=np.uint64)
    u = np.uint64
    return {
        "vertex_primary": ((p >> u(52)) & u(0xFFF)).astype(np.uint32),
        "vertex_secondary": ((p >> u(40)) & u(0xFFF)).astype(np.uint32),
        "particle": ((p >> u(24)) & u(0xFFFF)).astype(np.uint32),
        "generation": ((p >> u(16)) & u(0xFF)).astype(np.uint32),
        "sub_particle": (p & u(0xFFFF)).astype(np.uint32),
    }


# ----------------------------------------------------------------------------- truth record
@dataclass(frozen=True)
class ActsTrackTruth:
    """Generator truth of a run, one row per event in ``event_id`` order (built from the
    generator arrays, not read back from the files).

    Attributes
    ----------
    event_id : uint32, (n,)
    is_signal : bool, (n,)
        A Z was generated.
    z_flavour : int32, (n,)
        11 (Z -> e e), 13 (Z -> mu mu) or 0.
    z_mass : float64, (n,), GeV
        Generated Z mass; NaN without a Z. With ``generator="pythia8"`` the mass of the two
        final-state leptons (after QED radiation), as written to the particles file.
    z_in_window : bool, (n,)
        ``is_signal`` and ``|z_mass - 91.1876| < 2`` (the ActsTrack labelling rule).
    lepton_barcode : uint64, (n, 2)
        Packed barcodes (v43 packing) of the Z leptons ``(l-, l+)``; 0 without a Z.
    pair_kind : int8, (n,)
        Hard-scatter lepton pair, see :data:`PAIR_KINDS` (1 = Z; 4 only from the fast
        generator, 5 only from ``pythia8``).
    pair_mass : float64, (n,), GeV
        Generated mass of that pair (NaN if none); ``pythia8``: of its final-state leptons.
    pair_barcode : uint64, (n, 2)
        Packed barcodes of the pair leptons (Z or not); 0 if none.
    pair_pdg : int32, (n, 2)
        PDG ids of the pair leptons; 0 if none.
    pair_n_hits : int32, (n, 2)
        Hits written for each pair lepton.
    n_particles : int32, (n,)
        Particles written to ``particles.root`` for the event.
    n_hits : int64, (n,)
        Hits written to ``hits.root`` for the event.
    n_signal_hits : int64, (n,)
        Hits of the Z leptons (0 without a Z).
    vertex_z : float64, (n,), mm
        z of the hard-scatter vertex (``vertex_primary == 1``).
    """

    event_id: np.ndarray
    is_signal: np.ndarray
    z_flavour: np.ndarray
    z_mass: np.ndarray
    z_in_window: np.ndarray
    lepton_barcode: np.ndarray
    pair_kind: np.ndarray
    pair_mass: np.ndarray
    pair_barcode: np.ndarray
    pair_pdg: np.ndarray
    pair_n_hits: np.ndarray
    n_particles: np.ndarray
    n_hits: np.ndarray
    n_signal_hits: np.ndarray
    vertex_z: np.ndarray

    def __len__(self) -> int:
        return len(self.event_id)

    def to_dict(self) -> dict[str, np.ndarray]:
        """The fields as a dict of numpy arrays."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_awkward(self) -> ak.Array:
        """The fields as an awkward record array (two-column fields become length-2 lists)."""
        return ak.zip(
            {k: ak.from_numpy(v, regulararray=True) for k, v in self.to_dict().items()},
            depth_limit=1,
        )

    @staticmethod
    def concatenate(parts: list[ActsTrackTruth]) -> ActsTrackTruth:
        """Concatenate records of consecutive chunks."""
        return ActsTrackTruth(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(parts[0])
            }
        )


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class _Config:
    events: int
    bfield: float
    key: int
    signal_fraction: float
    pileup: float
    schema: str
    particles_layout: str
    event_order: str
    chunk_size: int
    compression: Any
    muon_fraction: float
    hit_efficiency: float
    generator: str = "fast"
    pool_size: int = 2000
    progress: bool | None = None


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_real(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _check_fraction(name: str, v: object, *, open_low: bool = False) -> float:
    lo = "(0" if open_low else "[0"
    if not _is_real(v) or not math.isfinite(float(v)) or not (0.0 <= float(v) <= 1.0):
        raise ConfigError(f"{name} must be a number in {lo}, 1], got {v!r}")
    if open_low and float(v) == 0.0:
        raise ConfigError(f"{name} must be a number in {lo}, 1], got {v!r}")
    return float(v)


def _compression(c: object) -> Any:
    if c is None:
        return None
    if isinstance(c, uproot.compression.Compression):
        return c
    if isinstance(c, str):
        algo, _, level = c.lower().partition(":")
        if algo in COMPRESSIONS and (level == "" or level.isdigit()):
            if algo == "none":
                return None
            needs = {"lz4": "lz4", "zstd": "zstandard"}.get(algo)
            if needs is not None:
                try:
                    __import__(needs)
                except ImportError:
                    raise ConfigError(
                        f"compression {c!r} needs the {needs} package; use 'zlib' or 'lzma'"
                    ) from None
            cls = {
                "zlib": uproot.ZLIB,
                "lzma": uproot.LZMA,
                "lz4": uproot.LZ4,
                "zstd": uproot.ZSTD,
            }[algo]
            return cls(int(level) if level else 1)
    raise ConfigError(
        f"compression must be None, an uproot Compression or 'ALGO[:LEVEL]' with ALGO in "
        f"{', '.join(COMPRESSIONS)}; got {c!r}"
    )


def _validate(**kw: Any) -> _Config:
    events = kw["events"]
    if not _is_int(events) or not (1 <= events <= 2**32 - 1):
        raise ConfigError(f"events must be an integer in [1, 2**32 - 1], got {events!r}")
    bfield = kw["bfield"]
    if not _is_real(bfield) or not math.isfinite(float(bfield)) or not 0 <= float(bfield) <= 100:
        raise ConfigError(f"bfield must be a number of tesla in [0, 100], got {bfield!r}")
    seed = kw["seed"]
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    for name, allowed in (
        ("generator", GENERATORS),
        ("schema", SCHEMAS),
        ("particles_layout", PARTICLES_LAYOUTS),
        ("event_order", EVENT_ORDERS),
    ):
        if kw[name] not in allowed:
            raise ConfigError(
                f"{name} must be one of {', '.join(map(repr, allowed))}; got {kw[name]!r}"
            )
    chunk_size = kw["chunk_size"]
    if not _is_int(chunk_size) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    # SeedSequence mixes any seed (small or huge) into a well-spread 64-bit hashing key.
    key = int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0])
    return _Config(
        events=int(events),
        bfield=float(bfield),
        key=key,
        signal_fraction=_check_fraction("signal_fraction", kw["signal_fraction"]),
        pileup=_check_pileup(kw["pileup"], kw["pileup_mean"], kw["generator"]),
        schema=kw["schema"],
        particles_layout=kw["particles_layout"],
        event_order=kw["event_order"],
        chunk_size=int(chunk_size),
        compression=_compression(kw["compression"]),
        muon_fraction=_check_fraction("muon_fraction", kw["muon_fraction"]),
        hit_efficiency=_check_fraction("hit_efficiency", kw["hit_efficiency"], open_low=True),
        generator=kw["generator"],
        pool_size=_check_pool_size(kw["pool_size"], kw["generator"]),
        progress=kw["progress"],
    )


def _check_pileup(pileup: object, pileup_mean: object, generator: str) -> float:
    """Interactions per crossing, from ``pileup`` or the fast generator's old ``pileup_mean``
    (charged particles, ``_PU_PER_VERTEX`` per interaction)."""
    if pileup_mean is None:
        pileup = _PILEUP_DEFAULT if pileup is None else pileup
        if not _is_real(pileup) or not (0 <= float(pileup) <= 700):
            raise ConfigError(
                f"pileup must be a number of interactions per crossing in [0, 700], got {pileup!r}"
            )
        return float(pileup)
    if pileup is not None:
        raise ConfigError("give pileup (interactions per crossing), not also pileup_mean")
    if generator != "fast":
        raise ConfigError(
            "pileup_mean (charged particles of the fast generator) is not defined for "
            f"generator={generator!r}; give pileup= (interactions per crossing)"
        )
    hi = 700 * _PU_PER_VERTEX
    if not _is_real(pileup_mean) or not (0 <= float(pileup_mean) <= hi):
        raise ConfigError(f"pileup_mean must be a number in [0, {hi:g}], got {pileup_mean!r}")
    warnings.warn(
        f"pileup_mean is deprecated: give pileup={float(pileup_mean) / _PU_PER_VERTEX:g} "
        f"interactions per crossing ({_PU_PER_VERTEX:g} charged particles each)",
        DeprecationWarning,
        stacklevel=4,
    )
    return float(pileup_mean) / _PU_PER_VERTEX


def _check_pool_size(pool_size: object, generator: str) -> int:
    if not _is_int(pool_size) or not (1 <= pool_size <= 1_000_000):
        raise ConfigError(f"pool_size must be an integer in [1, 1000000], got {pool_size!r}")
    if generator == "pythia8":
        load_pythia()  # fail early (exit 2) when Pythia is not installed
    return int(pool_size)


# ----------------------------------------------------------------------------- generator
@dataclass
class _Generated:
    """Particles of a chunk, flat and ordered by (event, index in event); per-event truth."""

    event_id: np.ndarray  # (n_ev,) uint64
    counts: np.ndarray  # (n_ev,) particles per event
    # per particle, (n_p,)
    ev: np.ndarray  # local event index
    local: np.ndarray  # index within the event
    pdg: np.ndarray
    q: np.ndarray
    m: np.ndarray
    v4: np.ndarray  # (n_p, 4): x, y, z, c t (mm)
    p3: np.ndarray  # (n_p, 3): px, py, pz (GeV)
    vertex_primary: np.ndarray
    particle: np.ndarray
    # per event
    pair_kind: np.ndarray
    pair_flavour: np.ndarray
    pair_mass: np.ndarray
    pair_pdg: np.ndarray  # (n_ev, 2)
    vertex_z: np.ndarray


def _truncated_normal(
    key: int, ev: np.ndarray, stream: int, sigma: float, cut: float
) -> np.ndarray:
    # First of 8 candidates inside |x| < cut (all 8 fail with probability < 1e-6; then clip).
    cand = sigma * normal(key, ev[:, None], stream, np.arange(8)[None, :])
    ok = np.abs(cand) < cut
    first = np.argmax(ok, axis=1)
    pick = cand[np.arange(len(ev)), first]
    return np.where(ok.any(axis=1), pick, np.clip(cand[:, 0], -cut, cut))


def _hard_vertex(cfg: _Config, ev_id: np.ndarray) -> np.ndarray:
    """The hard-scatter vertex ``(x, y, z, c t)`` of each event, mm."""
    return normal(cfg.key, ev_id[:, None], _S_VTX, np.arange(4)[None, :]) * _VTX_SIGMAS


@dataclass
class _Vertices:
    """The pileup vertices of a chunk, ordered by (event, vertex)."""

    ev: np.ndarray  # local event index
    k: np.ndarray  # index within the event: vertex_primary - 2
    v4: np.ndarray  # (n_v, 4): x, y, z, c t (mm)


def _pileup_vertices(cfg: _Config, ev_id: np.ndarray) -> _Vertices:
    """Poisson(``pileup``) interactions per event, each at its own vertex."""
    n_vtx = poisson(uniform(cfg.key, ev_id, _S_N_PU), cfg.pileup)
    ev = np.repeat(np.arange(len(ev_id)), n_vtx)
    k = np.arange(len(ev)) - np.repeat(np.cumsum(n_vtx) - n_vtx, n_vtx)
    v4 = normal(cfg.key, ev_id[ev][:, None], _S_PU_VTX, k[:, None], np.arange(4)[None, :])
    return _Vertices(ev=ev, k=k, v4=v4 * _VTX_SIGMAS)


def _generate(cfg: _Config, first: int, n: int) -> _Generated:
    """Generate the particles of events ``first .. first + n - 1`` (vectorised over events)."""
    key = cfg.key
    ev_id = np.arange(first, first + n, dtype=np.uint64)
    pair = _hard_pair(cfg, ev_id)
    has_pair = pair["kind"] != PAIR_NONE

    # --- vertices and multiplicities
    vtx = _hard_vertex(cfg, ev_id)
    n_pair = np.where(has_pair, 2, 0)
    n_ue = poisson(uniform(key, ev_id, _S_N_UE), _UE_MEAN)
    pu = _pileup_vertices(cfg, ev_id)
    mult = poisson(uniform(key, ev_id[pu.ev], _S_PU_MULT, pu.k), _PU_PER_VERTEX)
    counts = n_pair + n_ue + np.bincount(pu.ev, weights=mult, minlength=n).astype(np.int64)

    # --- flat particles
    total = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    ev = np.repeat(np.arange(n), counts)
    local = np.arange(total) - offsets[ev]
    pev = ev_id[ev]
    is_lep = local < n_pair[ev]
    is_pu = local >= (n_pair + n_ue)[ev]
    soft_p3, soft_pdg, soft_mass = _soft_particles(key, pev, local)
    lep_p4 = np.where((local == 0)[:, None], pair["d1"][ev], pair["d2"][ev])
    lep_pdg = np.where(local == 0, pair["pdg"][ev, 0], pair["pdg"][ev, 1])
    p3 = np.where(is_lep[:, None], lep_p4[:, 1:], soft_p3)
    pdg = np.where(is_lep, lep_pdg, soft_pdg).astype(np.int32)
    mass = np.where(is_lep, pair["lepton_mass"][ev], soft_mass)
    species = _SPECIES_BY_PDG[np.searchsorted(_SPECIES_PDG[_SPECIES_BY_PDG], np.abs(pdg))]
    q = np.sign(pdg) * _SPECIES_CHARGE[species]  # the antiparticle has the opposite charge

    # pileup particles, in (event, vertex, particle) order like the is_pu rows
    pu_vertex = np.repeat(np.arange(len(pu.ev)), mult)
    pu_j = np.arange(len(pu_vertex)) - np.repeat(np.cumsum(mult) - mult, mult)
    v4 = vtx[ev]
    v4[is_pu] = pu.v4[pu_vertex]
    vertex_primary = np.ones(total, np.uint32)
    vertex_primary[is_pu] = 2 + pu.k[pu_vertex]
    particle = (local + 1).astype(np.uint32)
    particle[is_pu] = pu_j + 1
    return _Generated(
        event_id=ev_id,
        counts=counts,
        ev=ev,
        local=local,
        pdg=pdg,
        q=q,
        m=mass,
        v4=v4,
        p3=p3,
        vertex_primary=vertex_primary,
        particle=particle,
        pair_kind=pair["kind"],
        pair_flavour=np.where(has_pair, pair["flavour"], 0).astype(np.int32),
        pair_mass=np.where(has_pair, pair["mass"], np.nan),
        pair_pdg=pair["pdg"],
        vertex_z=vtx[:, 2],
    )


def _hard_pair(cfg: _Config, ev_id: np.ndarray) -> dict[str, np.ndarray]:
    """The hard-scatter lepton pair of each event: its kind (Z, continuum, resonance,
    same-sign, none), flavour, mass, the two leptons' four-momenta and PDG ids."""
    key = cfg.key

    def u(stream: int, *cols: Any) -> np.ndarray:
        return uniform(key, ev_id, stream, *cols)

    is_signal = u(_S_SIGNAL) < cfg.signal_fraction
    has_bkg = ~is_signal & (u(_S_BKG_PAIR) < _BKG_PAIR_FRACTION)
    u_kind = u(_S_BKG_KIND)
    bkg_kind = np.where(
        u_kind < 0.5, PAIR_OS_CONTINUUM, np.where(u_kind < 0.75, PAIR_OS_RESONANCE, PAIR_SAME_SIGN)
    )
    pair_kind = np.where(is_signal, PAIR_Z, np.where(has_bkg, bkg_kind, PAIR_NONE)).astype(np.int8)
    flavour = np.where(u(_S_FLAVOUR) < cfg.muon_fraction, 13, 11).astype(np.int32)
    lep_mass = np.where(flavour == 13, MUON_MASS, ELECTRON_MASS)

    u_m, u_region = u(_S_MASS), u(_S_MASS_REGION)
    m_z = sample_relativistic_bw(u_m, Z_MASS, Z_WIDTH, 60.0, 120.0)
    # Drell-Yan continuum ~ 1/m^2 away from the Z: 70 % in 12-70 GeV, 30 % in 112-300 GeV.
    lo, hi = np.where(u_region < 0.7, 12.0, 112.0), np.where(u_region < 0.7, 70.0, 300.0)
    m_cont = 1.0 / (1.0 / lo - u_m * (1.0 / lo - 1.0 / hi))
    m_res = np.where(u_region < 0.8, _JPSI_MASS, _UPSILON_MASS)
    m_ss = 40.0 + 100.0 * u_m
    pair_mass = np.select(
        [pair_kind == PAIR_Z, pair_kind == PAIR_OS_CONTINUUM, pair_kind == PAIR_OS_RESONANCE],
        [m_z, m_cont, m_res],
        m_ss,
    )
    pt = sample_power_pt(u(_S_PAIR_PT), 4.0, 1.8, 200.0)
    y = _truncated_normal(key, ev_id, _S_PAIR_Y, 1.8, 2.5)
    parent = p4_from_pt_y_phi_m(pt, y, np.pi * (2 * u(_S_PAIR_PHI) - 1), pair_mass)
    d1, d2 = two_body_decay(
        parent, lep_mass, lep_mass, 2 * u(_S_DECAY_COS) - 1, 2 * np.pi * u(_S_DECAY_PHI)
    )
    # Opposite charge: (l-, l+) = (+pdg, -pdg). Same charge: both l- or both l+.
    ss_sign = np.where(u(_S_SS_SIGN) < 0.5, 1, -1)
    pdg1 = np.where(pair_kind == PAIR_SAME_SIGN, ss_sign * flavour, flavour)
    pdg2 = np.where(pair_kind == PAIR_SAME_SIGN, ss_sign * flavour, -flavour)
    pair_pdg = np.where(
        (pair_kind != PAIR_NONE)[:, None], np.stack([pdg1, pdg2], axis=1), 0
    ).astype(np.int32)
    return {
        "kind": pair_kind,
        "flavour": flavour,
        "lepton_mass": lep_mass,
        "mass": pair_mass,
        "d1": d1,
        "d2": d2,
        "pdg": pair_pdg,
    }


def _soft_particles(
    key: int, pev: np.ndarray, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Momentum ``[N, 3]``, PDG id and mass of soft particles (underlying event and pileup),
    drawn for every particle slot (the leptons' slots are overwritten by the caller)."""
    soft_pt = _SOFT_PT(uniform(key, pev, _S_SOFT_PT, local))
    eta = _SOFT_ETA_MAX * (2 * uniform(key, pev, _S_SOFT_ETA, local) - 1)
    phi = np.pi * (2 * uniform(key, pev, _S_SOFT_PHI, local) - 1)
    species = np.searchsorted(_SPECIES_CUMFRAC, uniform(key, pev, _S_SOFT_SPECIES, local))
    species = np.minimum(species, len(_SPECIES_PDG) - 1)
    sign = np.where(uniform(key, pev, _S_SOFT_SIGN, local) < 0.5, 1, -1)
    # the PDG id's sign chosen so that the charge is ``sign`` (e-, mu- have positive ids)
    pdg = (sign * _SPECIES_CHARGE[species]).astype(np.int64) * _SPECIES_PDG[species]
    p3 = np.stack([soft_pt * np.cos(phi), soft_pt * np.sin(phi), soft_pt * np.sinh(eta)], axis=1)
    return p3, pdg, _SPECIES_MASS[species]


# ----------------------------------------------------------------------------- pythia8 events
@dataclass
class _PythiaSource:
    hard: HardScatter
    pool: PythiaParticles | None  # None without pileup


def _pythia_processes(cfg: _Config, ev_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``_PYTHIA_PROCESSES`` and lepton flavour (0: Pythia's) of each event."""

    def u(stream: int) -> np.ndarray:
        return uniform(cfg.key, ev_id, stream)

    is_signal = u(_S_SIGNAL) < cfg.signal_fraction
    has_pair = ~is_signal & (u(_S_BKG_PAIR) < _BKG_PAIR_FRACTION)
    cum = np.cumsum([f for *_, f in _PYTHIA_PAIRS])
    pair_proc = 1 + np.minimum(np.searchsorted(cum, u(_S_BKG_KIND)), len(cum) - 1)
    proc = np.where(is_signal, 0, np.where(has_pair, pair_proc, len(_PYTHIA_PROCESSES) - 1))
    flavour = np.where(u(_S_FLAVOUR) < cfg.muon_fraction, 13, 11)
    no_flavour = np.array([name in _PYTHIA_NO_FLAVOUR for name, _ in _PYTHIA_PROCESSES])
    return proc, np.where(no_flavour[proc], 0, flavour)


def _pythia_hard(hard: HardScatter, proc: np.ndarray, flavour: np.ndarray) -> PythiaParticles:
    """Hard-scatter particles in event order: each (process, flavour) Pythia instance gives its
    next events to the chunk's events of that kind, in ``event_id`` order."""
    n = len(proc)
    groups = []
    for p, f in sorted(set(zip(proc.tolist(), flavour.tolist(), strict=True))):
        idx = np.flatnonzero((proc == p) & (flavour == f))
        groups.append((idx, hard.events(_PYTHIA_PROCESSES[p][0], f, len(idx))))
    ev_of = np.concatenate([np.repeat(idx, g.counts) for idx, g in groups])
    order = np.argsort(ev_of, kind="stable")

    def flat(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for _, g in groups])[order]

    def per_event(name: str, fill: Any) -> np.ndarray:
        first = getattr(groups[0][1], name)
        out = np.full((n, *first.shape[1:]), fill, dtype=first.dtype)
        for idx, g in groups:
            out[idx] = getattr(g, name)
        return out

    return PythiaParticles(
        counts=np.bincount(ev_of, minlength=n),
        pdg=flat("pdg"),
        q=flat("q"),
        m=flat("m"),
        p3=flat("p3"),
        x4=flat("x4"),
        record_index=flat("record_index"),
        pair_found=per_event("pair_found", False),
        pair_pdg=per_event("pair_pdg", 0),
        pair_mass=per_event("pair_mass", np.nan),
    )


def _overlay(
    cfg: _Config, ev_id: np.ndarray, pu: _Vertices, pool: PythiaParticles
) -> dict[str, np.ndarray]:
    """Pileup particles: every pileup vertex gets a pool event (drawn with replacement),
    rotated by a random azimuth and, half of the time, by pi about the x axis."""
    key, evv, k = cfg.key, ev_id[pu.ev], pu.k
    n_pool = len(pool.counts)
    pick = np.minimum((uniform(key, evv, _S_POOL_PICK, k) * n_pool).astype(np.int64), n_pool - 1)
    phi = 2.0 * np.pi * uniform(key, evv, _S_POOL_ROT, k)
    flip = np.where(uniform(key, evv, _S_POOL_FLIP, k) < 0.5, -1.0, 1.0)
    mult = pool.counts[pick]
    row = np.repeat(np.arange(len(pick)), mult)  # the pileup vertex of each particle
    j = np.arange(len(row)) - np.repeat(np.cumsum(mult) - mult, mult)
    src = pool.offsets[:-1][pick][row] + j
    c, s, f = np.cos(phi)[row], np.sin(phi)[row], flip[row]

    def rotate(a: np.ndarray) -> np.ndarray:
        x, y, z = a[:, 0], f * a[:, 1], f * a[:, 2]
        return np.stack([c * x - s * y, s * x + c * y, z], axis=1)

    x4 = pool.x4[src]
    return {
        "ev": pu.ev[row],
        "pdg": pool.pdg[src],
        "q": pool.q[src],
        "m": pool.m[src],
        "p3": rotate(pool.p3[src]),
        "v4": pu.v4[row] + np.concatenate([rotate(x4[:, :3]), x4[:, 3:]], axis=1),
        "vertex_primary": (2 + k[row]).astype(np.uint32),
        "particle": (j + 1).astype(np.uint32),
    }


def _generate_pythia(cfg: _Config, src: _PythiaSource, first: int, n: int) -> _Generated:
    """Events ``first .. first + n - 1`` from Pythia: the hard scatter at vertex 1 (its lepton
    pair as particles 1 and 2), then the pileup vertices."""
    ev_id = np.arange(first, first + n, dtype=np.uint64)
    proc, flavour = _pythia_processes(cfg, ev_id)
    hard = _pythia_hard(src.hard, proc, flavour)
    vtx = _hard_vertex(cfg, ev_id)
    h_ev = np.repeat(np.arange(n), hard.counts)
    parts = {
        "ev": h_ev,
        "pdg": hard.pdg,
        "q": hard.q,
        "m": hard.m,
        "p3": hard.p3,
        "v4": vtx[h_ev] + hard.x4,
        "vertex_primary": np.ones(len(h_ev), np.uint32),
        "particle": (np.arange(len(h_ev)) - hard.offsets[h_ev] + 1).astype(np.uint32),
    }
    if src.pool is not None:
        pu = _overlay(cfg, ev_id, _pileup_vertices(cfg, ev_id), src.pool)
        order = np.argsort(np.concatenate([h_ev, pu["ev"]]), kind="stable")
        parts = {k: np.concatenate([v, pu[k]])[order] for k, v in parts.items()}
    counts = np.bincount(parts["ev"], minlength=n)
    found = hard.pair_found
    kind = np.array([k for _, k in _PYTHIA_PROCESSES], np.int8)[proc]
    return _Generated(
        event_id=ev_id,
        counts=counts,
        ev=parts["ev"],
        local=np.arange(len(parts["ev"])) - np.repeat(np.cumsum(counts) - counts, counts),
        pdg=parts["pdg"].astype(np.int32),
        q=parts["q"].astype(np.float64),
        m=parts["m"].astype(np.float64),
        v4=parts["v4"],
        p3=parts["p3"],
        vertex_primary=parts["vertex_primary"],
        particle=parts["particle"],
        pair_kind=np.where(found, kind, PAIR_NONE).astype(np.int8),
        pair_flavour=np.where(found, np.abs(hard.pair_pdg[:, 0]), 0).astype(np.int32),
        pair_mass=np.where(found, hard.pair_mass, np.nan),
        pair_pdg=hard.pair_pdg.astype(np.int32),
        vertex_z=vtx[:, 2],
    )


def _event_source(cfg: _Config) -> tuple[Callable[[int, int], _Generated], float]:
    """The chunk generator of ``cfg.generator`` and its mean particles per event."""
    if cfg.generator == "fast":
        return partial(_generate, cfg), 2 + _UE_MEAN + cfg.pileup * _PU_PER_VERTEX
    pool = None
    if cfg.pileup > 0:
        pool = minbias_pool(cfg.pool_size, cfg.key, progress=cfg.progress)
    src = _PythiaSource(hard=HardScatter(cfg.key), pool=pool)
    per_event = _PYTHIA_HARD_PARTICLES + (0.0 if pool is None else cfg.pileup * pool.counts.mean())
    return partial(_generate_pythia, cfg, src), float(per_event)


# ----------------------------------------------------------------------------- propagation
@numba.njit(cache=True)
def _bethe_gev_per_mm(p: float, m: float, q: float) -> float:  # pragma: no cover - compiled
    """Mean ionisation loss in silicon (GeV/mm), Bethe formula with a high-energy density term."""
    me = 0.51099895e-3
    bg2 = (p / m) ** 2
    gam = math.sqrt(1.0 + bg2)
    b2 = bg2 / (1.0 + bg2)
    r = me / m
    tmax = 2.0 * me * bg2 / (1.0 + 2.0 * gam * r + r * r)
    i_exc = 173.0e-9  # GeV
    # Sternheimer high-energy limit 2 ln(bg) + 2 ln(hbar w_p / I) - 1, hbar w_p = 31.05 eV (Si).
    delta = max(0.0, math.log(bg2) - 4.436)
    k_za_rho = 0.307075 * 0.49848 * 2.329  # MeV/cm
    log_term = 0.5 * math.log(2.0 * me * bg2 * tmax / (i_exc * i_exc))
    dedx = k_za_rho * q * q / b2 * (log_term - b2 - 0.5 * delta)
    return max(dedx, 0.0) * 1.0e-4  # MeV/cm -> GeV/mm


@numba.njit(cache=True)
def _normal_draw(key: np.uint64, ctr: np.uint64) -> float:  # pragma: no cover - compiled
    u1 = uniform_scalar(key, ctr)
    u2 = uniform_scalar(key, ctr + np.uint64(1))
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(cache=True)
def _gamma_draw(
    key: np.uint64, ctr: np.uint64, a: float
) -> tuple[float, np.uint64]:  # pragma: no cover
    """Gamma(a, 1) deviate (Marsaglia-Tsang on a + 1, times U**(1/a)); returns (value, counter)."""
    d = a + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    g = d
    for _ in range(64):
        z = _normal_draw(key, ctr)
        ctr += np.uint64(2)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        uu = uniform_scalar(key, ctr)
        ctr += np.uint64(1)
        if math.log(uu) < 0.5 * z * z + d - d * v + d * math.log(v):
            g = d * v
            break
    uu = uniform_scalar(key, ctr)
    ctr += np.uint64(1)
    return g * uu ** (1.0 / a), ctr


@numba.njit(cache=True)
def _propagate(
    start,
    v4,
    p3,
    mass,
    charge,
    electron,
    keys,
    bfield,
    s_kind,
    s_pos,
    s_lo,
    s_hi,
    s_x0,
    s_sens,
    efficiency,
    max_hits,
    h_part,
    h_surf,
    h_index,
    h_pos,
    h_p4,
    h_dp4,
    p_nhits,
    p_eloss,
    p_x0,
    p_outcome,
):  # pragma: no cover - compiled
    """Propagate particles ``start..`` until done or the hit buffers are nearly full.

    Returns ``(next_particle, n_hits_written)``. Hit buffers have a first dimension ``cap``;
    a particle is only started when ``max_hits`` rows are free, so no particle is split.
    """
    two_pi = 2.0 * math.pi
    cap = h_part.shape[0]
    n = v4.shape[0]
    n_surf = s_kind.shape[0]
    nh = 0
    i = start
    while i < n and nh + max_hits <= cap:
        x, y, z, ct = v4[i, 0], v4[i, 1], v4[i, 2], v4[i, 3]
        px, py, pz = p3[i, 0], p3[i, 1], p3[i, 2]
        m = mass[i]
        q = charge[i]
        key = keys[i]
        ctr = np.uint64(0)
        helix = bfield > 0.0 and q != 0.0
        nhit = 0
        eloss = 0.0
        tx0 = 0.0
        outcome = 3  # ACTS KilledTime: stopped by the step limit (overwritten below)
        cur = -1
        for step in range(_MAX_STEPS):
            pt = math.sqrt(px * px + py * py)
            p = math.sqrt(pt * pt + pz * pz)
            if pt < 1e-9:
                outcome = 2
                break
            e = math.sqrt(p * p + m * m)
            ux = px / pt
            uy = py / pt
            tan_l = pz / pt  # dz / d(transverse path)
            radius = 0.0
            h = 0.0
            cx = 0.0
            cy = 0.0
            a0 = 0.0
            dc = 0.0
            budget = math.inf
            if helix:
                # Positive charges turn clockwise seen from +z for B along +z (F = q v x B).
                radius = pt / (0.3 * bfield * abs(q)) * 1000.0  # mm
                h = -1.0 if q > 0 else 1.0
                cx = x - radius * h * uy
                cy = y + radius * h * ux
                a0 = math.atan2(y - cy, x - cx)
                if step > 0 and x * px + y * py < 0.0:
                    outcome = 3  # looper turning back towards the beam line
                    break
                dc = math.hypot(cx, cy)
                # Transverse path to the point of the circle farthest from the beam line.
                if dc > 1e-12:
                    phit = (h * (math.atan2(cy, cx) - a0)) % two_pi
                else:
                    phit = math.pi
                budget = radius * phit
            r_now = math.hypot(x, y)
            best = math.inf
            kbest = -1
            beyond = False
            for k in range(n_surf):
                if k == cur:
                    continue
                if s_kind[k] == 0:  # cylinder
                    rc = s_pos[k]
                    if rc <= r_now:
                        continue  # inner cylinders are only met after turning back
                    if helix:
                        if dc > radius + rc or dc < abs(radius - rc) or dc < 1e-12:
                            continue
                        cosb = (radius * radius + dc * dc - rc * rc) / (2.0 * radius * dc)
                        cosb = min(1.0, max(-1.0, cosb))
                        b = math.acos(cosb)
                        base = math.atan2(-cy, -cx)
                        for sgn in (-1.0, 1.0):
                            s = radius * ((h * (base + sgn * b - a0)) % two_pi)
                            if s <= 1e-9 or s >= best:
                                continue
                            zz = z + s * tan_l
                            if zz < s_lo[k] or zz > s_hi[k]:
                                continue
                            if s > budget:
                                beyond = True
                                continue
                            best = s
                            kbest = k
                    else:
                        bb = x * ux + y * uy
                        disc = bb * bb - (x * x + y * y - rc * rc)
                        if disc < 0.0:
                            continue
                        s = -bb + math.sqrt(disc)
                        if s <= 1e-9 or s >= best:
                            continue
                        zz = z + s * tan_l
                        if zz < s_lo[k] or zz > s_hi[k]:
                            continue
                        best = s
                        kbest = k
                else:  # disk
                    if pz == 0.0:
                        continue
                    s = (s_pos[k] - z) / tan_l
                    if s <= 1e-9 or s >= best:
                        continue
                    if helix:
                        a = a0 + h * s / radius
                        xx = cx + radius * math.cos(a)
                        yy = cy + radius * math.sin(a)
                    else:
                        xx = x + s * ux
                        yy = y + s * uy
                    rr = math.hypot(xx, yy)
                    if rr < s_lo[k] or rr > s_hi[k]:
                        continue
                    if s > budget:
                        beyond = True
                        continue
                    best = s
                    kbest = k
            if kbest < 0:
                outcome = 3 if beyond else 2  # looper stopped / left the detector
                break
            # --- transport to the surface (field only)
            s = best
            if helix:
                dphi = h * s / radius
                a = a0 + dphi
                x = cx + radius * math.cos(a)
                y = cy + radius * math.sin(a)
                cd = math.cos(dphi)
                sd = math.sin(dphi)
                px, py = px * cd - py * sd, px * sd + py * cd
            else:
                x += s * ux
                y += s * uy
            z += s * tan_l
            ct += s * e / pt  # c t advances by path / beta = (s p / pt) (e / p)
            cur = kbest
            # --- material interaction at the surface
            if s_kind[kbest] == CYLINDER:
                cos_inc = abs(x * px + y * py) / (math.hypot(x, y) * p)
            else:
                cos_inc = abs(pz) / p
            xeff = s_x0[kbest] / max(cos_inc, 0.1)
            beta = p / e
            theta0 = (
                0.0136 / (beta * p) * abs(q) * math.sqrt(xeff)
                * (1.0 + 0.038 * math.log(xeff * q * q / (beta * beta)))
            )  # fmt: skip
            theta0 = max(theta0, 0.0)
            g1 = _normal_draw(key, ctr)
            g2 = _normal_draw(key, ctr + np.uint64(2))
            ctr += np.uint64(4)
            dx, dy, dz = px / p, py / p, pz / p
            nrm = math.hypot(dx, dy)
            if nrm > 1e-12:
                e1x, e1y, e1z = -dy / nrm, dx / nrm, 0.0
            else:
                e1x, e1y, e1z = 1.0, 0.0, 0.0
            e2x = dy * e1z - dz * e1y
            e2y = dz * e1x - dx * e1z
            e2z = dx * e1y - dy * e1x
            t1 = math.tan(min(1.2, max(-1.2, theta0 * g1)))
            t2 = math.tan(min(1.2, max(-1.2, theta0 * g2)))
            ndx = dx + t1 * e1x + t2 * e2x
            ndy = dy + t1 * e1y + t2 * e2y
            ndz = dz + t1 * e1z + t2 * e2z
            nn = math.sqrt(ndx * ndx + ndy * ndy + ndz * ndz)
            # Ionisation: Bethe mean plus a Landau-like (Moyal) fluctuation of width xi around
            # it; Moyal lambda = -2 ln|z| for z ~ N(0, 1) has mean gamma_E + ln 2 = 1.2704.
            thick = xeff * X0_SILICON_MM
            xi = 1.7826e-5 * q * q * thick / (beta * beta)  # (K/2)(Z/A) rho x / beta^2, GeV
            lam = min(-2.0 * math.log(abs(_normal_draw(key, ctr)) + 1e-300), 40.0)
            ctr += np.uint64(2)
            de_ion = max(_bethe_gev_per_mm(p, m, q) * thick + xi * (lam - 1.2704), 0.0)
            e_new = e - de_ion
            if electron[i]:
                # Bethe-Heitler: E'/E = exp(-g), g ~ Gamma(t / ln 2) for t radiation lengths.
                g, ctr = _gamma_draw(key, ctr, xeff / math.log(2.0))
                e_new *= math.exp(-g)
            stopped = e_new <= m + 1e-4
            if stopped:
                e_new = m
            p_new = math.sqrt(max(e_new * e_new - m * m, 0.0))
            npx = p_new * ndx / nn
            npy = p_new * ndy / nn
            npz = p_new * ndz / nn
            u_eff = uniform_scalar(key, ctr)
            ctr += np.uint64(1)
            if s_sens[kbest] and u_eff < efficiency:
                h_part[nh] = i
                h_surf[nh] = kbest
                h_index[nh] = nhit
                h_pos[nh, 0] = x
                h_pos[nh, 1] = y
                h_pos[nh, 2] = z
                h_pos[nh, 3] = ct
                h_p4[nh, 0] = px
                h_p4[nh, 1] = py
                h_p4[nh, 2] = pz
                h_p4[nh, 3] = e
                h_dp4[nh, 0] = npx - px
                h_dp4[nh, 1] = npy - py
                h_dp4[nh, 2] = npz - pz
                h_dp4[nh, 3] = e_new - e
                nh += 1
                nhit += 1
            eloss += e - e_new
            tx0 += xeff
            px, py, pz = npx, npy, npz
            if stopped:
                outcome = 1  # ACTS KilledInteraction
                break
            if nhit >= max_hits:
                outcome = 3
                break
        p_nhits[i] = nhit
        p_eloss[i] = eloss
        p_x0[i] = tx0
        p_outcome[i] = outcome
        i += 1
    return i, nh


@dataclass
class _Propagated:
    # per hit (n_h,)
    part: np.ndarray
    surf: np.ndarray
    index: np.ndarray
    pos: np.ndarray  # (n_h, 4) float32
    p4: np.ndarray  # (n_h, 4) float32
    dp4: np.ndarray  # (n_h, 4) float32
    # per particle (n_p,)
    n_hits: np.ndarray
    e_loss: np.ndarray
    total_x0: np.ndarray
    outcome: np.ndarray


def _propagate_all(cfg: _Config, gen: _Generated) -> _Propagated:
    """Run the propagation kernel over all particles of a chunk with a bounded hit buffer."""
    surf = generic_detector()
    n_p = len(gen.pdg)
    keys = hash_u64(cfg.key, gen.event_id[gen.ev], _S_PROPAGATE, gen.local)
    electron = np.abs(gen.pdg) == 11
    # ~1.5x the mean need; when full, the kernel returns and resumes with a fresh buffer.
    cap = max(_HITS_PER_PARTICLE_BUFFER * n_p, 4 * MAX_HITS) + MAX_HITS
    p_nhits = np.zeros(n_p, np.int32)
    p_eloss = np.zeros(n_p, np.float64)
    p_x0 = np.zeros(n_p, np.float64)
    p_outcome = np.zeros(n_p, np.uint32)
    parts: list[tuple[np.ndarray, ...]] = []
    start = 0
    while start < n_p or not parts:
        bufs = (
            np.empty(cap, np.int64),
            np.empty(cap, np.int32),
            np.empty(cap, np.int32),
            np.empty((cap, 4), np.float32),
            np.empty((cap, 4), np.float32),
            np.empty((cap, 4), np.float32),
        )
        start, nh = _propagate(
            start,
            np.ascontiguousarray(gen.v4),
            np.ascontiguousarray(gen.p3),
            gen.m,
            gen.q,
            electron,
            keys,
            cfg.bfield,
            surf.kind,
            surf.pos,
            surf.lo,
            surf.hi,
            surf.x_x0,
            surf.sensitive,
            cfg.hit_efficiency,
            MAX_HITS,
            *bufs,
            p_nhits,
            p_eloss,
            p_x0,
            p_outcome,
        )
        parts.append(tuple(b[:nh] for b in bufs))
    cols = [np.concatenate(c) if len(parts) > 1 else c[0] for c in zip(*parts, strict=True)]
    return _Propagated(*cols, n_hits=p_nhits, e_loss=p_eloss, total_x0=p_x0, outcome=p_outcome)


# ----------------------------------------------------------------------------- output columns
_HIT_FLOATS = (
    "tx", "ty", "tz", "tt", "tpx", "tpy", "tpz", "te", "deltapx", "deltapy", "deltapz", "deltae",
)  # fmt: skip
_HIT_IDS = ("volume_id", "boundary_id", "layer_id", "approach_id", "sensitive_id")
_BARCODE = ("vertex_primary", "vertex_secondary", "particle", "generation", "sub_particle")
_PARTICLE_F32 = ("vx", "vy", "vz", "vt", "px", "py", "pz", "m", "q", "eta", "phi", "pt", "p")
_PARTICLE_EXTRA = (
    ("e_loss", np.float32),
    ("total_x0", np.float32),
    ("total_l0", np.float32),
    ("number_of_hits", np.uint32),
    ("outcome", np.uint32),
)


def _hit_types(schema: str) -> dict[str, Any]:
    """Branch types of the ``hits`` tree, in RootSimHitWriter order."""
    t: dict[str, Any] = {"event_id": np.uint32, "geometry_id": np.uint64}
    if schema == "v43":
        t["particle_id"] = np.uint64
    elif schema == "v44.0":
        t["barcode"] = "var * uint32"
    else:
        t.update({f"barcode_{c}": np.uint32 for c in _BARCODE})
    t.update(dict.fromkeys(_HIT_FLOATS, np.float32))
    t["index"] = np.int32
    t.update(dict.fromkeys(_HIT_IDS, np.uint32))
    return t


def _particle_fields(schema: str) -> dict[str, np.dtype]:
    """Per-particle fields of the ``particles`` tree (without ``event_id``), in writer order."""
    t: dict[str, Any] = {"particle_id" if schema == "v43" else "particle_hash": np.uint64}
    t["particle_type"] = np.int32
    t["process"] = np.uint32
    t.update(dict.fromkeys(_PARTICLE_F32, np.float32))
    t.update(dict.fromkeys(_BARCODE, np.uint32))
    t.update(dict(_PARTICLE_EXTRA))
    return {k: np.dtype(v) for k, v in t.items()}


def _particle_types(schema: str, layout: str) -> dict[str, Any]:
    f = _particle_fields(schema)
    if layout == "per_particle":
        return {"event_id": np.uint32, **f}
    record = ", ".join(f"{k}: {v.name}" for k, v in f.items())
    return {
        "event_id": np.uint32,
        "particles": ak.types.from_datashape(f"var * {{{record}}}", highlevel=False),
    }


def _rank(values: np.ndarray) -> np.ndarray:
    """Rank of each value (0 = smallest); ties broken by position."""
    r = np.empty(len(values), np.int64)
    r[np.argsort(values, kind="stable")] = np.arange(len(values))
    return r


def _hit_columns(
    cfg: _Config, gen: _Generated, prop: _Propagated
) -> tuple[dict[str, Any], np.ndarray]:
    """Hit branches of a chunk in the requested event order; also hit counts per event."""
    surf = generic_detector()
    part, s = prop.part, prop.surf
    ev = gen.ev[part]
    sensitive = module_index(s, prop.pos[:, 0], prop.pos[:, 1], prop.pos[:, 2])
    geo = encode_geometry_id(surf.volume_id[s], surf.layer_id[s], sensitive)
    n_ev = len(gen.event_id)

    # ACTS keeps an event's hits in a container ordered by geometry id (ties: simulation order).
    order = np.lexsort((np.arange(len(part)), geo, ev))
    if cfg.event_order == "shuffled":
        ev_rank = _rank(uniform(cfg.key, gen.event_id, _S_ORDER_HITS))
        order = order[np.argsort(ev_rank[ev[order]], kind="stable")]
    elif cfg.event_order == "interleaved":
        ev_sorted = ev[order]
        starts = np.searchsorted(ev_sorted, np.arange(n_ev))
        ordinal = np.arange(len(order)) - starts[ev_sorted]
        mix_key = hash_u64(cfg.key, gen.event_id[ev_sorted], _S_ORDER_HIT_MIX, ordinal)
        order = order[np.argsort(mix_key, kind="stable")]

    part, s, ev, geo, sensitive = part[order], s[order], ev[order], geo[order], sensitive[order]
    pos, p4, dp4 = prop.pos[order], prop.p4[order], prop.dp4[order]
    cols: dict[str, Any] = {
        "event_id": gen.event_id[ev].astype(np.uint32),
        "geometry_id": geo,
    }
    vp = gen.vertex_primary[part]
    comp = {
        "vertex_primary": vp,
        "vertex_secondary": np.zeros_like(vp),
        "particle": gen.particle[part],
        "generation": np.zeros_like(vp),
        "sub_particle": np.zeros_like(vp),
    }
    if cfg.schema == "v43":
        cols["particle_id"] = pack_barcode(*comp.values())
    elif cfg.schema == "v44.0":
        stacked = np.stack(list(comp.values()), axis=1).astype(np.uint32)
        cols["barcode"] = ak.unflatten(stacked.ravel(), np.full(len(stacked), 5))
    else:
        cols.update({f"barcode_{k}": v.astype(np.uint32) for k, v in comp.items()})
    for j, name in enumerate(_HIT_FLOATS[:4]):
        cols[name] = np.ascontiguousarray(pos[:, j])
    for j, name in enumerate(_HIT_FLOATS[4:8]):
        cols[name] = np.ascontiguousarray(p4[:, j])
    for j, name in enumerate(_HIT_FLOATS[8:]):
        cols[name] = np.ascontiguousarray(dp4[:, j])
    cols["index"] = prop.index[order].astype(np.int32)
    zeros = np.zeros(len(s), np.uint32)
    cols["volume_id"] = surf.volume_id[s]
    cols["boundary_id"] = zeros
    cols["layer_id"] = surf.layer_id[s]
    cols["approach_id"] = zeros
    cols["sensitive_id"] = sensitive
    return cols, np.bincount(ev, minlength=n_ev)


def _particle_columns(cfg: _Config, gen: _Generated, prop: _Propagated) -> dict[str, Any]:
    """Particle branches of a chunk, per event (jagged) or per particle, in the event order."""
    px, py, pz = gen.p3[:, 0], gen.p3[:, 1], gen.p3[:, 2]
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    vp = gen.vertex_primary
    zeros = np.zeros_like(vp)
    packed = pack_barcode(vp, zeros, gen.particle, zeros, zeros)
    f32 = {
        "vx": gen.v4[:, 0],
        "vy": gen.v4[:, 1],
        "vz": gen.v4[:, 2],
        "vt": gen.v4[:, 3],
        "px": px,
        "py": py,
        "pz": pz,
        "m": gen.m,
        "q": gen.q,
        "eta": np.arcsinh(pz / pt),
        "phi": np.arctan2(py, px),
        "pt": pt,
        "p": p,
    }
    values: dict[str, np.ndarray] = {
        # v44 identifies particles by a hash of the barcode; any well-mixed 64-bit hash will do.
        ("particle_id" if cfg.schema == "v43" else "particle_hash"): (
            packed if cfg.schema == "v43" else mix64(packed ^ np.uint64(0xAC75))
        ),
        "particle_type": gen.pdg,
        "process": zeros,
        **f32,
        "vertex_primary": vp,
        "vertex_secondary": zeros,
        "particle": gen.particle,
        "generation": zeros,
        "sub_particle": zeros,
        "e_loss": prop.e_loss,
        "total_x0": prop.total_x0,
        "total_l0": prop.total_x0 * (X0_SILICON_MM / L0_SILICON_MM),
        "number_of_hits": prop.n_hits,
        "outcome": prop.outcome,
    }
    dtypes = _particle_fields(cfg.schema)
    values = {k: np.asarray(values[k]).astype(dtypes[k]) for k in dtypes}

    n_ev = len(gen.event_id)
    ev_order = np.arange(n_ev)
    if cfg.event_order != "sorted":
        ev_order = np.argsort(uniform(cfg.key, gen.event_id, _S_ORDER_PARTICLES), kind="stable")
    ev_rank = np.empty(n_ev, np.int64)
    ev_rank[ev_order] = np.arange(n_ev)
    if cfg.particles_layout == "per_particle" and cfg.event_order == "interleaved":
        mix = hash_u64(cfg.key, gen.event_id[gen.ev], _S_ORDER_PARTICLE_MIX, gen.local)
        porder = np.argsort(mix, kind="stable")
    else:
        porder = np.argsort(ev_rank[gen.ev], kind="stable")
    values = {k: v[porder] for k, v in values.items()}
    event_id = gen.event_id.astype(np.uint32)
    if cfg.particles_layout == "per_particle":
        return {"event_id": event_id[gen.ev[porder]], **values}
    record = ak.zip(values)
    return {
        "event_id": event_id[ev_order],
        "particles": ak.unflatten(record, gen.counts[ev_order]),
    }


def _truth(gen: _Generated, prop: _Propagated, n_hits_ev: np.ndarray) -> ActsTrackTruth:
    n_ev = len(gen.event_id)
    has_pair = gen.pair_kind != PAIR_NONE
    is_signal = gen.pair_kind == PAIR_Z
    first = np.concatenate([[0], np.cumsum(gen.counts)[:-1]])
    pair_barcode = np.zeros((n_ev, 2), np.uint64)
    pair_barcode[has_pair] = pack_barcode(1, 0, np.array([[1, 2]]), 0, 0)
    pair_hits = np.zeros((n_ev, 2), np.int32)
    idx = np.flatnonzero(has_pair)
    pair_hits[idx, 0] = prop.n_hits[first[idx]]
    pair_hits[idx, 1] = prop.n_hits[first[idx] + 1]
    # Mass from the written (generator) momenta: equals the generated mass up to rounding.
    z_mass = np.where(is_signal, gen.pair_mass, np.nan)
    return ActsTrackTruth(
        event_id=gen.event_id.astype(np.uint32),
        is_signal=is_signal,
        z_flavour=np.where(is_signal, gen.pair_flavour, 0).astype(np.int32),
        z_mass=z_mass,
        z_in_window=is_signal & (np.abs(np.nan_to_num(z_mass) - Z_LABEL_MASS) < Z_WINDOW),
        lepton_barcode=np.where(is_signal[:, None], pair_barcode, np.uint64(0)),
        pair_kind=gen.pair_kind,
        pair_mass=gen.pair_mass,
        pair_barcode=pair_barcode,
        pair_pdg=gen.pair_pdg,
        pair_n_hits=pair_hits,
        n_particles=gen.counts.astype(np.int32),
        n_hits=n_hits_ev.astype(np.int64),
        n_signal_hits=np.where(is_signal, pair_hits.sum(axis=1), 0).astype(np.int64),
        vertex_z=gen.vertex_z,
    )


# ----------------------------------------------------------------------------- public API
def simulate_actstrack(
    out_dir: str | os.PathLike,
    *,
    events: int,
    bfield: float = 2.0,
    seed: int = 0,
    signal_fraction: float = 0.5,
    pileup: float | None = None,
    schema: str = "v43",
    particles_layout: str = "per_event",
    event_order: str = "shuffled",
    chunk_size: int = 1000,
    compression: uproot.compression.Compression | str | None = "zlib:1",
    muon_fraction: float = 0.5,
    hit_efficiency: float = 0.98,
    generator: str = "fast",
    pool_size: int = 2000,
    progress: bool | None = None,
    pileup_mean: float | None = None,
    overwrite: bool = False,
) -> ActsTrackTruth:
    """Simulate ActsTrack-like events and write ``hits.root`` and ``particles.root``.

    Parameters
    ----------
    out_dir : path
        Output directory (created if missing). ``out_dir/hits.root`` (tree ``hits``, one entry
        per hit) and ``out_dir/particles.root`` (tree ``particles``) are each written atomically;
        files already there are refused unless ``overwrite``.
    events : int
        Number of events, ``event_id = 0 .. events - 1``.
    bfield : float
        Solenoid field along +z in tesla (``>= 0``; 0 gives straight tracks).
    seed : int
        Non-negative seed; the same arguments give identical arrays.
    signal_fraction : float
        Probability of a ``Z -> l+ l-`` event (``pythia8``: Z/gamma* at 60-120 GeV).
    pileup : float
        Mean pileup interactions per crossing (Poisson, 0 .. 700; default 5), each at its own
        vertex: ~5 charged particles (fast) or a Pythia minimum-bias event (pythia8). HL-LHC: 200.
    schema : {"v43", "v44.0", "v44.3"}
        ACTS output version: packed uint64 ``particle_id``; ``barcode`` vector per hit and
        ``particle_hash``; five ``barcode_*`` uint32 hit branches and ``particle_hash``.
    particles_layout : {"per_event", "per_particle"}
        One ``particles`` entry per event with vector branches (ACTS >= 8.3) or one per particle.
    event_order : {"sorted", "shuffled", "interleaved"}
        ``sorted``: events in increasing ``event_id``. ``shuffled``: each event is a contiguous
        block but the blocks of a chunk are permuted (independently in both files), like
        multi-threaded ACTS. ``interleaved``: the hits (and per-particle entries) of a chunk are
        mixed across events. Within an event, hits are ordered by ``geometry_id`` as in ACTS,
        except in ``interleaved``.
    chunk_size : int
        Most events generated and written per step (fewer beyond ~250k particles): memory.
    compression : uproot Compression, ``"ALGO[:LEVEL]"`` (zlib, lzma, lz4, zstd, none) or None
    muon_fraction : float
        Fraction of Z (and background pair) decays to muons; the rest go to electrons.
    hit_efficiency : float
        Probability in (0, 1] that a crossing of a sensitive layer records a hit.
    generator : {"fast", "pythia8"}
        Hand-written spectra or Pythia 8 (``pip install 'hepx[pythia]'``); same file layout.
    pool_size : int
        ``pythia8``: minimum-bias events generated once, from which pileup is drawn.
    progress : bool or None
        Progress bars (``None``: on a terminal or in a notebook).
    pileup_mean : float, deprecated
        Former fast-generator option (pileup charged particles): ``pileup = pileup_mean / 5``.

    Returns
    -------
    ActsTrackTruth
        Generator truth per event in ``event_id`` order. Raises :class:`~hepx.errors.ConfigError`
        on an argument of the wrong type or out of range, or for ``pythia8`` without Pythia.

    Example
    -------
    >>> truth = simulate_actstrack("sim/acts", events=100, seed=1)   # doctest: +SKIP
    >>> truth = simulate_actstrack("py", events=9, generator="pythia8")  # doctest: +SKIP
    """
    cfg = _validate(**{k: v for k, v in locals().items() if k not in ("out_dir", "overwrite")})
    return _write_new(cfg, Path(out_dir), overwrite=overwrite)


def _write_new(cfg: _Config, out: Path, *, overwrite: bool) -> ActsTrackTruth:
    """:func:`_write` into ``out``, refusing files already there unless ``overwrite``."""
    check_creatable(out)
    check_files_free([out / "hits.root", out / "particles.root"], overwrite=overwrite)
    with output_dir(out):
        return _write(cfg, out)


def _write(cfg: _Config, out: Path) -> ActsTrackTruth:
    """Generate, propagate and write the events chunk by chunk into ``out``'s two files."""
    generate, per_event = _event_source(cfg)
    # events per chunk: at most chunk_size and about _MAX_CHUNK_PARTICLES particles (memory)
    step = max(1, min(cfg.chunk_size, int(_MAX_CHUNK_PARTICLES // max(per_event, 1.0))))
    truths: list[ActsTrackTruth] = []
    with (
        progress_bar(
            total=cfg.events, progress=cfg.progress, desc="actstrack", unit="event"
        ) as bar,
        atomic_file(out / "hits.root") as hits_tmp,
        atomic_file(out / "particles.root") as parts_tmp,
        uproot.recreate(hits_tmp, compression=cfg.compression) as hits_file,
        uproot.recreate(parts_tmp, compression=cfg.compression) as parts_file,
    ):
        counter = {"counter_name": lambda name: f"n_{name}"}
        hits_tree = hits_file.mktree("hits", _hit_types(cfg.schema), **counter)
        parts_tree = parts_file.mktree(
            "particles",
            _particle_types(cfg.schema, cfg.particles_layout),
            field_name=lambda _outer, inner: inner,
            **counter,
        )
        for first in range(0, cfg.events, step):
            n = min(step, cfg.events - first)
            gen = generate(first, n)
            prop = _propagate_all(cfg, gen)
            hit_cols, n_hits_ev = _hit_columns(cfg, gen, prop)
            if len(hit_cols["event_id"]):
                hits_tree.extend(hit_cols)
            part_cols = _particle_columns(cfg, gen, prop)
            if len(part_cols["event_id"]):
                parts_tree.extend(part_cols)
            truths.append(_truth(gen, prop, n_hits_ev))
            bar.update(n)
    return ActsTrackTruth.concatenate(truths)
