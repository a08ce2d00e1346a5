"""Approximate geometry and digitisation of the CMS Phase-2 endcap muon system.

Used by :mod:`hepx.sim.tau3mu`. Numbers are rounded public values (CMS Muon TDRs and the
Phase-2 Muon TDR, CERN-LHCC-2017-012); they are good enough for event displays and for
learning tasks, not for physics measurements. Conventions:

* Lengths in cm, angles in degrees, hit phi in (-180, 180].
* Both endcaps: the sign of z (and of eta) is the endcap (``mu_hit_endcap`` = +-1).
* Detector types as in the EMTF ntuples: DT=0, CSC=1, RPC=2, GEM=3, ME0=4.
* Chambers: 10-degree chambers (36 per ring) are centred at phi = 10 (n - 1); 20-degree ones
  (18 per ring) at 5 + 20 (n - 1); DT sectors (30 degrees, 12) at 30 (n - 1).
  EMTF sector k (1-6) covers phi in [15 + 60 (k - 1), 75 + 60 (k - 1)), so that, as in CMS,
  sector 1 holds 10-degree chambers 3-8 and 20-degree chambers 2-4.
* Neighbour copies: the last chamber of a sector (highest phi) is also sent to the next
  sector, flagged ``neighbor = 1``; DT hits are not copied.
* ``emtf_phi`` is in 1/60 degree from the sector origin ``15 + 60 (k - 1) - 22`` degrees
  (so it is positive for the sector's own chambers and its neighbour chamber); ``emtf_theta``
  is ``(theta - 8.5) * 128 / 36.5`` (units of 0.285 degrees, theta folded into the +z endcap),
  clipped to [1, 127]. Both are approximations of the firmware encodings.
* ``sim_*`` positions are the digitised positions (strip / wire group / roll centres), as in
  the real ntuple where they come from the geometry of the fired strip, not the true crossing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Detector type codes (mu_hit_type).
DT, CSC, RPC, GEM, ME0 = 0, 1, 2, 3, 4
TYPE_NAMES = {DT: "DT", CSC: "CSC", RPC: "RPC", GEM: "GEM", ME0: "ME0"}

# Barrel half-length (cm): DT chambers end here; used to bound DT coverage in eta.
_DT_HALF_LENGTH = 661.0
# |eta| above which ME1/1 hits are labelled ring 4 (ME1/1a), as in CMSSW's CSCDetId.
ME11A_ETA = 2.1

# One row per detector layer. Columns:
#  name, type, station, ring, barrel?, pos (|z| for disks, r for DT, cm), |eta| lo, hi,
#  chambers per ring, phi cells per chamber (half-strips / strips), eta cells (wire groups /
#  rolls), efficiency, p_min (GeV, to reach it), bend slope (bend units * GeV at |eta| <= 1.5),
#  bend resolution, bend clip lo, hi, phi resolution (deg), noise rate per event at PU200
#  (both endcaps), noise |eta| slope (density ~ exp(slope |eta|)), noise bend width.
# fmt: off
_LAYERS = [
    ("ME0",   ME0, 1, 1, False,  539.0, 2.00, 2.80, 18, 768,   8, 0.95, 2.8, 90.0, 2.5, -64, 63, 0.02, 5.0, 2.5, 14.0),
    ("GE1/1a", GEM, 1, 1, False, 567.0, 1.55, 2.18, 36, 384,   8, 0.95, 2.8,  0.0, 0.0,   0,  0, 0.01, 2.0, 2.0,  0.0),
    ("GE1/1b", GEM, 1, 1, False, 570.0, 1.55, 2.18, 36, 384,   8, 0.95, 2.8,  0.0, 0.0,   0,  0, 0.01, 2.0, 2.0,  0.0),
    ("ME1/1", CSC, 1, 1, False,  602.0, 1.60, 2.40, 36, 128,  48, 0.96, 3.0, 36.0, 1.0, -16, 15, 0.02, 2.6, 2.0,  4.0),
    ("ME1/2", CSC, 1, 2, False,  698.0, 1.20, 1.60, 36, 160,  64, 0.96, 3.0, 22.0, 1.0, -16, 15, 0.02, 1.0, 1.0,  4.0),
    ("RE1/2", RPC, 1, 2, False,  722.0, 1.20, 1.60, 36,  32,   3, 0.93, 3.0,  0.0, 0.0,   0,  0, 0.05, 0.8, 1.0,  0.0),
    ("MB1",   DT,  1, 1, True,   430.0, 0.90, 1.20, 12, 600,  30, 0.95, 3.4, 60.0, 4.0, -127, 127, 0.03, 0.8, 0.0, 30.0),
    ("GE2/1a", GEM, 2, 1, False, 794.0, 1.60, 2.46, 18, 768,   8, 0.95, 3.5,  0.0, 0.0,   0,  0, 0.01, 1.4, 2.0,  0.0),
    ("GE2/1b", GEM, 2, 1, False, 797.0, 1.60, 2.46, 18, 768,   8, 0.95, 3.5,  0.0, 0.0,   0,  0, 0.01, 1.4, 2.0,  0.0),
    ("RE2/2", RPC, 2, 2, False,  800.0, 1.20, 1.60, 36,  32,   3, 0.93, 3.5,  0.0, 0.0,   0,  0, 0.05, 0.5, 1.0,  0.0),
    ("ME2/1", CSC, 2, 1, False,  830.0, 1.60, 2.40, 18, 160, 112, 0.96, 3.6, 14.0, 1.0, -16, 15, 0.02, 1.5, 2.0,  4.0),
    ("ME2/2", CSC, 2, 2, False,  830.0, 1.20, 1.60, 36, 160,  64, 0.96, 3.6, 10.0, 1.0, -16, 15, 0.02, 0.6, 1.0,  4.0),
    ("MB2",   DT,  2, 1, True,   520.0, 0.90, 1.20, 12, 600,  30, 0.95, 3.8, 45.0, 4.0, -127, 127, 0.03, 0.6, 0.0, 30.0),
    ("ME3/1", CSC, 3, 1, False,  935.0, 1.70, 2.40, 18, 160,  96, 0.96, 4.2,  8.0, 1.0, -16, 15, 0.02, 1.2, 2.0,  4.0),
    ("ME3/2", CSC, 3, 2, False,  935.0, 1.20, 1.70, 36, 160,  64, 0.96, 4.2,  7.0, 1.0, -16, 15, 0.02, 0.5, 1.0,  4.0),
    ("RE3/1", RPC, 3, 1, False,  970.0, 1.80, 2.40, 18,  96,  24, 0.93, 4.2,  0.0, 0.0,   0,  0, 0.03, 1.0, 2.0,  0.0),
    ("RE3/2", RPC, 3, 2, False,  970.0, 1.20, 1.60, 36,  32,   3, 0.93, 4.2,  0.0, 0.0,   0,  0, 0.05, 0.4, 1.0,  0.0),
    ("MB3",   DT,  3, 1, True,   620.0, 0.90, 1.20, 12, 600,  30, 0.95, 4.2, 35.0, 4.0, -127, 127, 0.03, 0.2, 0.0, 30.0),
    ("ME4/1", CSC, 4, 1, False, 1025.0, 1.80, 2.40, 18, 160,  96, 0.96, 4.8,  6.0, 1.0, -16, 15, 0.02, 1.2, 2.0,  4.0),
    ("ME4/2", CSC, 4, 2, False, 1025.0, 1.20, 1.80, 36, 160,  64, 0.96, 4.8,  5.0, 1.0, -16, 15, 0.02, 0.5, 1.0,  4.0),
    ("RE4/1", RPC, 4, 1, False, 1045.0, 1.80, 2.40, 18,  96,  24, 0.93, 4.8,  0.0, 0.0,   0,  0, 0.03, 1.0, 2.0,  0.0),
    ("RE4/2", RPC, 4, 2, False, 1045.0, 1.20, 1.60, 36,  32,   3, 0.93, 4.8,  0.0, 0.0,   0,  0, 0.05, 0.4, 1.0,  0.0),
]
# fmt: on


@dataclass(frozen=True)
class LayerTable:
    """Column arrays of the detector layers (index = layer id)."""

    name: tuple[str, ...]
    type: np.ndarray
    station: np.ndarray
    ring: np.ndarray
    barrel: np.ndarray
    pos: np.ndarray
    eta_lo: np.ndarray
    eta_hi: np.ndarray
    n_chambers: np.ndarray
    width: np.ndarray
    first_centre: np.ndarray
    n_phi: np.ndarray
    n_eta: np.ndarray
    eff: np.ndarray
    p_min: np.ndarray
    bend_slope: np.ndarray
    bend_sigma: np.ndarray
    bend_lo: np.ndarray
    bend_hi: np.ndarray
    phi_res: np.ndarray
    noise_rate: np.ndarray
    noise_eta_slope: np.ndarray
    noise_bend_sigma: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    def index(self, name: str) -> int:
        """Layer id of a layer name such as ``"ME1/1"``."""
        return self.name.index(name)


def _build_table() -> LayerTable:
    cols = list(zip(*_LAYERS, strict=True))
    f8 = np.float64
    n_ch = np.asarray(cols[8], dtype=np.int64)
    width = 360.0 / n_ch
    # 20-degree chambers are offset by 5 degrees so that sector edges (15 + 60 k) are chamber edges.
    first_centre = np.where(np.isclose(width, 20.0), 5.0, 0.0)
    barrel = np.asarray(cols[4], dtype=bool)
    pos = np.asarray(cols[5], dtype=f8)
    eta_hi = np.asarray(cols[7], dtype=f8)
    # DT coverage ends where the barrel ends: |z| = r sinh(eta) <= half-length.
    eta_hi = np.where(barrel, np.minimum(eta_hi, np.arcsinh(_DT_HALF_LENGTH / pos)), eta_hi)
    return LayerTable(
        name=tuple(cols[0]),
        type=np.asarray(cols[1], dtype=np.int16),
        station=np.asarray(cols[2], dtype=np.int16),
        ring=np.asarray(cols[3], dtype=np.int16),
        barrel=barrel,
        pos=pos,
        eta_lo=np.asarray(cols[6], dtype=f8),
        eta_hi=eta_hi,
        n_chambers=n_ch,
        width=width,
        first_centre=first_centre,
        n_phi=np.asarray(cols[9], dtype=np.int64),
        n_eta=np.asarray(cols[10], dtype=np.int64),
        eff=np.asarray(cols[11], dtype=f8),
        p_min=np.asarray(cols[12], dtype=f8),
        bend_slope=np.asarray(cols[13], dtype=f8),
        bend_sigma=np.asarray(cols[14], dtype=f8),
        bend_lo=np.asarray(cols[15], dtype=np.int64),
        bend_hi=np.asarray(cols[16], dtype=np.int64),
        phi_res=np.asarray(cols[17], dtype=f8),
        noise_rate=np.asarray(cols[18], dtype=f8),
        noise_eta_slope=np.asarray(cols[19], dtype=f8),
        noise_bend_sigma=np.asarray(cols[20], dtype=f8),
    )


LAYERS = _build_table()

# Magnetic deflection in phi (degrees * GeV, for q / pT = 1 / GeV and |eta| <= 1.5) of a track
# from the vertex to |z|. It grows inside the 3.8 T solenoid and its endcap nose, then
# decreases behind ME1 where the return flux in the yoke disks bends the other way: this is
# the station-to-station phi drift that the EMTF pT assignment uses.
_DEFLECTION_Z = np.array([400.0, 540.0, 570.0, 600.0, 700.0, 800.0, 830.0, 940.0, 1030.0, 1100.0])
_DEFLECTION_K = np.array([36.0, 41.0, 42.5, 44.0, 46.0, 40.5, 39.5, 36.0, 33.5, 32.5])
# Tracks with |eta| > 1.5 leave the solenoid through its end face, so the transverse path in
# the field (and hence the bending at fixed pT) shrinks like 1 / sinh|eta|.
_ETA_FIELD_EXIT = 1.5


def field_factor(abs_eta: np.ndarray) -> np.ndarray:
    """Relative transverse path in the field, 1 for |eta| <= 1.5, ~1 / sinh|eta| above."""
    return np.minimum(1.0, np.sinh(_ETA_FIELD_EXIT) / np.sinh(np.maximum(abs_eta, 1e-3)))


def deflection_deg(abs_z: np.ndarray, abs_eta: np.ndarray, q_over_pt: np.ndarray) -> np.ndarray:
    """Phi deflection (degrees) at ``|z|`` (cm) of a track with ``q / pT`` (1/GeV).

    Positive charges bend towards smaller phi (B along +z): phi_hit = phi_vertex - deflection.
    """
    k = np.interp(abs_z, _DEFLECTION_Z, _DEFLECTION_K)
    return k * field_factor(abs_eta) * q_over_pt


def wrap_deg(phi: np.ndarray) -> np.ndarray:
    """Wrap angles in degrees into (-180, 180]."""
    return 180.0 - np.mod(180.0 - phi, 360.0)


def digitise(
    layer: np.ndarray, endcap: np.ndarray, abs_eta: np.ndarray, phi: np.ndarray
) -> dict[str, np.ndarray]:
    """Chamber, sector and strip/wire/roll numbers plus digitised positions of hits.

    Parameters
    ----------
    layer
        Layer id per hit (index into :data:`LAYERS`).
    endcap
        +1 / -1 per hit.
    abs_eta
        True |eta| of the crossing; must lie inside the layer's eta range.
    phi
        True phi of the crossing, degrees (any range).

    Returns
    -------
    dict
        Arrays (one entry per hit) named like the ``mu_hit_*`` branches without the prefix
        (``ring``, ``chamber``, ``sector``, ``subsector``, ``cscid``, ``strip``, ``wire``,
        ``roll``, ``fr``, ``emtf_phi``, ``emtf_theta``, ``sim_phi``, ``sim_theta``,
        ``sim_eta``, ``sim_r``, ``sim_z``) plus ``last_in_sector`` (bool: a neighbour copy is
        due) in float64 / int64; the caller casts to the file dtypes.
    """
    t = LAYERS
    typ = t.type[layer]
    station = t.station[layer]
    width = t.width[layer]
    c1 = t.first_centre[layer]

    # Chamber from phi: chamber n is centred at c1 + width (n - 1).
    idx = np.floor(np.mod(phi - c1 + 0.5 * width, 360.0) / width).astype(np.int64)
    idx = np.minimum(idx, t.n_chambers[layer] - 1)  # guards the float edge at exactly 360
    centre = c1 + idx * width
    low_edge = centre - 0.5 * width

    # Strips: uniform in phi across the chamber; the digitised phi is the strip centre.
    n_phi = t.n_phi[layer]
    local = np.mod(phi - low_edge, 360.0)
    strip = np.clip(np.floor(local / width * n_phi).astype(np.int64), 0, n_phi - 1)
    phi_q = wrap_deg(low_edge + (strip + 0.5) * width / n_phi)

    # Wire groups / rolls: uniform in |eta| over the layer; digitised eta is the cell centre.
    lo, hi, n_eta = t.eta_lo[layer], t.eta_hi[layer], t.n_eta[layer]
    cell = np.clip(np.floor((abs_eta - lo) / (hi - lo) * n_eta).astype(np.int64), 0, n_eta - 1)
    eta_q = lo + (cell + 0.5) * (hi - lo) / n_eta

    ring = t.ring[layer].astype(np.int64)
    ring = np.where((typ == CSC) & (station == 1) & (ring == 1) & (eta_q > ME11A_ETA), 4, ring)

    sector, subsector, cscid, last = _sector_numbers(centre, width, typ, station, ring)
    chamber = idx + 1
    fr, abs_z, r, theta_abs, emtf_theta = _positions(layer, typ, station, chamber, eta_q)
    strip_out = np.where(typ == RPC, strip + 1, strip)  # RPC strips count from 1
    wire = np.where(typ == CSC, n_eta - 1 - cell, np.where(typ == DT, cell, 0))
    roll = np.where((typ == RPC) | (typ == GEM) | (typ == ME0), cell + 1, 0)

    return {
        "ring": ring,
        "chamber": chamber,
        "sector": sector,
        "subsector": subsector,
        "cscid": cscid,
        "strip": strip_out,
        "wire": wire,
        "roll": roll,
        "fr": fr.astype(np.int64),
        "emtf_phi": emtf_phi(phi_q, sector),
        "emtf_theta": emtf_theta,
        "sim_phi": phi_q,
        "sim_theta": np.where(endcap > 0, theta_abs, 180.0 - theta_abs),
        "sim_eta": endcap * eta_q,
        "sim_r": r,
        "sim_z": endcap * abs_z,
        "last_in_sector": last,
    }


def _positions(
    layer: np.ndarray, typ: np.ndarray, station: np.ndarray, chamber: np.ndarray, eta_q: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Front/rear flag, |z|, r, |theta| (degrees) and the EMTF theta of digitised hits."""
    t = LAYERS
    # Front/rear chambers alternate in phi and are staggered by a few cm in z.
    fr = np.where(station == 1, chamber % 2 == 0, chamber % 2 == 1)
    fr = fr & ((typ == CSC) | (typ == GEM))
    z_stagger = np.where((typ == CSC) | (typ == GEM), np.where(fr, -2.5, 2.5), 0.0)
    barrel = t.barrel[layer]
    pos = t.pos[layer]
    sinh_eta = np.sinh(eta_q)
    abs_z = np.where(barrel, pos * sinh_eta, pos + z_stagger)
    r = np.where(barrel, pos, abs_z / sinh_eta)
    theta_abs = np.degrees(2.0 * np.arctan(np.exp(-eta_q)))
    emtf_theta = np.clip(np.rint((theta_abs - 8.5) * 128.0 / 36.5), 1, 127).astype(np.int64)
    return fr, abs_z, r, theta_abs, emtf_theta


def _sector_numbers(
    centre: np.ndarray, width: np.ndarray, typ: np.ndarray, station: np.ndarray, ring: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EMTF sector, subsector and CSC id of chambers (centre and width in degrees), and whether
    the chamber is the last of its sector (its hits get a neighbour-sector copy)."""
    sector = np.floor(np.mod(centre - 15.0, 360.0) / 60.0).astype(np.int64) + 1
    j = np.floor(np.mod(centre - 15.0, 60.0) / width + 1e-9).astype(np.int64)
    per_sector = np.rint(60.0 / width).astype(np.int64)
    last = (j == per_sector - 1) & (typ != DT)
    is_st1_10deg = (station == 1) & np.isclose(width, 10.0) & ((typ == CSC) | (typ == GEM))
    subsector = np.where(is_st1_10deg, 1 + (j >= 3), 0)
    # CSC ID inside the sector (1-9), following the EMTF numbering; GEM and ME0 borrow it.
    ring_group = np.where(ring == 4, 0, ring - 1)
    cscid_st1 = 3 * ring_group + np.mod(j, 3) + 1
    cscid_out = np.where(ring == 1, j + 1, 4 + j)
    cscid = np.where(station == 1, cscid_st1, cscid_out)
    cscid = np.where(typ == ME0, j + 1, cscid)
    cscid = np.where((typ == CSC) | (typ == GEM) | (typ == ME0), cscid, 0)
    return sector, subsector, cscid, last


def emtf_phi(phi: np.ndarray, sector: np.ndarray) -> np.ndarray:
    """Integer EMTF phi (1/60 degree) of ``phi`` (degrees) inside EMTF ``sector`` (1-6)."""
    origin = 15.0 + 60.0 * (sector - 1) - 22.0
    return np.rint(np.mod(phi - origin, 360.0) * 60.0).astype(np.int64)


def clip_pattern(bend: np.ndarray) -> np.ndarray:
    """Run-2-style CLCT pattern id (2-10) from the bend: 10 is straight, odd/even = sign."""
    a = np.abs(bend)
    base = np.select([a <= 1, a <= 4, a <= 8, a <= 12], [10, 8, 6, 4], 2)
    return np.where(base == 10, 10, base + (bend > 0))
