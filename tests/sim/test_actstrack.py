"""Tests of the built-in ACTS simulation (hepx.sim.actstrack).

Expectations are independent of the implementation where possible: branch layouts and geometry
come from root-formats.md (written out here), helix relations from the Lorentz force, masses
from the ``particle`` package, boosts from ``vector``.
"""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepx.errors import ConfigError, InputError
from hepx.sim import actstrack
from hepx.sim import kinematics as kin
from hepx.sim.actstrack import ActsTrackTruth, simulate_actstrack

# ------------------------------------------------------------------------------------------
# expectations written out from root-formats.md
# ------------------------------------------------------------------------------------------
MASKS = {
    "volume": 0xFF00000000000000,
    "boundary": 0x00FF000000000000,
    "layer": 0x0000FFF000000000,
    "approach": 0x0000000FF0000000,
    "sensitive": 0x000000000FFFFF00,
}
BARREL_RADII = {
    8: (32.0, 72.0, 116.0, 172.0),
    13: (260.0, 360.0, 500.0, 660.0),
    17: (820.0, 1020.0),
}
PIXEL_DISKS = (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0)
STRIP_DISKS = (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0)
ENDCAP_DISKS = {7: PIXEL_DISKS, 9: PIXEL_DISKS, 12: STRIP_DISKS, 14: STRIP_DISKS}
ENDCAP_DISKS |= {16: STRIP_DISKS, 18: STRIP_DISKS}
NEGATIVE_ENDCAPS = (7, 12, 16)

HIT_TYPES_COMMON = {
    "event_id": "uint32",
    "geometry_id": "uint64",
    **dict.fromkeys(["tx", "ty", "tz", "tt", "tpx", "tpy", "tpz", "te"], "float32"),
    **dict.fromkeys(["deltapx", "deltapy", "deltapz", "deltae"], "float32"),
    "index": "int32",
    **dict.fromkeys(
        ["volume_id", "boundary_id", "layer_id", "approach_id", "sensitive_id"], "uint32"
    ),
}
BARCODE = ("vertex_primary", "vertex_secondary", "particle", "generation", "sub_particle")
PARTICLE_TYPES_COMMON = {
    "particle_type": "int32",
    "process": "uint32",
    **dict.fromkeys(
        ["vx", "vy", "vz", "vt", "px", "py", "pz", "m", "q", "eta", "phi", "pt", "p"], "float32"
    ),
    **dict.fromkeys(BARCODE, "uint32"),
    "number_of_hits": "uint32",
}
B_FIELD = 2.0


def unpack(pid: np.ndarray) -> dict[str, np.ndarray]:
    pid = pid.astype(np.uint64)
    return {
        "vertex_primary": (pid >> np.uint64(52)) & np.uint64(0xFFF),
        "vertex_secondary": (pid >> np.uint64(40)) & np.uint64(0xFFF),
        "particle": (pid >> np.uint64(24)) & np.uint64(0xFFFF),
        "generation": (pid >> np.uint64(16)) & np.uint64(0xFF),
        "sub_particle": pid & np.uint64(0xFFFF),
    }


def read_hits(path: Path) -> dict[str, np.ndarray]:
    return uproot.open(path / "hits.root")["hits"].arrays(library="np")


def read_particles(path: Path) -> ak.Array:
    return uproot.open(path / "particles.root")["particles"].arrays()


def leaf_types(tree) -> dict[str, str]:
    """Branch -> numpy dtype name of its values (jagged or not)."""
    out = {}
    for name, branch in tree.items():
        interp = branch.interpretation
        dtype = getattr(interp, "to_dtype", None)
        if dtype is None:
            dtype = interp.content.to_dtype
        out[name] = np.dtype(dtype).newbyteorder("=").name
    return out


def particle_table(parts: ak.Array) -> dict[str, np.ndarray]:
    """Flat per-particle numpy columns (with event_id) from a per-event particles tree."""
    counts = ak.to_numpy(ak.num(parts["particle_type"]))
    cols = {"event_id": np.repeat(ak.to_numpy(parts["event_id"]), counts)}
    for f in parts.fields:
        if f not in ("event_id", "n_particles"):
            cols[f] = ak.to_numpy(ak.flatten(parts[f]))
    return cols


def hit_pairs(h: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Consecutive hits (index n, n + 1) of the same particle: (first, second) columns."""
    o = np.lexsort((h["index"], h["particle_id"], h["event_id"]))
    h = {k: v[o] for k, v in h.items()}
    same = (h["event_id"][1:] == h["event_id"][:-1]) & (
        h["particle_id"][1:] == h["particle_id"][:-1]
    )
    a = {k: (v[:-1][same]).astype(np.float64) for k, v in h.items() if v.dtype.kind == "f"}
    b = {k: (v[1:][same]).astype(np.float64) for k, v in h.items() if v.dtype.kind == "f"}
    for k in ("event_id", "particle_id", "index"):
        a[k], b[k] = h[k][:-1][same], h[k][1:][same]
    return a, b


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, ActsTrackTruth]:
    """A small sorted v43 run with full efficiency (so consecutive hits have no material between)."""
    out = tmp_path_factory.mktemp("acts") / "run"
    truth = simulate_actstrack(
        out,
        events=200,
        seed=11,
        pileup=2.0,
        event_order="sorted",
        hit_efficiency=1.0,
        chunk_size=64,
    )
    return out, truth


# ------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------


def test_detector_surfaces_match_generic_detector():
    from hepx.sim.detector_acts import CYLINDER, generic_detector

    s = generic_detector()
    sens = s.sensitive
    for vol, radii in BARREL_RADII.items():
        m = sens & (s.volume_id == vol)
        assert np.all(s.kind[m] == CYLINDER)
        np.testing.assert_array_equal(s.pos[m], radii)
        np.testing.assert_array_equal(s.layer_id[m], 2 * np.arange(1, len(radii) + 1))
    for vol, zs in ENDCAP_DISKS.items():
        m = sens & (s.volume_id == vol)
        sign = -1 if vol in NEGATIVE_ENDCAPS else 1
        np.testing.assert_array_equal(np.sort(s.pos[m]), np.sort(sign * np.array(zs)))
        assert set(s.layer_id[m]) == set(2 * np.arange(1, len(zs) + 1))
    assert set(s.volume_id[sens]) == {7, 8, 9, 12, 13, 14, 16, 17, 18}
    # material: pixel 1-2 % X0, strips 2-4 % X0
    pix = sens & np.isin(s.volume_id, [7, 8, 9])
    assert np.all((s.x_x0[pix] >= 0.01) & (s.x_x0[pix] <= 0.02))
    assert np.all((s.x_x0[sens & ~pix] >= 0.02) & (s.x_x0[sens & ~pix] <= 0.04))
    # volumes tile: pixel barrel |z| < ~500 below the first pixel disk, strip barrels end
    # before the first strip disk, disk r ranges do not overlap between systems
    assert s.hi[sens & (s.volume_id == 8)].max() < 600
    assert s.hi[sens & np.isin(s.volume_id, [13, 17])].max() < 1220
    assert s.hi[sens & (s.volume_id == 9)].max() < s.lo[sens & (s.volume_id == 14)].min()
    assert s.hi[sens & (s.volume_id == 14)].max() < s.lo[sens & (s.volume_id == 18)].min()


def test_geometry_id_masks_roundtrip():
    from hepx.sim.detector_acts import decode_geometry_id, encode_geometry_id

    rng = np.random.default_rng(0)
    vol = rng.integers(0, 256, 50)
    lay = rng.integers(0, 4096, 50)
    sen = rng.integers(0, 2**20, 50)
    g = encode_geometry_id(vol, lay, sen)
    gi = g.astype(object)
    assert [(int(x) & MASKS["volume"]) >> 56 for x in gi] == vol.tolist()
    assert [(int(x) & MASKS["layer"]) >> 36 for x in gi] == lay.tolist()
    assert [(int(x) & MASKS["sensitive"]) >> 8 for x in gi] == sen.tolist()
    d = decode_geometry_id(g)
    np.testing.assert_array_equal(d["volume"], vol)
    np.testing.assert_array_equal(d["layer"], lay)


# ------------------------------------------------------------------------------------------
# layouts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "layout"),
    [("v43", "per_event"), ("v44.0", "per_particle"), ("v44.3", "per_event")],
)
def test_branch_names_and_types(tmp_path, schema, layout):
    truth = simulate_actstrack(
        tmp_path, events=6, seed=1, pileup=0.6, schema=schema, particles_layout=layout
    )
    hits = uproot.open(tmp_path / "hits.root")["hits"]
    types = leaf_types(hits)
    expected = dict(HIT_TYPES_COMMON)
    if schema == "v43":
        expected["particle_id"] = "uint64"
    elif schema == "v44.0":
        expected["barcode"] = "uint32"
        assert hits["barcode"].interpretation.__class__.__name__ == "AsJagged"
    else:
        expected |= {f"barcode_{c}": "uint32" for c in BARCODE}
    counters = {k for k in types if k not in expected}
    assert {k: types[k] for k in expected} == expected
    assert counters <= {"n_barcode"}  # uproot's counter of the jagged barcode, if any
    assert hits.num_entries == truth.n_hits.sum()

    parts = uproot.open(tmp_path / "particles.root")["particles"]
    ptypes = leaf_types(parts)
    pexp = {"event_id": "uint32", **PARTICLE_TYPES_COMMON}
    pexp["particle_id" if schema == "v43" else "particle_hash"] = "uint64"
    assert {k: ptypes[k] for k in pexp} == pexp
    assert ("particle_hash" in ptypes) == (schema != "v43")
    if layout == "per_event":
        assert parts.num_entries == len(truth)
        assert parts["particle_type"].interpretation.__class__.__name__ == "AsJagged"
        assert parts["event_id"].interpretation.__class__.__name__ == "AsDtype"
    else:
        assert parts.num_entries == truth.n_particles.sum()
        assert all(b.interpretation.__class__.__name__ == "AsDtype" for b in parts.values())

    # v44 components agree between hits and particles and with the v43 packing of the truth
    if schema == "v44.0":
        bc = ak.to_numpy(hits["barcode"].array())
        assert bc.shape[1] == 5
        assert np.all(bc[:, 0] >= 1) and np.all(bc[:, 3] == 0)


def test_per_particle_layout_one_entry_per_particle(tmp_path):
    truth = simulate_actstrack(
        tmp_path, events=12, seed=4, pileup=1.0, particles_layout="per_particle"
    )
    p = uproot.open(tmp_path / "particles.root")["particles"].arrays(library="np")
    assert len(p["event_id"]) == truth.n_particles.sum()
    ev, n = np.unique(p["event_id"], return_counts=True)
    np.testing.assert_array_equal(ev, truth.event_id)
    np.testing.assert_array_equal(n, truth.n_particles)
    key = p["event_id"].astype(np.uint64) << np.uint64(40) | p["particle_id"] >> np.uint64(24)
    assert len(np.unique(key)) == len(key)  # (event, barcode) unique


# ------------------------------------------------------------------------------------------
# hits: geometry
# ------------------------------------------------------------------------------------------


def test_geometry_id_decodes_to_id_branches(run):
    h = read_hits(run[0])
    g = h["geometry_id"].astype(object)
    for name, branch in [("volume", "volume_id"), ("layer", "layer_id")]:
        shift = {"volume": 56, "layer": 36}[name]
        got = np.array([(int(x) & MASKS[name]) >> shift for x in g[:2000]])
        np.testing.assert_array_equal(got, h[branch][:2000])
    sen = np.array([(int(x) & MASKS["sensitive"]) >> 8 for x in g[:2000]])
    np.testing.assert_array_equal(sen, h["sensitive_id"][:2000])
    assert np.all(h["sensitive_id"] >= 1)
    assert np.all(h["boundary_id"] == 0) and np.all(h["approach_id"] == 0)
    assert np.all(h["layer_id"] % 2 == 0) and np.all(h["layer_id"] >= 2)


def test_hits_lie_on_layers(run):
    h = read_hits(run[0])
    r = np.hypot(h["tx"].astype(np.float64), h["ty"].astype(np.float64))
    z = h["tz"].astype(np.float64)
    vol, lay = h["volume_id"], h["layer_id"]
    n_checked = 0
    for v, radii in BARREL_RADII.items():
        m = vol == v
        expect = np.asarray(radii)[lay[m] // 2 - 1]
        np.testing.assert_allclose(r[m], expect, atol=2e-3)
        assert np.all(np.abs(z[m]) < 1180)
        n_checked += m.sum()
    for v, zs in ENDCAP_DISKS.items():
        m = vol == v
        zz = np.sort(-np.asarray(zs)) if v in NEGATIVE_ENDCAPS else np.asarray(zs)
        np.testing.assert_allclose(z[m], zz[lay[m] // 2 - 1], atol=1e-3)
        n_checked += m.sum()
    pix = np.isin(vol, [7, 8, 9])
    assert np.all(r[pix] < 200) and np.all(r[~pix] > 200)
    assert n_checked == len(r)
    assert set(np.unique(vol)) == {7, 8, 9, 12, 13, 14, 16, 17, 18}


# ------------------------------------------------------------------------------------------
# hits: helix and four-momentum consistency
# ------------------------------------------------------------------------------------------


def test_consecutive_hits_follow_the_field(run):
    """Between two hits only the field acts: |pT|, pz, E are kept; the pT direction turns by
    the angle that a circle of radius pT/(0.3 B) needs to join the two hit positions."""
    a, b = hit_pairs(read_hits(run[0]))
    assert len(a["tx"]) > 10_000
    np.testing.assert_array_equal(b["index"], a["index"] + 1)
    after = {k: a[f"tp{k}"] + a[f"deltap{k}"] for k in "xyz"}
    e_after = a["te"] + a["deltae"]
    p_scale = np.sqrt(b["tpx"] ** 2 + b["tpy"] ** 2 + b["tpz"] ** 2)
    np.testing.assert_allclose(after["z"], b["tpz"], atol=1e-5 * p_scale.max(), rtol=1e-5)
    np.testing.assert_allclose(e_after, b["te"], rtol=1e-5)
    pt_a, pt_b = np.hypot(after["x"], after["y"]), np.hypot(b["tpx"], b["tpy"])
    np.testing.assert_allclose(pt_a, pt_b, rtol=1e-5)

    radius = pt_b / (0.3 * B_FIELD) * 1000.0  # mm
    cross = after["x"] * b["tpy"] - after["y"] * b["tpx"]
    dpsi = np.arctan2(cross, after["x"] * b["tpx"] + after["y"] * b["tpy"])
    chord = np.hypot(b["tx"] - a["tx"], b["ty"] - a["ty"])
    np.testing.assert_allclose(chord, 2 * radius * np.abs(np.sin(dpsi / 2)), rtol=2e-3, atol=0.05)
    arc = radius * np.abs(dpsi)
    dz = b["tz"] - a["tz"]
    np.testing.assert_allclose(dz, arc * b["tpz"] / pt_b, rtol=2e-3, atol=0.05)
    # c t advances by path / beta = path * E / p
    path = np.hypot(arc, dz)
    np.testing.assert_allclose(b["tt"] - a["tt"], path * b["te"] / p_scale, rtol=2e-3, atol=0.05)
    # positive charges turn clockwise (seen from +z) in a field along +z
    parts = particle_table(read_particles(run[0]))
    q_of = {
        (int(e), int(p)): q
        for e, p, q in zip(parts["event_id"], parts["particle_id"], parts["q"], strict=True)
    }
    q = np.array(
        [q_of[(int(e), int(p))] for e, p in zip(a["event_id"], a["particle_id"], strict=True)]
    )
    turn = np.abs(dpsi) > 1e-5
    np.testing.assert_array_equal(np.sign(dpsi[turn]), -q[turn])


def test_hit_four_momenta_and_material(run):
    h = read_hits(run[0])
    p2 = h["tpx"].astype(np.float64) ** 2 + h["tpy"] ** 2 + h["tpz"] ** 2
    parts = particle_table(read_particles(run[0]))
    # te is the energy of the particle's mass: E = sqrt(p^2 + m^2) (float32 rounding aside)
    m_of = dict(
        zip(zip(parts["event_id"], parts["particle_id"], strict=True), parts["m"], strict=True)
    )
    m = np.array(
        [m_of[k] for k in zip(h["event_id"], h["particle_id"], strict=True)], dtype=np.float64
    )
    te = h["te"].astype(np.float64)
    np.testing.assert_allclose(te, np.sqrt(p2 + m**2), rtol=2e-6)
    # energy is lost, never gained, and mostly a few hundred keV to a few MeV
    assert np.all(h["deltae"] <= 0)
    mu = np.abs(parts["particle_type"]) == 13
    mu_keys = set(zip(parts["event_id"][mu], parts["particle_id"][mu], strict=True))
    is_mu = np.array([k in mu_keys for k in zip(h["event_id"], h["particle_id"], strict=True)])
    de = -h["deltae"][is_mu] * 1e3  # MeV
    assert 0.3 < np.median(de) < 3.0
    # scattering angles of fast muons follow Highland: <theta_space^2> = 2 theta0^2
    before = np.stack([h["tpx"], h["tpy"], h["tpz"]], 1).astype(np.float64)[is_mu]
    after = before + np.stack([h["deltapx"], h["deltapy"], h["deltapz"]], 1)[is_mu]
    p = np.linalg.norm(before, axis=1)
    cosang = np.sum(before * after, 1) / (p * np.linalg.norm(after, axis=1))
    ang = np.arccos(np.clip(cosang, -1, 1))
    from hepx.sim.detector_acts import generic_detector

    s = generic_detector()
    # material of the hit's layer (x/X0 by volume/layer) and incidence on it
    x_x0 = {
        (int(v), int(lay)): x for v, lay, x in zip(s.volume_id, s.layer_id, s.x_x0, strict=True)
    }
    xx = np.array(
        [x_x0[(int(v), int(lay))] for v, lay in zip(h["volume_id"], h["layer_id"], strict=True)]
    )
    xx = xx[is_mu]
    barrel = np.isin(h["volume_id"][is_mu], [8, 13, 17])
    pos = np.stack([h["tx"], h["ty"]], 1).astype(np.float64)[is_mu]
    cos_inc = np.where(
        barrel,
        np.abs(np.sum(pos * before[:, :2], 1)) / (np.linalg.norm(pos, axis=1) * p),
        np.abs(before[:, 2]) / p,
    )
    xeff = xx / np.maximum(cos_inc, 0.1)
    theta0 = 0.0136 / p * np.sqrt(xeff) * (1 + 0.038 * np.log(xeff))
    fast = p > 2.0
    assert fast.sum() > 200
    ratio = np.mean(ang[fast] ** 2) / np.mean(2 * theta0[fast] ** 2)
    assert 0.8 < ratio < 1.2


def test_index_and_number_of_hits(run):
    out, truth = run
    h = read_hits(out)
    parts = particle_table(read_particles(out))
    key = h["event_id"].astype(np.uint64) << np.uint64(44) | (
        h["particle_id"] >> np.uint64(24)
    )  # event | vertex_primary | particle
    o = np.lexsort((h["index"], key))
    k, idx = key[o], h["index"][o]
    first = np.r_[True, k[1:] != k[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    np.testing.assert_array_equal(idx, np.arange(len(k)) - start)  # 0, 1, 2, ... per particle
    _, n_per = np.unique(k, return_counts=True)
    nh = parts["number_of_hits"]
    assert n_per.sum() == nh.sum() and np.count_nonzero(nh) == len(n_per)
    tt = h["tt"][o]
    assert np.all(np.diff(tt)[~first[1:]] > 0)  # time increases along a trajectory
    # truth hit counts are the file's
    np.testing.assert_array_equal(np.bincount(h["event_id"], minlength=len(truth)), truth.n_hits)
    # tracks are ACTS-like: ~10 hits, and the kept-10-tracks signal sample is ~100 hits
    mean_hits = nh[nh > 0].mean()
    assert 8 < mean_hits < 14
    sig = truth.is_signal & (truth.pair_n_hits.min(axis=1) > 0)
    assert 7 < truth.pair_n_hits[sig].mean() < 14


# ------------------------------------------------------------------------------------------
# particles and truth
# ------------------------------------------------------------------------------------------


def test_truth_leptons_reconstruct_the_z(run):
    out, truth = run
    parts = particle_table(read_particles(out))
    assert 0.3 < truth.is_signal.mean() < 0.7
    idx = {k: i for i, k in enumerate(zip(parts["event_id"], parts["particle_id"], strict=True))}
    masses = []
    for e in np.flatnonzero(truth.is_signal):
        rows = [idx[(truth.event_id[e], bc)] for bc in truth.lepton_barcode[e]]
        px, py, pz, m = (parts[f][rows].astype(np.float64) for f in ("px", "py", "pz", "m"))
        energy = np.sqrt(px**2 + py**2 + pz**2 + m**2)
        masses.append(math.sqrt(energy.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2))
        assert sorted(parts["q"][rows]) == [-1.0, 1.0]
        np.testing.assert_array_equal(np.abs(parts["particle_type"][rows]), truth.z_flavour[e])
        assert np.all(parts["vertex_primary"][rows] == 1)
    masses = np.array(masses)
    np.testing.assert_allclose(masses, truth.z_mass[truth.is_signal], rtol=1e-4)
    assert np.all((masses > 59) & (masses < 121))
    assert abs(np.median(masses) - 91.19) < 2.0
    assert np.all(np.isnan(truth.z_mass[~truth.is_signal]))
    assert np.all(truth.lepton_barcode[~truth.is_signal] == 0)
    assert set(np.unique(truth.z_flavour)) <= {0, 11, 13}
    np.testing.assert_array_equal(
        truth.z_in_window, truth.is_signal & (np.abs(truth.z_mass - 91.1876) < 2)
    )
    rec = truth.to_awkward()
    assert len(rec) == len(truth) and ak.to_numpy(rec.lepton_barcode).shape == (len(truth), 2)


def test_background_pairs_are_not_z_like(run):
    out, truth = run
    parts = particle_table(read_particles(out))
    idx = {k: i for i, k in enumerate(zip(parts["event_id"], parts["particle_id"], strict=True))}
    bkg = (~truth.is_signal) & (truth.pair_kind > 0)
    assert 0.05 < bkg.sum() / (~truth.is_signal).sum() < 0.35
    for e in np.flatnonzero(bkg):
        rows = [idx[(truth.event_id[e], bc)] for bc in truth.pair_barcode[e]]
        q = parts["q"][rows]
        if truth.pair_kind[e] == actstrack.PAIR_SAME_SIGN:
            assert q[0] == q[1]
        else:
            assert q[0] == -q[1]
            assert abs(truth.pair_mass[e] - 91.1876) > 10
        assert set(np.abs(parts["particle_type"][rows])) <= {11, 13}
    # soft leptons also come from pileup vertices
    soft_lep = np.isin(np.abs(parts["particle_type"]), [11, 13]) & (parts["vertex_primary"] > 1)
    assert soft_lep.sum() > 0


def test_particle_content(run):
    out, truth = run
    p = particle_table(read_particles(out))
    from particle import Particle

    for pdg in np.unique(np.abs(p["particle_type"])):
        ref = Particle.from_pdgid(int(pdg))
        m = np.abs(p["particle_type"]) == pdg
        np.testing.assert_allclose(p["m"][m], ref.mass / 1000.0, rtol=1e-6)
        np.testing.assert_array_equal(
            p["q"][m], np.sign(p["particle_type"][m]) * ref.charge
        )  # charge of the particle (sign flips for the antiparticle)
    assert 0.7 < np.mean(np.abs(p["particle_type"][p["vertex_primary"] > 1]) == 211) < 0.9
    pu = p["vertex_primary"] > 1
    assert np.all(p["pt"][pu] >= 0.149) and 0.3 < np.median(p["pt"][pu]) < 1.0
    assert np.all(np.abs(p["eta"][pu]) <= 3.0001)
    np.testing.assert_allclose(p["pt"], np.hypot(p["px"], p["py"]), rtol=1e-6)
    assert 20 < np.std(p["vz"]) < 80 and np.std(np.hypot(p["vx"], p["vy"])) < 0.1
    # packed barcode agrees with the component branches; generation 0 primaries
    comp = unpack(p["particle_id"])
    for c in BARCODE:
        np.testing.assert_array_equal(comp[c], p[c])
    assert np.all(p["vertex_primary"] >= 1) and np.all(p["generation"] == 0)
    assert np.any(p["vertex_primary"] > 1)  # pileup vertices exist
    np.testing.assert_array_equal(
        np.unique(p["event_id"], return_counts=True)[1], truth.n_particles
    )


# ------------------------------------------------------------------------------------------
# reproducibility and event order
# ------------------------------------------------------------------------------------------


def _arrays(path: Path, name: str) -> ak.Array:
    return uproot.open(path / f"{name}.root")[name].arrays()


def _same(a: ak.Array, b: ak.Array) -> bool:
    return a.fields == b.fields and all(
        len(a[f]) == len(b[f]) and bool(ak.all(a[f] == b[f], axis=None)) for f in a.fields
    )


def test_same_seed_same_arrays_and_chunk_independence(tmp_path):
    kw = {"events": 25, "seed": 5, "pileup": 1.2, "event_order": "sorted"}
    t1 = simulate_actstrack(tmp_path / "a", chunk_size=25, **kw)
    t2 = simulate_actstrack(tmp_path / "b", chunk_size=25, **kw)
    t3 = simulate_actstrack(tmp_path / "c", chunk_size=4, **kw)
    t4 = simulate_actstrack(tmp_path / "d", **{**kw, "seed": 6})
    for name in ("hits", "particles"):
        a = _arrays(tmp_path / "a", name)
        assert _same(a, _arrays(tmp_path / "b", name))
        assert _same(a, _arrays(tmp_path / "c", name))  # sorted files: chunking is invisible
    for f in ("event_id", "is_signal", "z_mass", "lepton_barcode", "n_hits"):
        np.testing.assert_array_equal(getattr(t1, f), getattr(t2, f))
        np.testing.assert_array_equal(getattr(t1, f), getattr(t3, f))
    assert not _same(_arrays(tmp_path / "a", "hits"), _arrays(tmp_path / "d", "hits"))
    assert not np.array_equal(t1.n_hits, t4.n_hits)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and "tmp" in p.name]
    assert leftovers == []


def test_hit_buffer_refill_gives_same_result(tmp_path, monkeypatch):
    kw = {"events": 6, "seed": 9, "pileup": 1.6, "event_order": "sorted"}
    simulate_actstrack(tmp_path / "a", **kw)
    # a tiny hit buffer forces the kernel to stop and resume many times
    monkeypatch.setattr(actstrack, "_HITS_PER_PARTICLE_BUFFER", 0)
    simulate_actstrack(tmp_path / "b", **kw)
    assert _same(_arrays(tmp_path / "a", "hits"), _arrays(tmp_path / "b", "hits"))


def _runs(event_id: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(event_id.astype(np.int64))) + 1)


def test_event_orders(tmp_path):
    kw = {"events": 30, "seed": 2, "pileup": 1.0, "chunk_size": 15}
    truths = {}
    for order in ("sorted", "shuffled", "interleaved"):
        truths[order] = simulate_actstrack(tmp_path / order, event_order=order, **kw)
    h = {o: read_hits(tmp_path / o) for o in truths}
    p = {o: _arrays(tmp_path / o, "particles") for o in truths}
    n_ev_hits = int(np.count_nonzero(truths["sorted"].n_hits))
    # sorted: non-decreasing event ids, events contiguous; within an event by geometry id
    ev = h["sorted"]["event_id"]
    assert np.all(np.diff(ev.astype(np.int64)) >= 0)
    same_ev = ev[1:] == ev[:-1]
    assert np.all(np.diff(h["sorted"]["geometry_id"])[same_ev] >= 0)
    assert np.all(np.diff(p["sorted"]["event_id"].to_numpy().astype(np.int64)) > 0)
    # shuffled: contiguous blocks, not in order, blocks stay within their chunk of 15 events
    ev = h["shuffled"]["event_id"]
    assert _runs(ev) == n_ev_hits and not np.all(np.diff(ev.astype(np.int64)) >= 0)
    half = truths["shuffled"].n_hits[:15].sum()
    assert ev[:half].max() < 15 and ev[half:].min() >= 15
    pev = p["shuffled"]["event_id"].to_numpy().astype(np.int64)
    assert sorted(pev.tolist()) == list(range(30)) and not np.all(np.diff(pev) > 0)
    # interleaved: events are mixed (many more runs than events)
    ev = h["interleaved"]["event_id"]
    assert _runs(ev) > 5 * n_ev_hits
    # same content in every order
    for o in ("shuffled", "interleaved"):
        for f in ("event_id", "geometry_id", "particle_id", "tx", "tpz", "deltae", "index"):
            k_ref = np.lexsort(
                (h["sorted"]["index"], h["sorted"]["particle_id"], h["sorted"]["event_id"])
            )
            k = np.lexsort((h[o]["index"], h[o]["particle_id"], h[o]["event_id"]))
            np.testing.assert_array_equal(h[o][f][k], h["sorted"][f][k_ref])
        np.testing.assert_array_equal(truths[o].n_hits, truths["sorted"].n_hits)


# ------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"events": 0}, "events"),
        ({"events": 2.5}, "events"),
        ({"events": True}, "events"),
        ({"bfield": -1.0}, "bfield"),
        ({"bfield": float("nan")}, "bfield"),
        ({"schema": "v45"}, "'v43', 'v44.0', 'v44.3'"),
        ({"particles_layout": "flat"}, "'per_event', 'per_particle'"),
        ({"event_order": "random"}, "'sorted', 'shuffled', 'interleaved'"),
        ({"signal_fraction": 1.5}, "signal_fraction"),
        ({"pileup_mean": -1}, "pileup_mean"),
        ({"pileup": -1}, "interactions per crossing"),
        ({"pileup": 1.0, "pileup_mean": 5.0}, "not also pileup_mean"),
        ({"generator": "herwig"}, "'fast', 'pythia8'"),
        ({"pool_size": 0}, "pool_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"seed": -3}, "seed"),
        ({"compression": "gzip"}, "zlib"),
        ({"hit_efficiency": 0.0}, "hit_efficiency"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, words):
    args = {"events": 3, **kwargs}
    with pytest.raises(ConfigError, match=None) as err:
        simulate_actstrack(tmp_path / "x", **args)
    msg = str(err.value)
    assert words in msg and "\n" not in msg
    assert not (tmp_path / "x").exists()


def test_old_pileup_mean_keyword_is_converted(tmp_path):
    # pileup_mean counted charged particles; pileup counts interactions of 5 on average
    with pytest.warns(DeprecationWarning, match="pileup=2 interactions per crossing"):
        old = simulate_actstrack(tmp_path / "a", events=5, seed=2, pileup_mean=10)
    new = simulate_actstrack(tmp_path / "b", events=5, seed=2, pileup=2)
    for name, values in old.to_dict().items():
        np.testing.assert_array_equal(values, new.to_dict()[name])
    with pytest.raises(ConfigError, match="give pileup="):
        simulate_actstrack(tmp_path / "c", events=2, generator="pythia8", pileup_mean=10)


def test_out_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file; expected the output directory"):
        simulate_actstrack(f, events=2)


def test_zero_field_gives_straight_tracks(tmp_path):
    simulate_actstrack(tmp_path, events=4, seed=3, bfield=0.0, pileup=1.0, hit_efficiency=1.0)
    a, b = hit_pairs(read_hits(tmp_path))
    d = np.stack([b["tx"] - a["tx"], b["ty"] - a["ty"], b["tz"] - a["tz"]], 1)
    p = np.stack([b["tpx"], b["tpy"], b["tpz"]], 1)
    cos = np.sum(d * p, 1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(p, axis=1))
    assert np.all(cos > 1 - 1e-6)  # the step between hits is along the momentum
    np.testing.assert_allclose(a["tpx"] + a["deltapx"], b["tpx"], atol=1e-5)


# ------------------------------------------------------------------------------------------
# helpers: random numbers and kinematics
# ------------------------------------------------------------------------------------------


def test_mix64_numpy_and_numba_agree():
    x = np.array([0, 1, 2**63, 2**64 - 1, 12345678901234567], dtype=np.uint64)
    np.testing.assert_array_equal(
        kin.mix64(x), np.array([kin.mix64_scalar(v) for v in x], dtype=np.uint64)
    )
    u = kin.uniform(7, np.arange(100_000))
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005


def test_boost_matches_vector_package():
    vector = pytest.importorskip("vector")
    rng = np.random.default_rng(1)
    p = rng.normal(size=(200, 3)) * 10
    m = rng.uniform(0.1, 5, 200)
    p4 = np.column_stack([np.sqrt(m**2 + np.sum(p**2, 1)), p])
    beta = rng.normal(size=(200, 3))
    beta *= rng.uniform(0, 0.99, (200, 1)) / np.linalg.norm(beta, axis=1, keepdims=True)
    got = kin.boost(p4, beta)
    v = vector.array({"px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "E": p4[:, 0]})
    b = vector.array({"x": beta[:, 0], "y": beta[:, 1], "z": beta[:, 2]})
    ref = v.boost_beta3(b)
    np.testing.assert_allclose(got[:, 1], ref.px, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[:, 3], ref.pz, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[:, 0], ref.E, rtol=1e-9)


def test_two_body_decay_conserves_four_momentum():
    rng = np.random.default_rng(2)
    parent = kin.p4_from_pt_y_phi_m(
        rng.uniform(0, 50, 100), rng.normal(0, 2, 100), rng.uniform(-3, 3, 100), np.full(100, 91.2)
    )
    ml = np.full(100, 0.1057)
    d1, d2 = kin.two_body_decay(parent, ml, ml, rng.uniform(-1, 1, 100), rng.uniform(0, 6, 100))
    np.testing.assert_allclose(d1 + d2, parent, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(kin.invariant_mass(d1), 0.1057, rtol=1e-5)


def test_breit_wigner_and_poisson_samplers():
    u = kin.uniform(3, np.arange(200_000))
    m = kin.sample_relativistic_bw(u, 91.1876, 2.4952, 60.0, 120.0)
    assert m.min() >= 60 and m.max() <= 120
    # Cauchy in s = m^2: half of the untruncated mass lies in s = M^2 +- M Gamma; the
    # truncation to [60, 120] GeV keeps the fraction `kept` of it.
    mz, gz = 91.1876, 2.4952
    assert abs(np.median(m) - mz) < 0.05
    q1, q3 = np.sqrt(mz**2 + np.array([-1, 1]) * mz * gz)
    kept = (
        np.arctan((120**2 - mz**2) / (mz * gz)) - np.arctan((60**2 - mz**2) / (mz * gz))
    ) / np.pi
    frac = np.mean((m > q1) & (m < q3))
    assert abs(frac - 0.5 / kept) < 0.005
    n = kin.poisson(u[:50_000], 25.0)
    assert abs(n.mean() - 25) < 0.1 and abs(n.var() - 25) < 1.0


@pytest.mark.slow
def test_statistics_10k(tmp_path):
    # no timing assertion here (the machine is shared): benchmarks/ingest.py measures speed
    truth = simulate_actstrack(tmp_path, events=10_000, seed=0)
    sig = truth.is_signal
    assert 0.6 < truth.z_in_window[sig].mean() < 0.75  # ~0.68 for the truncated Breit-Wigner
    assert 250 < truth.n_hits.mean() < 400
