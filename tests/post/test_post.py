"""hepx.post: numba kernels against the awkward/NumPy reference, physics API, ROOT/Parquet outputs."""

import itertools

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

from hepx import post
from hepx.errors import InputError
from hepx.post import kernels, reference

SETTINGS = settings(max_examples=40, deadline=None)


# --------------------------------------------------------------------------- random jagged data


@st.composite
def jagged_hits(draw):
    """Events with random numbers of hits and tracks (sizes drawn by hypothesis, values from a
    drawn seed): hits' track indices include -1 (no track) and out-of-range values; importance
    from a small set (many ties) or continuous."""
    n_events = draw(st.integers(0, 12))
    n_hits = np.array(draw(st.lists(st.integers(0, 40), min_size=n_events, max_size=n_events)))
    n_tracks = np.array(draw(st.lists(st.integers(0, 5), min_size=n_events, max_size=n_events)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ties = draw(st.booleans())
    total = int(n_hits.sum())
    hit_track = rng.integers(-1, 6, total).astype(np.int64)
    importance = (
        rng.choice([0.0, 0.25, 0.5, 1.0], total) if ties else rng.normal(0, 100, total)
    ).astype(np.float64)
    k = rng.integers(0, 45, n_events).astype(np.int64)
    hit_off = np.concatenate([[0], np.cumsum(n_hits)]).astype(np.int64)
    trk_off = np.concatenate([[0], np.cumsum(n_tracks)]).astype(np.int64)
    return hit_off, trk_off, hit_track, importance, k


def _same(a, b):
    for x, y in zip(
        a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, equal_nan=True)


@SETTINGS
@given(jagged_hits())
def test_track_reduce_matches_reference(data):
    hit_off, trk_off, hit_track, imp, _ = data
    got = kernels.track_reduce(hit_off, trk_off, hit_track, imp)
    _same(got, reference.track_reduce(hit_off, trk_off, hit_track, imp))
    assert got[0].sum() == sum(
        ((hit_track[a:b] >= 0) & (hit_track[a:b] < trk_off[e + 1] - trk_off[e])).sum()
        for e, (a, b) in enumerate(itertools.pairwise(hit_off))
    )


@SETTINGS
@given(jagged_hits())
def test_topk_matches_reference(data):
    hit_off, trk_off, hit_track, imp, k = data
    _same(
        kernels.topk_track_fraction(hit_off, trk_off, hit_track, imp, k),
        reference.topk_track_fraction(hit_off, trk_off, hit_track, imp, k),
    )
    mask = kernels.topk_mask(hit_off, imp, k)
    ranks = reference.event_ranks(hit_off, imp)
    want = ranks < np.repeat(k, np.diff(hit_off))
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(kernels._event_ranks(hit_off, imp), ranks)


@SETTINGS
@given(jagged_hits(), st.integers(0, 4))
def test_topn_efficiency_matches_reference(data, n):
    _, trk_off, _, _, _ = data
    n_tr = int(trk_off[-1])
    rng = np.random.default_rng(n_tr)
    score = rng.integers(0, 3, n_tr).astype(float)  # many ties
    sig = rng.random(n_tr) < 0.4
    n_arr = np.full(len(trk_off) - 1, n, np.int64)
    _same(
        kernels.topn_signal_efficiency(trk_off, score, sig, n_arr),
        reference.topn_signal_efficiency(trk_off, score, sig, n_arr),
    )


@SETTINGS
@given(jagged_hits(), st.integers(1, 8))
def test_group_stats_matches_reference(data, n_groups):
    _, _, hit_track, imp, _ = data
    _same(
        kernels.group_stats(hit_track, imp, n_groups),
        reference.group_stats(hit_track, imp, n_groups),
    )


@SETTINGS
@given(st.integers(0, 60), st.integers(2, 4), st.integers(0, 2**31))
def test_main_axis_angle_matches_eigh(n, d, seed):
    rng = np.random.default_rng(seed)
    # LRI-Gaussian covariances a1 U U^T + a2 I; keep a clear gap of the largest eigenvalue.
    u = rng.normal(size=(n, d, d))
    sigma = np.einsum("nij,nkj->nik", u, u) + rng.uniform(0.01, 1, (n, 1, 1)) * np.eye(d)
    ev = np.linalg.eigvalsh(sigma) if n else np.zeros((0, d))
    keep = (ev[:, -1] - ev[:, -2]) > 1e-3 * ev[:, -1]
    sigma = sigma[keep]
    direction = rng.normal(size=(len(sigma), d))
    if len(direction):
        direction[0] = 0.0  # a zero direction gives NaN
    got = kernels.main_axis_angle(sigma, direction)
    want = reference.main_axis_angle(sigma, direction)
    np.testing.assert_allclose(got, want, atol=1e-5, equal_nan=True)
    assert np.all((got[1:] >= 0) & (got[1:] <= 90))


def test_axis_angle_known_geometry():
    # main axis along x for both; directions along x, y and 45 degrees
    sigma = np.array([np.diag([5.0, 1.0, 1.0])] * 3)
    direction = np.array([[-2.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]])
    np.testing.assert_allclose(post.axis_angles(sigma, direction), [0.0, 90.0, 45.0], atol=1e-9)
    with pytest.raises(InputError, match="shape"):
        post.axis_angles(sigma, direction[:, :2])


def test_roc_auc():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 300).astype(float)
    y = rng.random(300) < 0.3
    # Mann-Whitney by brute force: P(score_sig > score_bkg) + P(equal) / 2
    diff = s[y][:, None] - s[~y][None, :]
    want = (diff > 0).mean() + 0.5 * (diff == 0).mean()
    assert post.roc_auc(s, y) == pytest.approx(want)
    fpr, tpr = post.roc_curve(s, y)
    assert np.trapezoid(tpr, fpr) == pytest.approx(want)
    assert np.isnan(post.roc_auc(s, np.zeros(300)))


# --------------------------------------------------------------------------- reader events
# acts_events / cms_events (and their files acts_raw / cms_ntuple): session fixtures, conftest


def _importance(events, seed=0):
    rng = np.random.default_rng(seed)
    lab = ak.to_numpy(ak.flatten(events.hits.node_label))
    return rng.random(len(lab)) + lab  # signal hits more important


def test_annotate_acts(acts_events):
    ev = acts_events
    imp = _importance(ev)
    rng = np.random.default_rng(1)
    u = rng.normal(size=(len(imp), 3, 3))
    a = post.annotate(ev, imp, sigma=u @ u.transpose(0, 2, 1) + np.eye(3), k=5)
    assert len(a) == len(ev)
    assert ak.all(ak.num(a.hits) == ak.num(ev.hits)) and ak.all(
        ak.num(a.tracks) == ak.num(ev.tracks)
    )
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(a.hits.importance)), imp, rtol=1e-6)
    # per-track mean / max / top-k by hand for event 0
    e0 = a[0]
    tr = ak.to_numpy(e0.hits.track)
    hi = ak.to_numpy(e0.hits.importance).astype(float)
    top = np.argsort(-hi, kind="stable")[:5]
    for t in range(len(e0.tracks)):
        m = tr == t
        assert e0.tracks.importance[t] == pytest.approx(hi[m].mean(), rel=1e-6)
        assert e0.tracks.importance_max[t] == pytest.approx(hi[m].max())
        assert e0.tracks.importance_topk[t] == pytest.approx(np.isin(np.flatnonzero(m), top).mean())
    assert ak.all((a.hits.axis_angle >= 0) & (a.hits.axis_angle <= 90))
    r = post.track_ranking(a)
    assert r["auc"] > 0.9 and r["mean_efficiency"] > 0.9  # signal hits were made important
    assert np.isnan(r["efficiency"][ak.to_numpy(a.label) == 0]).all()
    prof = post.group_profile(a)
    assert prof["by"] == ["volume_id", "layer_id"]
    assert prof["all"]["count"].sum() == len(imp)
    assert (prof["signal"]["count"] + prof["background"]["count"] == prof["all"]["count"]).all()


def test_bad_importance(acts_events, cms_events):
    ev = acts_events
    imp = _importance(ev)
    with pytest.raises(InputError, match=r"has \d+ values but the \d+ events hold \d+ hits"):
        post.annotate(ev, imp[:-1])
    jag = ak.unflatten(imp, ak.num(ev.hits))
    bad = ak.concatenate([jag[:1, :-1], jag[1:]])
    with pytest.raises(InputError, match="event 0 has"):
        post.attach_importance(ev, bad)
    with pytest.raises(InputError, match="non-finite"):
        post.annotate(ev, np.where(np.arange(len(imp)) == 3, np.nan, imp))
    with pytest.raises(InputError, match="ActsTrack"):
        post.track_importance(cms_events, _importance(cms_events))
    with pytest.raises(InputError, match="cannot group by"):
        post.group_profile(post.annotate(ev, imp), "sector")


def test_root_and_parquet_round_trip_acts(acts_raw, acts_events, tmp_path):
    d, ev = acts_raw, acts_events
    a = post.annotate(ev, _importance(ev))
    a = ak.with_field(a, np.linspace(-1, 1, len(a)).astype(np.float32), "logit")
    with uproot.open(d / "hits.root") as f:
        eid = f["hits"]["event_id"].array(library="np")
    post.write_root(tmp_path / "a.root", a, friend=post.FriendLayout(event_id=eid))
    post.write_parquet(tmp_path / "a.parquet", a)
    trees = post.read_root(tmp_path / "a.root")
    assert set(trees) == {"events", "hits_importance", "tracks"}
    flat = trees["hits_importance"]
    assert len(flat) == len(eid)  # friend: one entry per input hits entry, same order
    assert ak.all(flat.hit_index == np.arange(len(eid))) and ak.all(flat.event_id == eid)
    hit_index = ak.to_numpy(ak.flatten(a.hits.hit_index))
    np.testing.assert_array_equal(
        ak.to_numpy(flat.importance)[hit_index], ak.to_numpy(ak.flatten(a.hits.importance))
    )
    unscored = np.setdiff1d(np.arange(len(eid)), hit_index)
    assert np.isnan(ak.to_numpy(flat.importance)[unscored]).all()
    assert ak.all(trees["events"].event_id == a.event_id)
    np.testing.assert_allclose(ak.to_numpy(trees["events"].logit), ak.to_numpy(a.logit))
    assert ak.all(trees["tracks"].track_importance == a.tracks.importance)
    back = post.importance_from_root(ev, tmp_path / "a.root")
    assert ak.all(back == a.hits.importance)
    pq = post.read_parquet(tmp_path / "a.parquet")
    assert pq.fields == a.fields and ak.all(pq.hits.importance == a.hits.importance)
    assert ak.all(pq.tracks.importance_topk == a.tracks.importance_topk)
    # events from another file do not fit the friend layout: error, no file left
    with pytest.raises(InputError, match=r"does not fit|event_id differs"):
        post.write_root(tmp_path / "b.root", a, friend=post.FriendLayout(event_id=eid[:10]))
    assert not (tmp_path / "b.root").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_root_and_parquet_round_trip_cms(cms_ntuple, cms_events, tmp_path):
    path, ev = cms_ntuple, cms_events
    c = post.annotate(ev, _importance(ev))
    with uproot.open(path) as f:
        counts = f["Ntuplizer/MuonTrackTree"]["n_mu_hit"].array(library="np")
    post.write_root(tmp_path / "c.root", c, friend=post.FriendLayout(counts=counts))
    trees = post.read_root(tmp_path / "c.root")
    assert set(trees) == {"events", "hits_importance", "mu_hit_importance"}
    fr = trees["mu_hit_importance"]
    assert len(fr) == len(counts) and ak.all(fr.n_mu_hit == counts)
    scored = ak.to_numpy(fr.scored)
    assert scored.sum() == len(c) and scored[ak.to_numpy(c.event_id)].all()
    got = fr.mu_hit_importance[c.event_id][c.hits.hit_index]
    assert ak.all(got == c.hits.importance)
    assert ak.all(np.isnan(ak.flatten(fr.mu_hit_importance[~scored])))
    assert ak.all(post.importance_from_root(ev, tmp_path / "c.root") == c.hits.importance)
    post.write_parquet(tmp_path / "c.parquet", c)
    assert ak.all(post.read_parquet(tmp_path / "c.parquet").hits.importance == c.hits.importance)
    prof = post.group_profile(c, ["station", "sector"])
    assert set(prof["keys"]["station"]) == {1}
