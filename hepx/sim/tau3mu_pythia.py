"""Pythia 8 events for ``hepx simulate tau3mu --generator pythia8``.

This module only talks to Pythia (through :mod:`hepx.sim.pythia`): it produces the signal events
and the minimum-bias pool and turns their event records into flat arrays of final-state muons
(and of the signal taus); :mod:`hepx.sim.tau3mu` overlays the pileup and propagates the muons
through the CMS endcap model.

Signal
------
pp at 14 TeV, ``HardQCD:hardccbar`` and ``HardQCD:hardbbbar`` (flavour creation, gg and qqbar),
both with ``PhaseSpace:pTHatMin =`` :data:`PT_HAT_MIN`, mixed by Pythia's own cross sections.
Ds -> tau nu and tau -> mu mu mu are forced for one charge: the instance of ``sign = +1`` makes
every Ds+ decay to tau+ nu (``431:onMode = 3`` keeps the Ds- table, ``431:onIfMatch = -15 16``
opens tau nu for both) and every tau+ to mu+ mu+ mu- with flat phase space (``15:onMode = 2``
keeps the tau- table, ``15:addChannel = 3 1.0 0 13 13 -13`` adds the channel for tau+ only);
``sign = -1`` is the charge conjugate. So the other charm or beauty hadron of the event decays
as usual, and taus from B decays (direct, or through a Ds) are signal too.

A **signal tau** is a tau that decayed into three muons. An event is kept (generator-level
filter, as the fast generator's Ds acceptance) when one of its signal taus has a Ds or
b-hadron mother with pT > :data:`PARENT_PT_MIN` and :data:`PARENT_ABS_ETA` ``[0] < |eta| <``
:data:`PARENT_ABS_ETA` ``[1]``; the other events are skipped (counted in
:attr:`SignalSource.tried`).

Pileup
------
``SoftQCD:nonDiffractive`` (:data:`hepx.sim.pythia.MINBIAS`). Pythia's default stable particles
are kept (pi+-, K+- and K0L do not decay), so the muons of an interaction are those of hadron
decays (heavy flavour, light vector mesons, onia), as for ActsTrack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

import awkward as ak
import numpy as np

from hepx.sim.pythia import make_pythia, minbias_records, pythia_seed

__all__ = [
    "PARENT_ABS_ETA",
    "PARENT_PT_MIN",
    "PT_HAT_MIN",
    "MuonEvents",
    "SignalSource",
    "event_muons",
    "muon_pool",
    "run_key",
    "signal_settings",
]

log = logging.getLogger("hepx")

#: GeV. A muon needs p ~ 3 GeV to reach station 1, so the three muons of a tau leave hits when
#: the tau has p >~ 9 GeV, i.e. pT >~ 3-5 GeV at abs(eta) 1.6-2.4, from a Ds of pT >~ 5 GeV (the
#: filter). A Ds carries ~0.6-0.8 of its charm quark's pT, so pTHat >= 4 GeV loses few such Ds
#: (measured: docs, simulation guide).
PT_HAT_MIN = 4.0
#: GeV: the generator-level filter on the tau's Ds or b-hadron mother (the fast generator's).
PARENT_PT_MIN = 5.0
PARENT_ABS_ETA = (1.1, 2.6)
_TAU, _MU, _DS = 15, 13, 431
_BATCH = 100  # events per nextBatch call
_MAX_TRIES = 10.0  # nextBatch gives up after this many attempts per requested event


def run_key(seed: int) -> int:
    """The run's hashing key from its seed: the Pythia instances are seeded from it.

    Example
    -------
    >>> run_key(0) == run_key(0) != run_key(1)
    True
    """
    return int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0])


def signal_settings(sign: int) -> tuple[str, ...]:
    """Pythia settings of the signal instance forcing ``Ds -> tau nu, tau -> 3 mu`` for the tau
    charge ``sign`` (+1 or -1); the other charge decays as usual.

    Example
    -------
    >>> signal_settings(+1)[3:]
    ('431:onMode = 3', '431:onIfMatch = -15 16', '15:onMode = 2', '15:addChannel = 3 1.0 0 13 13 -13')
    """
    # onMode 2 / 3: a channel open for the particle / the antiparticle only. Ds+ (431) gives
    # tau+ (-15): sign +1 forces the Ds particle and the tau antiparticle.
    other = 3 if sign > 0 else 2  # Ds table kept for the unforced charge
    return (
        "HardQCD:hardccbar = on",
        "HardQCD:hardbbbar = on",
        f"PhaseSpace:pTHatMin = {PT_HAT_MIN}",
        f"431:onMode = {other}",
        "431:onIfMatch = -15 16",
        f"15:onMode = {5 - other}",
        f"15:addChannel = {other} 1.0 0 13 13 -13",
    )


# ----------------------------------------------------------------------------- event records
@dataclass(frozen=True)
class MuonEvents:
    """Final-state muons (and signal taus) of consecutive Pythia events, flat in event order.

    Per muon: ``p4`` (n, 4) px, py, pz, E in GeV, ``q`` (e), ``tau`` (index of its signal tau
    in the event, -1 for other muons), ``record_index`` (row in Pythia's event record); the
    muons of signal taus come first in their event. Per signal tau: ``tau_p4``, ``tau_q``,
    ``tau_parent`` (PDG id of its mother), ``tau_record_index``. ``counts`` / ``tau_counts``:
    muons / signal taus per event.
    """

    counts: np.ndarray
    p4: np.ndarray
    q: np.ndarray
    tau: np.ndarray
    record_index: np.ndarray
    tau_counts: np.ndarray
    tau_p4: np.ndarray
    tau_q: np.ndarray
    tau_parent: np.ndarray
    tau_record_index: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each event's muons in the flat arrays, and the total at the end."""
        return np.concatenate([[0], np.cumsum(self.counts)])

    @staticmethod
    def empty(n_events: int = 0) -> MuonEvents:
        """``n_events`` events without muons or taus."""
        i, f, c = np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(n_events, np.int64)
        return MuonEvents(c, f, i, i, i, c, f, i, i, i)

    @staticmethod
    def concatenate(parts: list[MuonEvents]) -> MuonEvents:
        """Join the muons of consecutive groups of events."""
        return MuonEvents(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(MuonEvents))
        )


def _flat(batch: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The record fields used here, flat over the events, and each event's first row."""
    prt = batch["prt"]

    def flat(a: ak.Array) -> np.ndarray:
        return ak.to_numpy(ak.flatten(a, axis=1))

    rec = {k: flat(prt[k]).astype(np.int64) for k in ("id", "status", "mother1")}
    rec |= {k: flat(prt[k]).astype(np.int64) for k in ("daughter1", "daughter2")}
    rec |= {k: flat(prt["p"][k]) for k in ("px", "py", "pz", "e")}
    counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
    return rec, np.concatenate([[0], np.cumsum(counts)])


def _is_b_hadron(pdg: int) -> bool:
    """A hadron with a b quark (PDG numbering: the quark digits of mesons and baryons)."""
    a = abs(int(pdg))
    return a > 100 and 5 in ((a // 1000) % 10, (a // 100) % 10, (a // 10) % 10)


def _signal_taus(rec: dict[str, np.ndarray], lo: int, hi: int, tau_id: int) -> list[int]:
    """Rows (event-local) of the taus ``tau_id`` among rows lo..hi-1 that decayed to 3 muons."""
    ids = rec["id"][lo:hi]
    out = []
    for t in np.flatnonzero(ids == tau_id):
        d1, d2 = rec["daughter1"][lo + t], rec["daughter2"][lo + t]
        final = rec["status"][lo + d1 : lo + d2 + 1] > 0
        if d1 > 0 and d2 - d1 == 2 and np.all(np.abs(ids[d1 : d2 + 1]) == _MU) and final.all():
            out.append(int(t))
    return out


def _accepted(rec: dict[str, np.ndarray], lo: int, hi: int, tau_id: int) -> bool:
    """The event has a signal tau from a Ds or b hadron inside the filter's acceptance."""
    for t in _signal_taus(rec, lo, hi, tau_id):
        m = lo + int(rec["mother1"][lo + t])
        if abs(rec["id"][m]) != _DS and not _is_b_hadron(rec["id"][m]):
            continue
        pt = np.hypot(rec["px"][m], rec["py"][m])
        abs_eta = abs(np.arcsinh(rec["pz"][m] / max(pt, 1e-12)))
        if pt > PARENT_PT_MIN and PARENT_ABS_ETA[0] < abs_eta < PARENT_ABS_ETA[1]:
            return True
    return False


def event_muons(batch: ak.Array, tau_id: int = 0) -> MuonEvents:
    """The final-state muons of a ``nextBatch`` result and its signal taus (``tau_id``: 15 or
    -15 for signal events, 0 for none).

    Example
    -------
    >>> muons = event_muons(pythia.nextBatch(10))     # doctest: +SKIP
    >>> muons.counts                          # muons per event   # doctest: +SKIP
    """
    rec, off = _flat(batch)
    if not tau_id:
        return _plain_muons(rec, off)
    parts = [_one_event(rec, int(off[e]), int(off[e + 1]), tau_id) for e in range(len(off) - 1)]
    return MuonEvents.concatenate(parts) if parts else MuonEvents.empty()


def _p4(rec: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    return np.stack([rec[k][rows] for k in ("px", "py", "pz", "e")], axis=-1).reshape(-1, 4)


def _one_event(rec: dict[str, np.ndarray], lo: int, hi: int, tau_id: int) -> MuonEvents:
    """The muons of rows lo..hi-1 (one event), the signal taus' daughters first."""
    taus = np.array(_signal_taus(rec, lo, hi, tau_id), dtype=np.int64)
    mus = np.flatnonzero((np.abs(rec["id"][lo:hi]) == _MU) & (rec["status"][lo:hi] > 0))
    tau_of = np.full(len(mus), -1, dtype=np.int64)
    for k, t in enumerate(taus):
        tau_of[rec["mother1"][lo + mus] == t] = k
    order = np.lexsort((mus, np.where(tau_of < 0, len(taus), tau_of)))
    mus, tau_of = mus[order], tau_of[order]
    return MuonEvents(
        counts=np.array([len(mus)]),
        p4=_p4(rec, lo + mus),
        q=-np.sign(rec["id"][lo + mus]).astype(np.int64),
        tau=tau_of,
        record_index=mus.astype(np.int64),
        tau_counts=np.array([len(taus)]),
        tau_p4=_p4(rec, lo + taus),
        tau_q=-np.sign(rec["id"][lo + taus]).astype(np.int64),
        tau_parent=rec["id"][lo + rec["mother1"][lo + taus]].astype(np.int64),
        tau_record_index=taus,
    )


def _plain_muons(rec: dict[str, np.ndarray], off: np.ndarray) -> MuonEvents:
    """All final-state muons, vectorised (events without signal taus)."""
    rows = np.flatnonzero((np.abs(rec["id"]) == _MU) & (rec["status"] > 0))
    ev = np.searchsorted(off, rows, side="right") - 1
    none = MuonEvents.empty()
    return MuonEvents(
        counts=np.bincount(ev, minlength=len(off) - 1),
        p4=_p4(rec, rows),
        q=-np.sign(rec["id"][rows]).astype(np.int64),
        tau=np.full(len(rows), -1, dtype=np.int64),
        record_index=rows - off[ev],
        tau_counts=np.zeros(len(off) - 1, dtype=np.int64),
        tau_p4=none.tau_p4,
        tau_q=none.tau_q,
        tau_parent=none.tau_parent,
        tau_record_index=none.tau_record_index,
    )


# ----------------------------------------------------------------------------- generators
class SignalSource:
    """Signal events from two lazily created Pythia instances (tau charge +1 and -1), seeded
    with :func:`~hepx.sim.pythia.pythia_seed` from ``key``; each gives its accepted events in
    order, whatever the number asked for at a time.

    Example
    -------
    >>> src = SignalSource(key=12345)                     # doctest: +SKIP
    >>> muons = src.events(+1, 5)                         # doctest: +SKIP
    >>> muons.tau_counts, src.tried[+1]                   # doctest: +SKIP
    """

    def __init__(self, key: int) -> None:
        self.key = int(key)
        self.tried: dict[int, int] = {+1: 0, -1: 0}  # events generated per tau charge
        self.accepted = 0  # of them, events that passed the filter
        self._instances: dict[int, Any] = {}
        self._buffer: dict[int, list[ak.Array]] = {+1: [], -1: []}

    def pythia(self, sign: int) -> Any:
        """The (initialised) Pythia instance forcing the tau charge ``sign``."""
        if sign not in self._instances:
            seed = pythia_seed(self.key, "tau3mu-signal", sign % 3)
            self._instances[sign] = make_pythia(signal_settings(sign), seed)
        return self._instances[sign]

    def records(self, sign: int, n: int) -> ak.Array:
        """Pythia's records (``nextBatch`` layout) of the next ``n`` accepted events."""
        buffer = self._buffer[sign]
        have = sum(len(b) for b in buffer)
        while have < n:
            batch = self.pythia(sign).nextBatch(_BATCH, _MAX_TRIES)
            rec, off = _flat(batch)
            keep = [_accepted(rec, off[e], off[e + 1], -_TAU * sign) for e in range(len(batch))]
            self.tried[sign] += len(batch)
            self.accepted += int(np.sum(keep))
            buffer.append(batch[np.asarray(keep, dtype=bool)])
            have += int(np.sum(keep))
        joined = ak.concatenate(buffer) if len(buffer) > 1 else buffer[0]
        self._buffer[sign] = [joined[n:]]
        return joined[:n]

    def events(self, sign: int, n: int) -> MuonEvents:
        """Muons and signal taus of the next ``n`` accepted events of tau charge ``sign``."""
        return event_muons(self.records(sign, n), -_TAU * sign)


def muon_pool(size: int, key: int, *, progress: bool | None = None) -> MuonEvents:
    """The muons of ``size`` ``SoftQCD:nonDiffractive`` events, seeded from ``key``; pileup
    interactions are drawn from it.

    Example
    -------
    >>> pool = muon_pool(2000, key=12345, progress=False)   # doctest: +SKIP
    >>> pool.counts.mean()   # final-state muons per interaction   # doctest: +SKIP
    """
    records = minbias_records(size, key, "tau3mu-minbias", progress=progress)
    pool = MuonEvents.concatenate([event_muons(batch) for batch in records])
    log.info(
        "pythia8 pileup pool: %d interactions, %.3f final-state muons each",
        size,
        pool.counts.mean(),
    )
    return pool
