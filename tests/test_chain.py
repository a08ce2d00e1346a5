"""Simulation -> reader -> dataset: labels checked against the generator's own truth record."""

import awkward as ak
import numpy as np
import pytest

from hepx.data import convert, load_dataset
from hepx.io import read_acts, read_cms_muon
from hepx.sim import simulate_actstrack, simulate_tau3mu
from hepx.sim.actstrack import PAIR_Z


@pytest.mark.parametrize(
    ("schema", "layout", "order"),
    [
        ("v43", "per_event", "shuffled"),
        ("v44.3", "per_particle", "interleaved"),
        ("v44.0", "per_event", "sorted"),
    ],
)
def test_actstrack_labels_match_generator(tmp_path, schema, layout, order):
    truth = simulate_actstrack(
        tmp_path,
        events=150,
        seed=4,
        schema=schema,
        particles_layout=layout,
        event_order=order,
        chunk_size=64,
    )
    ev = read_acts(tmp_path / "hits.root", tmp_path / "particles.root", tracks_per_event=None)
    t_index = {int(e): i for i, e in enumerate(truth.event_id)}
    rows = np.array([t_index[int(e)] for e in ev.event_id])
    # positive = a generated Z in the +-2 GeV window whose two legs left >= 3 hits each
    expected = (
        (truth.pair_kind[rows] == PAIR_Z)
        & truth.z_in_window[rows]
        & np.all(truth.pair_n_hits[rows] >= 3, axis=1)
    )
    np.testing.assert_array_equal(ak.to_numpy(ev.label).astype(bool), expected)
    # node labels sit exactly on the hits of the generator's two Z legs
    legs = truth.lepton_barcode[rows]
    is_leg = (ev.hits.barcode == legs[:, 0]) | (ev.hits.barcode == legs[:, 1])
    assert ak.all((ev.hits.node_label == 1) == (is_leg & (ev.label == 1)))
    # every hit of the file is accounted for
    assert ak.sum(ak.num(ev.hits)) == truth.n_hits.sum()
    assert 0.2 < ev.label.to_numpy().mean() < 0.5


def test_tau3mu_labels_match_generator(tmp_path):
    truth = simulate_tau3mu(tmp_path, events=800, seed=2)
    ev = read_cms_muon(tmp_path / "ntuple.root")
    rows = ev.event_id.to_numpy()  # entry numbers
    np.testing.assert_array_equal(ev.label.to_numpy().astype(bool), truth.is_signal[rows])
    np.testing.assert_array_equal(ev.n_signal_hits.to_numpy(), truth.n_sig_hits_filtered[rows])
    np.testing.assert_array_equal(ak.num(ev.hits).to_numpy(), truth.n_hits_filtered[rows])
    keep = (
        (truth.n_hits_filtered >= 3)
        & (~truth.is_signal | (truth.n_sig_hits_filtered >= 3))
        & (truth.n_hits > 0)
    )
    np.testing.assert_array_equal(np.flatnonzero(keep), rows)
    convert("tau3mu", [tmp_path / "ntuple.root"], tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert len(ds) == keep.sum()
    sig = ds.labels.numpy() > 0
    n_sig_hits = np.array([int(ds[i].node_label.sum()) for i in np.flatnonzero(sig)[:50]])
    assert np.all(n_sig_hits >= 3)


def test_shipped_generic_example():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "synmol_mini.parquet"
    from hepx.io import read_generic

    s = read_generic(path)
    assert len(s) == 400 and int(ak.sum(s.y)) == 100
    # ground truth only in positive samples, and it marks the nitro + hydroxyl atoms (5 atoms)
    n_true = ak.sum(s.points.node_label, axis=1).to_numpy()
    assert np.all(n_true[s.y.to_numpy() == 1] == 5) and np.all(n_true[s.y.to_numpy() == 0] == 0)
