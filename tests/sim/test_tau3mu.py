"""Tests of the built-in CMS endcap muon simulation for Tau3Mu (hepx.sim.tau3mu)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from hepx.errors import ConfigError, InputError
from hepx.sim.tau3mu import BLOCK_EVENTS, simulate_tau3mu

TREE = "Ntuplizer/MuonTrackTree"
M_TAU = 1.77686
M_MU = 0.1056584

HIT_TYPES = {
    "endcap": "int16_t",
    "station": "int16_t",
    "ring": "int16_t",
    "sector": "int16_t",
    "subsector": "int16_t",
    "chamber": "int16_t",
    "cscid": "int16_t",
    "bx": "int16_t",
    "type": "int16_t",
    "neighbor": "int16_t",
    "strip": "int16_t",
    "wire": "int16_t",
    "roll": "int16_t",
    "quality": "int16_t",
    "pattern": "int16_t",
    "bend": "int16_t",
    "time": "int16_t",
    "fr": "int16_t",
    "emtf_phi": "int32_t",
    "emtf_theta": "int32_t",
    "sim_phi": "float",
    "sim_theta": "float",
    "sim_eta": "float",
    "sim_r": "float",
    "sim_z": "float",
    "truth_tau": "int16_t",
}
GEN_MU_TYPES = {
    "pt": "float",
    "eta": "float",
    "phi": "float",
    "e": "float",
    "charge": "int16_t",
    "gentauidx": "int16_t",
}
GEN_TAU_TYPES = {"pt": "float", "eta": "float", "phi": "float", "e": "float", "charge": "int16_t"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("tau3mu")
    truth = simulate_tau3mu(out, events=3000, seed=7, chunk_size=1000)
    with uproot.open(out / "ntuple.root") as f:
        tree = f[TREE]
        arrays = tree.arrays()
        typenames = {k: tree[k].typename for k in tree.keys()}
        counts = {
            k: (tree[k].count_branch.name if tree[k].count_branch is not None else None)
            for k in tree.keys()
        }
        classnames = f.classnames()
    return {
        "out": out,
        "truth": truth,
        "a": arrays,
        "typenames": typenames,
        "count_branch": counts,
        "classnames": classnames,
    }


def _flat(a, name):
    return ak.to_numpy(ak.flatten(a[name]))


def _hit_event(a):
    return np.repeat(np.arange(len(a)), ak.to_numpy(a["n_mu_hit"]))


def _gen_of_hit(a):
    """Flat index into the flattened gen_mu arrays for each hit (-1 if none)."""
    tp = _flat(a, "mu_hit_sim_tp").astype(np.int64)
    first = np.concatenate([[0], np.cumsum(ak.to_numpy(a["n_gen_mu"]))[:-1]])
    return np.where(tp >= 0, first[_hit_event(a)] + tp, -1)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def test_tree_path_and_classes(sim):
    assert sim["classnames"]["Ntuplizer;1"] == "TDirectory"
    assert sim["classnames"]["Ntuplizer/MuonTrackTree;1"] == "TTree"
    assert (sim["out"] / "ntuple.root").is_file()
    # nothing half-written left behind
    assert [p.name for p in sim["out"].iterdir()] == ["ntuple.root"]


@pytest.mark.parametrize(
    ("prefix", "types"),
    [("mu_hit", HIT_TYPES), ("gen_mu", GEN_MU_TYPES), ("gen_tau", GEN_TAU_TYPES)],
)
def test_branch_names_types_and_shared_counter(sim, prefix, types):
    tn = sim["typenames"]
    assert tn[f"n_{prefix}"] == "int32_t"
    for field, typ in types.items():
        name = f"{prefix}_{field}"
        assert tn[name] == typ + "[]", name
        assert sim["count_branch"][name] == f"n_{prefix}", name
    # one counter per collection, nothing else named like a counter of it
    assert not any(k.startswith(f"n_{prefix}_") for k in tn)


def test_trigger_and_truth_link_branches(sim):
    tn = sim["typenames"]
    assert tn["n_EMTF_mu"] == "int32_t"
    for f in ("pt", "eta", "phi"):
        assert tn[f"EMTF_mu_{f}"] == "float[]"
    assert tn["EMTF_mu_charge"] == "int16_t[]"
    assert tn["mu_hit_sim_tp"] == "int16_t[]"


def test_counters_equal_jagged_lengths(sim):
    a = sim["a"]
    for prefix in ("mu_hit", "gen_mu", "gen_tau", "EMTF_mu"):
        n = ak.to_numpy(a[f"n_{prefix}"])
        for name in a.fields:
            if name.startswith(prefix + "_"):
                assert np.array_equal(ak.to_numpy(ak.num(a[name])), n), name
    assert ak.sum(a["n_mu_hit"]) > 0


# ---------------------------------------------------------------------------------------------
# Ranges and geometry
# ---------------------------------------------------------------------------------------------


def test_ranges(sim):
    a = sim["a"]
    h = {f: _flat(a, "mu_hit_" + f) for f in HIT_TYPES}
    assert set(np.unique(h["endcap"])) == {-1, 1}
    assert set(np.unique(h["station"])) == {1, 2, 3, 4}
    assert set(np.unique(h["type"])) == {0, 1, 2, 3, 4}
    assert h["ring"].min() >= 1 and h["ring"].max() <= 4
    assert set(np.unique(h["sector"])) == set(range(1, 7))
    assert h["chamber"].min() >= 1 and h["chamber"].max() <= 36
    assert set(np.unique(h["neighbor"])) == {0, 1}
    assert np.all((h["sim_phi"] > -180.0) & (h["sim_phi"] <= 180.0))
    eta = np.abs(h["sim_eta"])
    typ = h["type"]
    assert np.all((eta[typ != 0] > 1.2) & (eta[typ != 0] < 2.8))
    assert np.all((eta[typ == 1] > 1.2) & (eta[typ == 1] < 2.4))
    assert np.all(eta[typ == 4] > 2.0) and np.all(h["station"][typ == 4] == 1)
    assert np.all((eta[typ == 3] > 1.55) & (eta[typ == 3] < 2.46))
    assert np.all((eta[typ == 0] > 0.9) & (eta[typ == 0] < 1.2))
    # endcap = sign of eta and z
    assert np.array_equal(np.sign(h["sim_eta"]), h["endcap"])
    assert np.array_equal(np.sign(h["sim_z"]), h["endcap"])
    # bend: CSC [-16, 15], ME0 [-64, 63], RPC and GEM none
    assert h["bend"][typ == 1].min() >= -16 and h["bend"][typ == 1].max() <= 15
    assert h["bend"][typ == 4].min() >= -64 and h["bend"][typ == 4].max() <= 63
    assert np.all(h["bend"][(typ == 2) | (typ == 3)] == 0)
    assert h["emtf_theta"].min() >= 0 and h["emtf_theta"].max() <= 127
    assert set(np.unique(h["truth_tau"])) <= {0, 1}
    # ME1/1 and ME0 are station 1; ring 4 (ME1/1a) only for CSC station 1 at high eta
    r4 = h["ring"] == 4
    assert np.all((typ[r4] == 1) & (h["station"][r4] == 1) & (eta[r4] > 2.1))


def test_geometry_consistency(sim):
    a = sim["a"]
    eta = _flat(a, "mu_hit_sim_eta").astype(np.float64)
    theta = np.radians(_flat(a, "mu_hit_sim_theta").astype(np.float64))
    r = _flat(a, "mu_hit_sim_r").astype(np.float64)
    z = _flat(a, "mu_hit_sim_z").astype(np.float64)
    np.testing.assert_allclose(-np.log(np.tan(theta / 2)), eta, atol=1e-4)
    np.testing.assert_allclose(np.arcsinh(z / r), eta, atol=1e-4)
    np.testing.assert_allclose(np.arctan2(r, z), theta, atol=1e-5)
    # stations at realistic |z| (cm): ME1 6-7 m, ME2 ~8.3 m, ME3 ~9.3 m, ME4 ~10.3 m
    typ, st = _flat(a, "mu_hit_type"), _flat(a, "mu_hit_station")
    az = np.abs(z)
    windows = {1: (590, 710), 2: (820, 840), 3: (925, 945), 4: (1015, 1035)}
    for s, (lo, hi) in windows.items():
        m = (typ == 1) & (st == s)
        assert m.any() and az[m].min() >= lo and az[m].max() <= hi, s
    assert np.all((az[typ == 4] > 500) & (az[typ == 4] < 560))  # ME0 in front of ME1/1
    # sectors: 60 degrees starting at 15 degrees; emtf_phi in 1/60 degree from sector - 22 deg
    phi, sector = _flat(a, "mu_hit_sim_phi").astype(np.float64), _flat(a, "mu_hit_sector")
    nb = _flat(a, "mu_hit_neighbor")
    own = nb == 0
    expect_sector = np.floor(np.mod(phi - 15.0, 360.0) / 60.0) + 1
    assert np.array_equal(expect_sector[own & (typ != 0)], sector[own & (typ != 0)])
    origin = 15.0 + 60.0 * (sector - 1) - 22.0
    emtf_phi = _flat(a, "mu_hit_emtf_phi")
    assert np.all(np.abs(np.mod(phi - origin, 360.0) * 60.0 - emtf_phi) <= 1.0)


def test_neighbor_copies_duplicate_real_hits(sim):
    a = sim["a"]
    evt = _hit_event(a)
    cols = ["sim_phi", "sim_eta", "sim_z", "type", "station", "chamber", "bend", "sector"]
    h = {c: _flat(a, "mu_hit_" + c) for c in cols}
    nb = _flat(a, "mu_hit_neighbor")
    key = ("sim_phi", "sim_eta", "sim_z", "type", "station", "chamber", "bend")
    originals = {(evt[i], *(h[c][i] for c in key)): h["sector"][i] for i in np.flatnonzero(nb == 0)}
    copies = np.flatnonzero(nb == 1)
    assert len(copies) > 0
    for i in copies:
        k = (evt[i], *(h[c][i] for c in key))
        assert k in originals
        assert h["sector"][i] == originals[k] % 6 + 1  # shared with the next sector
    # Independent rule: the last chamber (highest phi) of each sector is copied; chambers are
    # 20 degrees for ME0 and ring 1 of stations 2-4, else 10 degrees; DT is never copied.
    typ, st, ring = h["type"], h["station"], _flat(a, "mu_hit_ring")
    width = np.where((typ == 4) | ((st >= 2) & (ring == 1)), 20.0, 10.0)
    d = np.mod(h["sim_phi"].astype(np.float64) - 15.0, 60.0)
    near_edge = (nb == 0) & (typ != 0) & (d >= 60.0 - width)
    assert near_edge.sum() == len(copies)
    assert not np.any((nb == 1) & (typ == 0))


# ---------------------------------------------------------------------------------------------
# Physics: bend, truth, decay kinematics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hit_type", [1, 4])  # CSC, ME0
def test_bend_follows_charge_and_falls_with_pt(sim, hit_type):
    a = sim["a"]
    gi = _gen_of_hit(a)
    keep = (gi >= 0) & (_flat(a, "mu_hit_type") == hit_type) & (_flat(a, "mu_hit_neighbor") == 0)
    bend = _flat(a, "mu_hit_bend")[keep].astype(np.float64)
    q = _flat(a, "gen_mu_charge")[gi[keep]]
    pt = _flat(a, "gen_mu_pt")[gi[keep]]
    assert len(bend) > 200
    assert np.corrcoef(bend, q)[0, 1] > 0.5
    assert np.mean(np.sign(bend[bend != 0]) == q[bend != 0]) > 0.85
    b_lo, b_mid, b_hi = (np.abs(bend[m]).mean() for m in (pt < 3, (pt >= 3) & (pt < 6), pt >= 6))
    assert b_lo > b_mid > b_hi


def test_phi_drifts_with_station_like_q_over_pt(sim):
    """CSC hits of one muon: phi(station 2) - phi(station 1) has the sign of the charge."""
    a = sim["a"]
    gi = _gen_of_hit(a)
    typ, st, nb = _flat(a, "mu_hit_type"), _flat(a, "mu_hit_station"), _flat(a, "mu_hit_neighbor")
    phi = _flat(a, "mu_hit_sim_phi").astype(np.float64)
    eta = _flat(a, "mu_hit_sim_eta").astype(np.float64)
    n_gen = int(ak.sum(a["n_gen_mu"]))
    per = {}
    for s in (1, 2):
        m = (gi >= 0) & (typ == 1) & (st == s) & (nb == 0)
        arr_phi = np.full(n_gen, np.nan)
        arr_eta = np.full(n_gen, np.nan)
        arr_phi[gi[m]], arr_eta[gi[m]] = phi[m], eta[m]
        per[s] = (arr_phi, arr_eta)
    both = ~np.isnan(per[1][0]) & ~np.isnan(per[2][0])
    assert both.sum() > 100
    dphi = np.mod(per[2][0][both] - per[1][0][both] + 180.0, 360.0) - 180.0
    deta = per[2][1][both] - per[1][1][both]
    q = _flat(a, "gen_mu_charge")[both]
    pt = _flat(a, "gen_mu_pt")[both]
    assert np.median(np.abs(deta)) < 0.05  # aligned in eta
    assert np.corrcoef(dphi, q / pt)[0, 1] > 0.5  # drift ~ q / pT


def test_truth_branch_marks_exactly_the_tau_muon_hits(sim):
    a = sim["a"]
    gi = _gen_of_hit(a)
    truth = _flat(a, "mu_hit_truth_tau")
    gentau = _flat(a, "gen_mu_gentauidx")
    expect = (gi >= 0) & (gentau[np.maximum(gi, 0)] >= 0)
    assert np.array_equal(truth == 1, expect)
    is_sig = ak.to_numpy(a["n_gen_tau"]) > 0
    n_truth = ak.to_numpy(ak.sum(a["mu_hit_truth_tau"], axis=1))
    assert np.all(n_truth[~is_sig] == 0)
    assert np.mean(n_truth[is_sig] > 0) > 0.9
    # background events do contain real (non-tau) muons sometimes: "muons" is not the signal
    bkg_mu = ak.to_numpy(ak.any(a["mu_hit_sim_tp"] >= 0, axis=1))[~is_sig]
    assert 0.05 < bkg_mu.mean() < 0.6


def test_signal_decay_kinematics(sim):
    a = sim["a"]
    sig = a[a["n_gen_tau"] == 1]
    assert len(sig) > 400 and np.all(ak.to_numpy(a["n_gen_tau"]) <= 1)
    is_tau_mu = sig["gen_mu_gentauidx"] == 0
    tau_mu = ak.zip({k: sig["gen_mu_" + k][is_tau_mu] for k in ("pt", "eta", "phi", "charge")})
    assert np.all(ak.to_numpy(ak.num(tau_mu)) == 3)
    # charges: two like the tau, one opposite
    q_sum = ak.to_numpy(ak.sum(tau_mu.charge, axis=1))
    assert np.array_equal(q_sum, ak.to_numpy(ak.flatten(sig["gen_tau_charge"])))
    # invariant mass of the three muons = tau mass
    pt, eta, phi = (
        ak.to_numpy(getattr(tau_mu, k)).astype(np.float64) for k in ("pt", "eta", "phi")
    )
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + M_MU**2)
    m2 = e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2
    np.testing.assert_allclose(np.sqrt(m2), M_TAU, atol=5e-3)
    # soft muons (a few GeV), collimated around the tau
    assert 1.0 < np.median(pt) < 6.0
    t_eta = ak.to_numpy(ak.flatten(sig["gen_tau_eta"])).astype(np.float64)
    t_phi = ak.to_numpy(ak.flatten(sig["gen_tau_phi"])).astype(np.float64)
    dphi = np.mod(phi - t_phi[:, None] + np.pi, 2 * np.pi) - np.pi
    assert np.median(np.hypot(eta - t_eta[:, None], dphi)) < 0.4
    # the tau itself: on shell
    tp = ak.to_numpy(ak.flatten(sig["gen_tau_pt"])).astype(np.float64)
    te = ak.to_numpy(ak.flatten(sig["gen_tau_e"])).astype(np.float64)
    np.testing.assert_allclose(np.sqrt(te**2 - (tp * np.cosh(t_eta)) ** 2), M_TAU, rtol=2e-2)


def test_returned_truth_matches_file(sim):
    a, tr = sim["a"], sim["truth"]
    assert len(tr) == len(a) == 3000
    assert np.array_equal(tr.is_signal, ak.to_numpy(a["n_gen_tau"]) > 0)
    assert np.array_equal(tr.n_hits, ak.to_numpy(a["n_mu_hit"]))
    assert np.array_equal(tr.n_sig_hits, ak.to_numpy(ak.sum(a["mu_hit_truth_tau"], axis=1)))
    sel = (a["mu_hit_station"] == 1) & (a["mu_hit_neighbor"] == 0) & (a["mu_hit_type"] != 0)
    assert np.array_equal(tr.n_hits_filtered, ak.to_numpy(ak.sum(sel, axis=1)))
    sig_sel = sel & (a["mu_hit_truth_tau"] == 1)
    assert np.array_equal(tr.n_sig_hits_filtered, ak.to_numpy(ak.sum(sig_sel, axis=1)))
    # tau muons with an endcap hit = distinct sim_tp among truth hits outside DT, no copies
    endcap = (a["mu_hit_truth_tau"] == 1) & (a["mu_hit_type"] != 0) & (a["mu_hit_neighbor"] == 0)
    tp = a["mu_hit_sim_tp"][endcap]
    n_distinct = sum(
        ak.to_numpy(ak.any(tp == k, axis=1)).astype(int) for k in range(3)
    )  # tau muons are gen_mu 0, 1, 2
    assert np.array_equal(tr.n_tau_mu_endcap, n_distinct)
    rec = tr.to_awkward()
    assert len(rec) == 3000 and "n_sig_hits_filtered" in rec.fields
    # the fast generator scales its pileup rates (no interaction count); its taus come from Ds
    assert np.all(tr.n_pileup == -1)
    q = np.zeros(len(a), dtype=np.int64)
    q[tr.is_signal] = ak.to_numpy(ak.firsts(a["gen_tau_charge"][tr.is_signal]))
    np.testing.assert_array_equal(tr.tau_parent, 431 * q)


def test_filtered_statistics_match_the_paper(sim):
    """After the standard filters: ~10-30 hits per event, ~5 signal hits in signal events."""
    tr = sim["truth"]
    keep = tr.n_hits_filtered >= 3
    assert keep.mean() > 0.95
    assert 12.0 < tr.n_hits_filtered[keep].mean() < 22.0  # paper: 16.9
    assert 0.2 < tr.is_signal.mean() < 0.28  # 24/76
    sig = tr.n_sig_hits_filtered[tr.is_signal]
    assert 4.0 < sig.mean() < 6.5
    assert 4.5 < sig[sig >= 3].mean() < 6.5  # paper: 5.5 among positives
    assert 0.6 < np.mean(sig >= 3) < 0.95
    # signal hits are a minority of the hits in signal events (not trivially separable)
    assert sig.mean() / tr.n_hits_filtered[tr.is_signal].mean() < 0.45


def test_no_pileup_gives_only_signal_hits(tmp_path):
    tr = simulate_tau3mu(tmp_path, events=200, seed=3, signal_fraction=1.0, pileup=0)
    assert tr.is_signal.all()
    assert np.array_equal(tr.n_hits, tr.n_sig_hits)
    a = uproot.open(tmp_path / "ntuple.root")[TREE].arrays(["n_gen_mu", "mu_hit_sim_tp"])
    assert np.all(ak.to_numpy(a["n_gen_mu"]) == 3)
    assert ak.all(a["mu_hit_sim_tp"] >= 0)


# ---------------------------------------------------------------------------------------------
# Reproducibility, chunking, arguments
# ---------------------------------------------------------------------------------------------


def _read_all(path):
    with uproot.open(path / "ntuple.root") as f:
        return f[TREE].arrays()


def test_same_seed_identical_and_chunking_invariant(tmp_path):
    n = BLOCK_EVENTS + 300  # spans two generation blocks
    simulate_tau3mu(tmp_path / "a", events=n, seed=11, chunk_size=10000)
    simulate_tau3mu(tmp_path / "b", events=n, seed=11, chunk_size=777, compression=None)
    simulate_tau3mu(tmp_path / "c", events=500, seed=11)
    simulate_tau3mu(tmp_path / "d", events=500, seed=12)
    a, b, c, d = (_read_all(tmp_path / x) for x in "abcd")
    assert a.fields == b.fields
    for name in a.fields:
        assert ak.array_equal(a[name], b[name]), name  # same seed, other chunk size
        assert ak.array_equal(a[name][:500], c[name]), name  # prefix property
    assert not ak.array_equal(c["mu_hit_sim_phi"], d["mu_hit_sim_phi"])


def test_out_dir_is_created_and_file_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "new" / "dir"
    simulate_tau3mu(out, events=20, seed=1)
    before = (out / "ntuple.root").read_bytes()
    with pytest.raises(InputError, match=r"ntuple.root exists; .* pass --overwrite"):
        simulate_tau3mu(out, events=30, seed=1)
    assert (out / "ntuple.root").read_bytes() == before
    simulate_tau3mu(out, events=30, seed=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["ntuple.root"]
    assert uproot.open(out / "ntuple.root")[TREE].num_entries == 30


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"events": 0}, "events"),
        ({"events": 2.5}, "events"),
        ({"events": True}, "events"),
        ({"events": 10, "seed": -1}, "seed"),
        ({"events": 10, "seed": "x"}, "seed"),
        ({"events": 10, "signal_fraction": 1.5}, "signal_fraction"),
        ({"events": 10, "signal_fraction": float("nan")}, "signal_fraction"),
        ({"events": 10, "pileup": -1}, "pileup"),
        ({"events": 10, "chunk_size": 0}, "chunk_size"),
        ({"events": 10, "compression": "gzip"}, "compression"),
        ({"events": 10, "compression": "zlib:x"}, "compression"),
        ({"events": 10, "compression": 3}, "compression"),
        ({"events": 10, "generator": "herwig"}, "generator"),
        ({"events": 10, "pool_size": 0}, "pool_size"),
        ({"events": 10, "progress": "yes"}, "progress"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, word):
    with pytest.raises(ConfigError) as err:
        simulate_tau3mu(tmp_path, **kwargs)
    msg = str(err.value)
    assert word in msg and "\n" not in msg
    assert not (tmp_path / "ntuple.root").exists()


def test_out_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file; expected the output directory"):
        simulate_tau3mu(f, events=10)


@pytest.mark.slow
def test_large_sample_statistics(tmp_path):
    tr = simulate_tau3mu(tmp_path, events=40000, seed=5)
    keep = tr.n_hits_filtered >= 3
    assert 14.0 < tr.n_hits_filtered[keep].mean() < 20.0
    sig = tr.n_sig_hits_filtered[tr.is_signal]
    assert 5.0 < sig[sig >= 3].mean() < 6.5
    assert abs(tr.is_signal.mean() - 0.24) < 0.01
