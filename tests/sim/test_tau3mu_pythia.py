"""``hepx simulate tau3mu --generator pythia8``: Ds/B -> tau -> 3 mu from Pythia 8 over a
minimum-bias pileup pool, in the layout of the fast generator's ntuple."""

from __future__ import annotations

import sys

import awkward as ak
import numpy as np
import pytest
import uproot
from particle.pdgid import has_bottom

from hepx.cli import main
from hepx.data import load_dataset
from hepx.errors import ConfigError
from hepx.sim.pythia import pythia_seed
from hepx.sim.tau3mu import simulate_tau3mu
from hepx.sim.tau3mu_pythia import (
    PARENT_ABS_ETA,
    PARENT_PT_MIN,
    SignalSource,
    muon_pool,
    run_key,
)

TREE = "Ntuplizer/MuonTrackTree"
SEED = 4
KW = {"seed": SEED, "signal_fraction": 0.5, "pileup": 60, "pool_size": 400, "progress": False}
M_TAU = 1.77686


@pytest.fixture(scope="module")
def pythia():
    return pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def run(pythia, tmp_path_factory):
    out = tmp_path_factory.mktemp("tau3mu_pythia")
    truth = simulate_tau3mu(out, events=30, generator="pythia8", **KW)
    return out, truth


def _read(out) -> ak.Array:
    with uproot.open(out / "ntuple.root") as f:
        return f[TREE].arrays()


def test_same_seed_same_file_for_any_chunking_and_length(run, tmp_path):
    out, truth = run
    again = simulate_tau3mu(tmp_path, events=20, generator="pythia8", chunk_size=7, **KW)
    a, b = _read(out), _read(tmp_path)
    assert a.fields == b.fields
    for name in a.fields:  # the first 20 events, cut into chunks of 7
        assert ak.array_equal(a[name][:20], b[name]), name
    for name in ("is_signal", "n_hits", "n_pileup", "tau_parent"):
        np.testing.assert_array_equal(getattr(truth, name)[:20], getattr(again, name))
    assert pythia_seed(run_key(SEED), "tau3mu-signal", 1) != pythia_seed(
        run_key(SEED + 1), "tau3mu-signal", 1
    )


def _p3(pt, eta, phi) -> np.ndarray:
    pt, eta, phi = (np.asarray(x, dtype=np.float64) for x in (pt, eta, phi))
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=-1)


def _check_event(prt: ak.Record, ev: ak.Record, sign: int) -> None:
    """One signal event of the file against Pythia's record of it."""
    ids = ak.to_numpy(prt["id"])
    mother, d1, d2 = (ak.to_numpy(prt[k]) for k in ("mother1", "daughter1", "daughter2"))
    p = np.stack([ak.to_numpy(prt["p"][k]) for k in ("px", "py", "pz")], axis=1)
    taus = [t for t in np.flatnonzero(ids == -15 * sign) if d2[t] - d1[t] == 2]
    taus = [t for t in taus if np.all(np.abs(ids[d1[t] : d2[t] + 1]) == 13)]
    assert len(taus) == ev["n_gen_tau"] >= 1
    in_filter = False
    for k, t in enumerate(taus):
        parent = int(ids[mother[t]])  # the tau comes from a Ds or a b hadron
        assert abs(parent) == 431 or has_bottom(parent)
        pt_parent = np.hypot(*p[mother[t], :2])
        eta_parent = np.arcsinh(p[mother[t], 2] / pt_parent)
        in_filter |= pt_parent > PARENT_PT_MIN and PARENT_ABS_ETA[0] < abs(eta_parent) < 2.6
        tau_file = _p3(ev["gen_tau_pt"][k], ev["gen_tau_eta"][k], ev["gen_tau_phi"][k])
        np.testing.assert_allclose(tau_file, p[t], rtol=1e-5, atol=1e-5)
        assert ev["gen_tau_charge"][k] == sign
        # the written tau muons are the three muon daughters of this tau
        mine = ak.to_numpy(ev["gen_mu_gentauidx"]) == k
        mu_file = _p3(*(ev["gen_mu_" + a][mine] for a in ("pt", "eta", "phi")))
        mu_pythia = p[d1[t] : d2[t] + 1]
        np.testing.assert_allclose(
            mu_file[np.argsort(mu_file[:, 2])],
            mu_pythia[np.argsort(mu_pythia[:, 2])],
            rtol=1e-5,
            atol=1e-5,
        )
        e = np.sqrt((mu_pythia**2).sum(axis=1) + 0.1056584**2).sum()
        assert abs(np.sqrt(e**2 - (mu_pythia.sum(axis=0) ** 2).sum()) - M_TAU) < 1e-3
        charges = ak.to_numpy(ev["gen_mu_charge"][mine])
        assert sorted(charges) == sorted([sign, sign, -sign])
    assert in_filter
    # hits carry truth exactly when they come from a tau muon
    tp = ak.to_numpy(ev["mu_hit_sim_tp"])
    from_tau = np.zeros(len(tp), bool)
    gentau = ak.to_numpy(ev["gen_mu_gentauidx"])
    from_tau[tp >= 0] = gentau[tp[tp >= 0]] >= 0
    np.testing.assert_array_equal(ak.to_numpy(ev["mu_hit_truth_tau"]) == 1, from_tau)


def test_signal_muons_are_tau_daughters_in_pythias_record(run):
    out, truth = run
    a = _read(out)
    src = SignalSource(run_key(SEED))  # the same instances: the same events in the same order
    sig = np.flatnonzero(truth.is_signal)
    assert 5 < len(sig) < 25 and np.all(ak.to_numpy(a["n_gen_tau"])[~truth.is_signal] == 0)
    sign_of = np.array([int(a["gen_tau_charge"][i][0]) for i in sig])
    checked = 0
    for sign in (+1, -1):
        rows = sig[sign_of == sign]
        records = src.records(sign, len(rows))
        for i, row in enumerate(rows):
            _check_event(records[i]["prt"], a[row], sign)
            assert truth.tau_parent[row] * sign > 0  # Ds+ / B+ ... give tau+
            checked += 1
    assert checked == len(sig)
    assert np.sum(truth.n_sig_hits[sig] > 0) >= len(sig) // 2  # most taus leave hits


def test_pileup_interactions_and_muons_are_poisson(pythia, tmp_path):
    mu, events, pool_size, seed = 40.0, 300, 300, 9
    truth = simulate_tau3mu(
        tmp_path,
        events=events,
        seed=seed,
        signal_fraction=0.0,
        pileup=mu,
        pool_size=pool_size,
        generator="pythia8",
        progress=False,
    )
    n = truth.n_pileup
    assert abs(n.mean() - mu) < 4 * np.sqrt(mu / events)
    assert abs(n.var() - mu) < 4 * np.sqrt((mu + 2 * mu**2) / events)
    assert not truth.is_signal.any() and np.all(truth.tau_parent == 0)
    # pileup muons: a compound Poisson of the pool's muons (those that can reach a layer)
    pool = muon_pool(pool_size, run_key(seed), progress=False)
    p = np.linalg.norm(pool.p4[:, :3], axis=1)
    eta = np.arcsinh(pool.p4[:, 2] / np.hypot(pool.p4[:, 0], pool.p4[:, 1]))
    # the model's lowest p_min (2.8 GeV) less 5 sigma of straggling; its layers' |eta| +- 0.2
    reach = (p > 2.8 * np.exp(-0.4)) & (np.abs(eta) > 0.7) & (np.abs(eta) < 3.0)
    c = np.bincount(np.repeat(np.arange(len(pool)), pool.counts)[reach], minlength=len(pool))
    n_mu = ak.to_numpy(_read(tmp_path)["n_gen_mu"])
    mean, var = mu * c.mean(), mu * (c**2).mean()
    assert abs(n_mu.mean() - mean) < 4 * np.sqrt(var / events) + 0.05
    assert n_mu.max() <= n.max() * c.max()


def test_hepx_convert_tau3mu_reads_the_pythia_file(run, tmp_path):
    out, truth = run
    ds = tmp_path / "ds"
    assert main(["-q", "convert", "tau3mu", str(out / "ntuple.root"), "--out", str(ds)]) == 0
    data = load_dataset(ds)
    keep = (truth.n_hits_filtered >= 3) & (~truth.is_signal | (truth.n_sig_hits_filtered >= 3))
    assert len(data) == keep.sum() > 0
    labels = data.labels.numpy()
    assert labels.sum() == (keep & truth.is_signal).sum()
    important = sorted(int(data[i].node_label.sum()) for i in np.flatnonzero(labels > 0))
    assert important == sorted(truth.n_sig_hits_filtered[keep & truth.is_signal])


def test_command_line_options(pythia, tmp_path):
    out = tmp_path / "cli"
    argv = ["-q", "simulate", "tau3mu", "--generator", "pythia8", "--events", "2"]
    argv += ["--pileup", "0", "--signal-fraction", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    a = _read(out)
    assert ak.to_numpy(a["n_gen_tau"]).tolist() == [1, 1]


def test_without_pythia_the_command_names_the_install_command(tmp_path, capsys, monkeypatch):
    for name in ("pythia8mc", "pythia8"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    out = tmp_path / "never"
    argv = ["simulate", "tau3mu", "--generator", "pythia8", "--events", "2", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hepx: error: ")
    assert "pip install 'hepx[pythia]'" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"hepx\[pythia\]"):
        simulate_tau3mu(out, events=2, generator="pythia8")
