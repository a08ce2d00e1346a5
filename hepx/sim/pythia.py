"""Pythia 8 events for ``hepx simulate actstrack --generator pythia8``.

The hard scatter of each event and a pool of minimum-bias events for the pileup come from
Pythia 8 (pp at 14 TeV, default Monash tune), through the ``pythia8mc`` bindings
(``pip install 'hepx[pythia]'``). This module only talks to Pythia: it runs the generators and
turns their event records into flat arrays of the final-state charged particles;
:mod:`hepx.sim.actstrack` chooses the process of each event, overlays the pileup and propagates
the particles through the detector. :mod:`hepx.sim.tau3mu_pythia` builds the Tau3Mu signal and
muon pool on :func:`make_pythia`, :func:`pythia_seed` and :data:`MINBIAS`.

Processes
---------
:data:`HARD_PROCESSES` lists the Pythia settings of each process; ``{f}`` is the lepton flavour
(11 or 13) of the processes that have one. Every (process, flavour) is its own Pythia instance,
created when first needed and seeded by :func:`pythia_seed` from the run's hashing key, so the
events of an instance follow each other in ``event_id`` order whatever the chunking.

* ``z``: ``WeakSingleBoson:ffbar2gmZ`` (gamma*/Z with interference), 60 < mHat < 120 GeV,
  Z/gamma* -> l+ l- (``23:onMode = off``, ``23:onIfMatch = f -f``).
* ``dy_low`` / ``dy_high``: the same process at 12-60 and 120-300 GeV (Drell-Yan continuum).
* ``jpsi`` / ``upsilon``: colour-singlet ``g g -> J/psi g`` and ``g g -> Upsilon(1S) g``
  (pTHat > 3 GeV), the onium forced to l+ l-.
* ``ttbar``: ``Top:gg2ttbar`` and ``Top:qqbar2ttbar``, both W forced to e nu or mu nu, so the
  pair (one lepton of each W) is opposite-charge but often of two flavours.
* ``qcd``: ``HardQCD:all`` with pTHat > 20 GeV: no lepton pair beyond heavy-flavour decays.

The pileup pool is ``SoftQCD:nonDiffractive``. Pythia decays every unstable particle (its
defaults: pi+-, K+-, K0L, mu and n are stable), the production vertex of decay products is kept
(``xProd``, ..., ``tProd``).

Particles
---------
Final-state (``status > 0``) charged particles with ``pT > PT_MIN``, ``|eta| < ETA_MAX`` and
a production point inside the detector envelope (``R_MAX``, ``Z_MAX``) are kept, and the
process's lepton pair always (``l-`` then ``l+``, first in the event): the final copies (after
QED radiation) of the e / mu daughters of the hard process's boson (Z/gamma*, J/psi, Upsilon or
the two W of the top quarks). Masses and charges are those of the ``particle`` package (PDG),
looked up once per PDG id (Pythia's mass for an id it does not know).
"""

from __future__ import annotations

import importlib
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import ConfigError
from hepx.progress import progress_bar
from hepx.sim.kinematics import hash_u64

__all__ = [
    "ETA_MAX",
    "E_CM",
    "HARD_PROCESSES",
    "MINBIAS",
    "PAIR_PARENT",
    "PT_MIN",
    "R_MAX",
    "Z_MAX",
    "HardScatter",
    "PythiaParticles",
    "concatenate",
    "event_particles",
    "load_pythia",
    "make_pythia",
    "minbias_pool",
    "minbias_records",
    "particle_names",
    "particle_properties",
    "pythia_seed",
]

log = logging.getLogger("hepx")

E_CM = 14000.0  # GeV
#: GeV. At 2 T a 0.1 GeV track curls with a radius of 167 mm, so it still crosses the four pixel
#: barrel layers (r = 32-172 mm) and can leave the three hits a track needs; softer particles
#: leave fewer hits, and there are many of them.
PT_MIN = 0.1
ETA_MAX = 4.0  # the generic detector's endcap disks reach |eta| ~ 3.8
#: mm: the generic detector's envelope (outermost barrel 1020 mm, disks to 1080 mm and 2950 mm).
#: Decay products made outside it (long-lived K0S, Lambda boosted along the beam) leave no hit.
R_MAX, Z_MAX = 1100.0, 3100.0

_Z_SETTINGS = ("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfMatch = {f} -{f}")
_ONIA_PT = "PhaseSpace:pTHatMin = 3."
HARD_PROCESSES: dict[str, tuple[str, ...]] = {
    "z": (*_Z_SETTINGS, "PhaseSpace:mHatMin = 60.", "PhaseSpace:mHatMax = 120."),
    "dy_low": (*_Z_SETTINGS, "PhaseSpace:mHatMin = 12.", "PhaseSpace:mHatMax = 60."),
    "dy_high": (*_Z_SETTINGS, "PhaseSpace:mHatMin = 120.", "PhaseSpace:mHatMax = 300."),
    "jpsi": (
        "Charmonium:gg2ccbar(3S1)[3S1(1)]g = on,off",
        _ONIA_PT,
        "443:onMode = off",
        "443:onIfMatch = {f} -{f}",
    ),
    "upsilon": (
        "Bottomonium:gg2bbbar(3S1)[3S1(1)]g = on,off,off",
        _ONIA_PT,
        "553:onMode = off",
        "553:onIfMatch = {f} -{f}",
    ),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 11 13"),
    "qcd": ("HardQCD:all = on", "PhaseSpace:pTHatMin = 20."),
}
#: PDG id of the particle whose leptonic decay gives the pair (0: no pair).
PAIR_PARENT = {"z": 23, "dy_low": 23, "dy_high": 23, "jpsi": 443, "upsilon": 553, "ttbar": 24}
PAIR_PARENT["qcd"] = 0
MINBIAS = ("SoftQCD:nonDiffractive = on",)
_COMMON = (f"Beams:eCM = {E_CM}", "Print:quiet = on", "Next:numberCount = 0")
_BATCH = 100  # events per nextBatch call of the pool
_MAX_TRIES = 10.0  # nextBatch gives up after this many attempts per requested event


def load_pythia() -> Any:
    """The Pythia 8 Python module (``pythia8mc``, else a ``pythia8`` built from source).

    Raises :class:`~hepx.errors.ConfigError` naming the install command when neither exists.

    Example
    -------
    >>> pythia = load_pythia().Pythia("", False)   # doctest: +SKIP
    """
    for name in ("pythia8mc", "pythia8"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError(
        "generator 'pythia8' needs Pythia 8's Python bindings (pythia8mc): "
        "pip install 'hepx[pythia]'"
    )


def pythia_seed(key: int, process: str, flavour: int = 0) -> int:
    """Pythia's ``Random:seed`` (1 .. 900,000,000) of one instance, from the run's hashing key.

    Example
    -------
    >>> 1 <= pythia_seed(12345, "z", 13) <= 900_000_000
    True
    """
    h = hash_u64(key, zlib.crc32(process.encode()), flavour)[0]
    return 1 + int(h % np.uint64(900_000_000))


def make_pythia(settings: tuple[str, ...], seed: int) -> Any:
    """An initialised Pythia instance (no banner): pp at :data:`E_CM`, ``settings``, and
    ``Random:seed = seed`` (1 .. 900,000,000, e.g. from :func:`pythia_seed`).

    Example
    -------
    >>> minbias = make_pythia(MINBIAS, pythia_seed(12345, "minbias"))   # doctest: +SKIP
    """
    pythia = load_pythia().Pythia("", False)
    for line in (*_COMMON, *settings, "Random:setSeed = on", f"Random:seed = {seed}"):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise with {settings}")
    return pythia


# ----------------------------------------------------------------------------- particle data
_PROPERTIES: dict[int, tuple[float, float]] = {}


def particle_properties(pdg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mass (GeV) and charge (e) of each PDG id, from the ``particle`` package (cached).

    An id the package does not know gets a NaN mass and the charge of its quark content.

    Example
    -------
    >>> m, q = particle_properties(np.array([211, -13]))
    >>> [round(x, 4) for x in m], list(q)
    ([0.1396, 0.1057], [1.0, 1.0])
    """
    from particle import Particle
    from particle.pdgid import charge

    uniq, inverse = np.unique(np.asarray(pdg, dtype=np.int64), return_inverse=True)
    for pid in map(int, uniq):
        if pid not in _PROPERTIES:
            try:
                p = Particle.from_pdgid(pid)
                mass = np.nan if p.mass is None else p.mass / 1000.0
                _PROPERTIES[pid] = (mass, float(p.charge or 0.0))
            except Exception:  # unknown to the package (not in the PDG tables)
                _PROPERTIES[pid] = (np.nan, float(charge(pid) or 0.0))
    table = np.array([_PROPERTIES[int(p)] for p in uniq], dtype=np.float64).reshape(-1, 2)
    return table[inverse.ravel(), 0], table[inverse.ravel(), 1]


def particle_names(pdg: np.ndarray) -> list[str]:
    """Names (``particle`` package) of the PDG ids, e.g. for a composition summary.

    Example
    -------
    >>> particle_names(np.array([211, -2212]))
    ['pi+', 'p~']
    """
    from particle import Particle

    names = []
    for pid in map(int, np.asarray(pdg)):
        try:
            names.append(Particle.from_pdgid(pid).name)
        except Exception:
            names.append(str(pid))
    return names


# ----------------------------------------------------------------------------- event records
@dataclass(frozen=True)
class PythiaParticles:
    """Kept particles of consecutive Pythia events, flat in event order.

    ``counts`` (n_ev,) particles per event; per particle ``pdg``, ``q`` (e), ``m`` (GeV),
    ``p3`` (n, 3) GeV, ``x4`` (n, 4) production point relative to the collision
    (x, y, z, c t in mm), ``record_index`` (position in Pythia's event record); per event
    ``pair_found``, ``pair_pdg`` (n_ev, 2) and ``pair_mass`` (GeV, NaN without a pair): the
    pair leptons, when found, are the event's first two particles (``l-``, ``l+``).
    """

    counts: np.ndarray
    pdg: np.ndarray
    q: np.ndarray
    m: np.ndarray
    p3: np.ndarray
    x4: np.ndarray
    record_index: np.ndarray
    pair_found: np.ndarray
    pair_pdg: np.ndarray
    pair_mass: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """Start of each event in the flat arrays, and the total at the end."""
        return np.concatenate([[0], np.cumsum(self.counts)])


def _flat_record(batch: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The fields hepx uses of a ``nextBatch`` record, flat, and the entries per event."""
    prt = batch["prt"]

    def flat(a: ak.Array) -> np.ndarray:
        return ak.to_numpy(ak.flatten(a, axis=1))

    rec = {
        "id": flat(prt["id"]).astype(np.int64),
        "status": flat(prt["status"]),
        "d1": flat(prt["daughter1"]),
        "d2": flat(prt["daughter2"]),
    }
    for axis in ("px", "py", "pz"):
        rec[axis] = flat(prt["p"][axis])
    rec["m"] = flat(prt["m"])
    vprod = prt["vProd"]
    for name, axis in zip(("x", "y", "z", "t"), ("px", "py", "pz", "e"), strict=True):
        rec[name] = flat(ak.fill_none(vprod[axis], 0.0))
    return rec, ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)


def _daughters(rec: dict[str, np.ndarray], row: int, start: int) -> list[int]:
    """Rows of the daughters of ``row`` (Pythia's daughter1/daughter2 conventions)."""
    d1, d2 = int(rec["d1"][row]), int(rec["d2"][row])
    if d1 <= 0:
        return []
    if d2 <= 0 or d2 == d1:
        return [start + d1]
    if d2 < d1:
        return [start + d1, start + d2]
    return list(range(start + d1, start + d2 + 1))


def _bottom_copy(rec: dict[str, np.ndarray], row: int, start: int) -> int:
    """Follow ``row`` down its chain of copies with the same id (``iBotCopyId``)."""
    for _ in range(1000):
        same = [d for d in _daughters(rec, row, start) if rec["id"][d] == rec["id"][row]]
        if len(same) != 1:
            break
        row = same[0]
    return row


def _pair_rows(rec: dict[str, np.ndarray], offsets: np.ndarray, parent: int) -> np.ndarray:
    """Rows ``(l-, l+)`` of each event's pair: the final copies of the e / mu daughters of the
    hard-process ``parent`` bosons (status 21-29); -1 where there is no such pair."""
    n_ev = len(offsets) - 1
    out = np.full((n_ev, 2), -1, dtype=np.int64)
    hard = (np.abs(rec["id"]) == parent) & (np.abs(rec["status"]) >= 21)
    hard &= np.abs(rec["status"]) <= 29
    rows = np.flatnonzero(hard)
    ev_of = np.searchsorted(offsets, rows, side="right") - 1
    for e in range(n_ev):
        start = int(offsets[e])
        bosons = {_bottom_copy(rec, int(r), start) for r in rows[ev_of == e]}
        leptons = [
            _bottom_copy(rec, d, start)
            for b in sorted(bosons)
            for d in _daughters(rec, b, start)
            if abs(rec["id"][d]) in (11, 13)
        ]
        ids = [int(rec["id"][r]) for r in leptons]
        final = all(rec["status"][r] > 0 for r in leptons)
        if len(leptons) == 2 and ids[0] * ids[1] < 0 and final:
            out[e] = sorted(leptons, key=lambda r: -rec["id"][r])  # l- has the positive id
    return out


def _pair_mass(p3: np.ndarray, m: np.ndarray) -> float:
    e = np.sqrt(np.sum(p3**2, axis=1) + m**2)
    tot = p3.sum(axis=0)
    return float(np.sqrt(max(e.sum() ** 2 - tot @ tot, 0.0)))


def event_particles(batch: ak.Array, parent: int = 0) -> PythiaParticles:
    """The kept particles of a ``nextBatch`` result (see the module docstring).

    Example
    -------
    >>> parts = event_particles(pythia.nextBatch(10), parent=23)   # doctest: +SKIP
    """
    rec, counts = _flat_record(batch)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n_ev = len(counts)
    pair = _pair_rows(rec, offsets, parent) if parent else np.full((n_ev, 2), -1, np.int64)
    ev = np.repeat(np.arange(n_ev), counts)
    final = np.flatnonzero(rec["status"] > 0)
    mass, charge = particle_properties(rec["id"][final])
    pt = np.hypot(rec["px"][final], rec["py"][final])
    eta = np.arcsinh(rec["pz"][final] / np.maximum(pt, 1e-12))
    inside = (np.hypot(rec["x"][final], rec["y"][final]) < R_MAX) & (
        np.abs(rec["z"][final]) < Z_MAX
    )
    accept = (charge != 0) & (pt > PT_MIN) & (np.abs(eta) < ETA_MAX) & inside
    rank = np.full(len(rec["id"]), 3, dtype=np.int64)
    rank[final[accept]] = 2
    found = pair[:, 0] >= 0
    rank[pair[found, 0]], rank[pair[found, 1]] = 0, 1
    rows = np.flatnonzero(rank < 3)
    rows = rows[np.lexsort((rows, rank[rows], ev[rows]))]
    m_all = np.full(len(rec["id"]), np.nan)
    q_all = np.zeros(len(rec["id"]))
    m_all[final], q_all[final] = np.where(np.isnan(mass), rec["m"][final], mass), charge
    p3 = np.stack([rec[a][rows] for a in ("px", "py", "pz")], axis=1)
    x4 = np.stack([rec[a][rows] for a in ("x", "y", "z", "t")], axis=1)
    kept = np.bincount(ev[rows], minlength=n_ev)
    first = np.concatenate([[0], np.cumsum(kept)[:-1]])
    pair_mass = np.full(n_ev, np.nan)
    for e in np.flatnonzero(found):
        sl = slice(first[e], first[e] + 2)
        pair_mass[e] = _pair_mass(p3[sl], m_all[rows][sl])
    return PythiaParticles(
        counts=kept,
        pdg=rec["id"][rows].astype(np.int32),
        q=q_all[rows],
        m=m_all[rows],
        p3=p3,
        x4=x4,
        record_index=rows - offsets[ev[rows]],
        pair_found=found,
        pair_pdg=np.where(found[:, None], rec["id"][np.maximum(pair, 0)], 0).astype(np.int32),
        pair_mass=pair_mass,
    )


def concatenate(parts: list[PythiaParticles]) -> PythiaParticles:
    """Join the particles of consecutive batches.

    Example
    -------
    >>> both = concatenate([first_batch, second_batch])   # doctest: +SKIP
    """
    return PythiaParticles(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(PythiaParticles))
    )


# ----------------------------------------------------------------------------- generators
class HardScatter:
    """Hard-scatter events of every process, one lazily created Pythia instance per
    (process, flavour), seeded with :func:`pythia_seed` from ``key``.

    Example
    -------
    >>> hard = HardScatter(key=12345)                 # doctest: +SKIP
    >>> z_mumu = hard.events("z", 13, 10)             # doctest: +SKIP
    """

    def __init__(self, key: int) -> None:
        self.key = int(key)
        self._instances: dict[tuple[str, int], Any] = {}

    def pythia(self, process: str, flavour: int = 0) -> Any:
        """The (initialised) Pythia instance of ``process`` and lepton ``flavour``."""
        if process not in HARD_PROCESSES:
            raise ConfigError(f"unknown Pythia process {process!r}; one of {list(HARD_PROCESSES)}")
        slot = (process, int(flavour))
        if slot not in self._instances:
            settings = tuple(s.format(f=flavour) for s in HARD_PROCESSES[process])
            self._instances[slot] = make_pythia(settings, pythia_seed(self.key, *slot))
        return self._instances[slot]

    def batch(self, process: str, flavour: int, n: int) -> ak.Array:
        """The next ``n`` events of the instance as Pythia's awkward records (``nextBatch``)."""
        return self.pythia(process, flavour).nextBatch(int(n), _MAX_TRIES)

    def events(self, process: str, flavour: int, n: int) -> PythiaParticles:
        """The kept particles of the next ``n`` events of ``process`` (``flavour`` 11 or 13, 0
        for ``ttbar`` and ``qcd``)."""
        if n == 0:
            return _empty(0)
        return event_particles(self.batch(process, flavour, n), PAIR_PARENT[process])


def _empty(n_ev: int) -> PythiaParticles:
    z = np.zeros(0)
    return PythiaParticles(
        counts=np.zeros(n_ev, np.int64),
        pdg=np.zeros(0, np.int32),
        q=z,
        m=z,
        p3=np.zeros((0, 3)),
        x4=np.zeros((0, 4)),
        record_index=np.zeros(0, np.int64),
        pair_found=np.zeros(n_ev, bool),
        pair_pdg=np.zeros((n_ev, 2), np.int32),
        pair_mass=np.full(n_ev, np.nan),
    )


def minbias_records(
    size: int, key: int, stream: str, *, progress: bool | None = None
) -> Iterator[Any]:
    """``size`` ``SoftQCD:nonDiffractive`` events of Pythia's seed for ``(key, stream)``, as
    batches of Pythia's awkward event records (``nextBatch``), with a progress bar."""
    pythia = make_pythia(MINBIAS, pythia_seed(key, stream))
    with progress_bar(
        total=size, progress=progress, desc="pythia8 pileup pool", unit="event"
    ) as bar:
        for start in range(0, size, _BATCH):
            n = min(_BATCH, size - start)
            yield pythia.nextBatch(n, _MAX_TRIES)
            bar.update(n)


def minbias_pool(size: int, key: int, *, progress: bool | None = None) -> PythiaParticles:
    """A pool of ``size`` ``SoftQCD:nonDiffractive`` events (kept particles only), seeded
    from ``key``; pileup interactions are drawn from it.

    Example
    -------
    >>> pool = minbias_pool(200, key=12345, progress=False)   # doctest: +SKIP
    >>> pool.counts.mean()   # charged particles per interaction in the acceptance
    """
    records = minbias_records(size, key, "minbias", progress=progress)
    pool = concatenate([event_particles(batch) for batch in records])
    pdg, n = np.unique(pool.pdg, return_counts=True)
    top = np.argsort(-n)[:6]
    mix = ", ".join(
        f"{name} {100 * c / n.sum():.0f} %"
        for name, c in zip(particle_names(pdg[top]), n[top], strict=True)
    )
    log.info(
        "pythia8 pileup pool: %d events, %.1f charged particles each (%s)",
        size,
        pool.counts.mean(),
        mix,
    )
    return pool
