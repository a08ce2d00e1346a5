"""CMS endcap-muon reader against hand-built ntuples and an independent numpy selection."""

import awkward as ak
import cms_files as cf
import numpy as np
import pytest

from hepx.errors import ConfigError, InputError
from hepx.io import parse_filters, read_cms_muon


@pytest.fixture(scope="module")
def ntuple(tmp_path_factory):
    rng = np.random.default_rng(3)
    counts, fields, is_sig = cf.random_hits(rng, 60)
    path = tmp_path_factory.mktemp("cms") / "ntuple.root"
    cf.write_cms(path, counts, fields, is_sig.astype(int))
    return path, counts, fields, is_sig


def _expected(counts, fields, is_sig, keep_hit, min_hits=3, min_sig=3):
    """Reference selection with explicit per-event slicing (independent of the reader)."""
    out = {}
    starts = np.concatenate([[0], np.cumsum(counts)])
    for e in range(len(counts)):
        sl = slice(starts[e], starts[e + 1])
        k = keep_hit[sl]
        n_sel, n_sig = int(k.sum()), int(fields["truth_tau"][sl][k].sum())
        if counts[e] == 0 or n_sel < min_hits or (is_sig[e] and n_sig < min_sig):
            continue
        out[e] = np.flatnonzero(k)
    return out


def test_default_filters_select_station1_no_neighbor_no_dt(ntuple):
    path, counts, fields, is_sig = ntuple
    ev = read_cms_muon(path)
    keep = (fields["station"] == 1) & (fields["neighbor"] == 0) & (fields["type"] != 0)
    exp = _expected(counts, fields, is_sig, keep)
    assert ev.event_id.tolist() == list(exp)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for rec in ev:
        e = rec.event_id
        idx = exp[e]
        np.testing.assert_array_equal(rec.hits.hit_index.to_numpy(), idx)
        raw = slice(starts[e], starts[e + 1])
        np.testing.assert_array_equal(rec.hits.node_label.to_numpy(), fields["truth_tau"][raw][idx])
        np.testing.assert_array_equal(rec.hits.bend.to_numpy(), fields["bend"][raw][idx])
        tech = rec.hits.technology.to_numpy()  # mu_hit_type, under a name awkward leaves free
        np.testing.assert_array_equal(tech, fields["type"][raw][idx])
        phi = rec.hits.phi.to_numpy()
        np.testing.assert_allclose(np.degrees(phi), fields["sim_phi"][raw][idx], atol=1e-3)
        assert np.all((phi > -np.pi) & (phi <= np.pi))
        assert rec.label == int(is_sig[e])
    rep = ev.attrs["hepx_report"]
    assert rep["events_read"] == 60 and rep["dropped_no_hits"] == 1
    assert (
        rep["events_kept"]
        + rep["dropped_no_hits"]
        + rep["dropped_few_hits"]
        + rep["dropped_few_signal_hits"]
        == 60
    )


def test_filters_are_data(ntuple):
    path, counts, fields, is_sig = ntuple
    filters = [
        {"branch": "mu_hit_type", "op": "in", "value": [1, 3]},
        {"branch": "mu_hit_sim_eta", "op": ">", "value": 1.6},
    ]
    ev = read_cms_muon(path, filters=filters, min_hits=1, min_signal_hits=0)
    keep = np.isin(fields["type"], [1, 3]) & (fields["sim_eta"] > 1.6)
    exp = _expected(counts, fields, is_sig, keep, min_hits=1, min_sig=0)
    assert ev.event_id.tolist() == list(exp)
    assert ak.all(ev.hits.eta > 1.6)
    with pytest.raises(ConfigError, match="unknown operator 'like'"):
        parse_filters([{"branch": "mu_hit_type", "op": "like", "value": 1}])
    with pytest.raises(ConfigError, match="unknown __import__"):
        parse_filters([{"branch": "x", "op": "==", "value": 1, "__import__": "os"}])
    with pytest.raises(ConfigError, match="must be a number"):
        parse_filters([{"branch": "x", "op": "==", "value": "__import__('os')"}])


def test_truth_branch_is_configuration(ntuple, tmp_path):
    path, *_ = ntuple
    with pytest.raises(InputError, match=r"missing branch.*mu_hit_sim_tp.*truth"):
        read_cms_muon(path, truth_branch="mu_hit_sim_tp")
    ev = read_cms_muon(path, truth_branch=None, label_branch=None, min_signal_hits=0)
    assert ak.sum(ev.hits.node_label) == 0 and ak.all(ev.label == 0)


def test_bad_inputs(ntuple, tmp_path, foreign_root):
    path, counts, fields, is_sig = ntuple
    with pytest.raises(InputError, match=r"no TTree 'Ntuplizer/MuonTrackTree' \(found: events\)"):
        read_cms_muon(foreign_root)
    with pytest.raises(InputError, match=r"no TTree 'Other'.*Ntuplizer/MuonTrackTree"):
        read_cms_muon(path, tree="Other")
    bad = tmp_path / "mismatch.root"
    cf.write_cms(bad, counts, fields, is_sig.astype(int), mismatch=("bend", 4))
    with pytest.raises(InputError, match=r"mismatched length: mu_hit_bend .* entry 4"):
        read_cms_muon(bad)
    data = path.read_bytes()
    (tmp_path / "trunc.root").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated"):
        read_cms_muon(tmp_path / "trunc.root")
    empty = tmp_path / "empty.root"
    cf.write_cms(empty, np.zeros(4, int), {k: v[:0] for k, v in fields.items()}, np.zeros(4, int))
    with pytest.raises(InputError, match="no events left"):
        read_cms_muon(empty)
