"""ACTS reader against hand-built files with known truth (independent of the simulation)."""

import acts_files as af
import awkward as ak
import numpy as np
import pytest
import uproot

from hepx.errors import InputError
from hepx.io import decode_barcode, decode_geometry_id, pack_barcode, read_acts

EVENTS = af.build_events(24)


@pytest.fixture(scope="module", params=["v43", "v44.0", "v44.3"])
def schema_dir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param.replace(".", "_"))
    af.write_acts(d, EVENTS, schema=request.param, order="interleaved")
    return d


@pytest.mark.parametrize("layout", ["per_event", "per_particle"])
def test_labels_and_node_labels_match_truth(schema_dir, layout, tmp_path):
    if layout == "per_particle":
        af.write_acts(tmp_path, EVENTS, schema="v43", particles_layout=layout)
        schema_dir = tmp_path
    ev = read_acts(schema_dir / "hits.root", schema_dir / "particles.root", tracks_per_event=None)
    truth = {e["event_id"]: e for e in EVENTS}
    assert sorted(ev.event_id.tolist()) == sorted(truth)
    for event_id, label, hits, tracks in zip(
        ev.event_id, ev.label, ev.hits, ev.tracks, strict=True
    ):
        t = truth[event_id]
        assert label == t["label"]
        # node_label = hit belongs to one of the two signal particles (barcode particle 1, 2)
        particle = decode_barcode(np.asarray(hits.barcode))["particle"]
        expected = np.array([t["signal"][k - 1] for k in particle])
        np.testing.assert_array_equal(np.asarray(hits.node_label), expected)
        # every particle with >= 3 hits is a track; hit counts per track match the generator
        n_expected = sorted(n for n in t["n_hits"] if n >= 3)
        assert sorted(tracks.n_hits.tolist()) == n_expected
        assert int(ak.sum(tracks.is_signal)) == 2 * t["label"]


@pytest.mark.parametrize("schema", ["v43", "v44.3"])
def test_full_events_keep_every_hit_of_the_file(tmp_path, schema):
    """tracks_per_event=None: every entry of the hits tree is read exactly once, also the hits
    of particles too short to be tracks and hits without a particle (track -1, not signal)."""
    af.write_acts(tmp_path, EVENTS, schema=schema, hits_without_particle=2)
    raw = uproot.open(tmp_path / "hits.root")["hits"].arrays(["event_id", "tx"], library="np")
    min_track_hits = 6
    ev = read_acts(
        tmp_path / "hits.root",
        tmp_path / "particles.root",
        tracks_per_event=None,
        min_track_hits=min_track_hits,
        step_size=100,
    )
    flat_index = ak.to_numpy(ak.flatten(ev.hits.hit_index))
    np.testing.assert_array_equal(np.sort(flat_index), np.arange(len(raw["tx"])))
    np.testing.assert_array_equal(raw["tx"][flat_index], ak.to_numpy(ak.flatten(ev.hits.x)))
    assert ev.attrs["hepx_report"]["hits_without_particle"] == 2 * len(EVENTS)
    truth = {e["event_id"]: e for e in EVENTS}
    for event_id, hits, tracks in zip(ev.event_id, ev.hits, ev.tracks, strict=True):
        t = truth[event_id]
        particle = decode_barcode(np.asarray(hits.barcode))["particle"]
        orphan = particle == 999
        assert orphan.sum() == 2
        n_of = np.array([0, *t["n_hits"]] + [0] * 999)[particle]  # hits of the hit's particle
        short = ~orphan & (n_of < min_track_hits)
        track = np.asarray(hits.track)
        assert (track[orphan | short] == -1).all() and (track[~orphan & ~short] >= 0).all()
        assert not np.asarray(hits.node_label)[orphan].any()
        assert sorted(tracks.n_hits.tolist()) == sorted(n for n in t["n_hits"] if n >= 6)
        # a hit's track is the particle it came from
        kept = track >= 0
        np.testing.assert_array_equal(
            np.asarray(tracks.barcode)[track[kept]], np.asarray(hits.barcode)[kept]
        )


def test_interleaved_hits_are_grouped_and_map_back(schema_dir):
    ev = read_acts(schema_dir / "hits.root", schema_dir / "particles.root")
    raw = uproot.open(schema_dir / "hits.root")["hits"].arrays(
        ["event_id", "tx", "ty", "tz"], library="np"
    )
    assert not np.all(np.diff(raw["event_id"].astype(np.int64)) >= 0), "input must be interleaved"
    flat_index = ak.to_numpy(ak.flatten(ev.hits.hit_index))
    ev_of_hit = np.repeat(ak.to_numpy(ev.event_id), ak.to_numpy(ak.num(ev.hits)))
    np.testing.assert_array_equal(raw["event_id"][flat_index], ev_of_hit)
    np.testing.assert_array_equal(raw["tx"][flat_index], ak.to_numpy(ak.flatten(ev.hits.x)))
    # hits of an event are ordered by original entry
    assert ak.all(ev.hits.hit_index[:, 1:] > ev.hits.hit_index[:, :-1])


def test_track_sampling_without_replacement_keeps_signal(schema_dir):
    kw = dict(tracks_per_event=5)
    a = read_acts(schema_dir / "hits.root", schema_dir / "particles.root", seed=1, **kw)
    b = read_acts(schema_dir / "hits.root", schema_dir / "particles.root", seed=1, **kw)
    c = read_acts(schema_dir / "hits.root", schema_dir / "particles.root", seed=2, **kw)
    assert ak.all(ak.num(a.tracks) == 5)
    for tracks in a.tracks:
        codes = tracks.barcode.tolist()
        assert len(set(codes)) == len(codes)
    assert ak.all(ak.sum(a.tracks.is_signal, axis=1) == 2 * a.label)
    assert a.tracks.barcode.tolist() == b.tracks.barcode.tolist()
    assert a.tracks.barcode.tolist() != c.tracks.barcode.tolist()
    # only hits of kept tracks, and `track` indexes into `tracks`
    for hits, tracks in zip(a.hits, a.tracks, strict=True):
        np.testing.assert_array_equal(
            np.asarray(tracks.barcode)[np.asarray(hits.track)], np.asarray(hits.barcode)
        )


def test_geometry_and_barcode_codecs():
    rng = np.random.default_rng(0)
    comps = [
        rng.integers(1, 4000, 50),
        rng.integers(0, 4000, 50),
        rng.integers(0, 65000, 50),
        rng.integers(0, 255, 50),
        rng.integers(0, 65000, 50),
    ]
    packed = pack_barcode(*comps)
    assert packed.dtype == np.uint64
    np.testing.assert_array_equal(packed, af.packed(*(c.astype(np.uint64) for c in comps)))
    dec = decode_barcode(packed)
    for name, c in zip(
        ("vertex_primary", "vertex_secondary", "particle", "generation", "sub_particle"),
        comps,
        strict=True,
    ):
        np.testing.assert_array_equal(dec[name], c)
    gid = (
        (np.uint64(17) << np.uint64(56))
        | (np.uint64(6) << np.uint64(36))
        | (np.uint64(1234) << np.uint64(8))
    )
    g = decode_geometry_id(np.array([gid]))
    assert (g["volume_id"][0], g["layer_id"][0], g["sensitive_id"][0], g["boundary_id"][0]) == (
        17,
        6,
        1234,
        0,
    )
    with pytest.raises(InputError, match="does not fit"):
        pack_barcode(np.array([5000]), *(np.zeros(1, int),) * 4)


def test_foreign_and_broken_files(tmp_path, foreign_root):
    af.write_acts(tmp_path, EVENTS[:4])
    with pytest.raises(InputError, match=r"no TTree 'hits'.*found: events"):
        read_acts(foreign_root, tmp_path / "particles.root")
    with pytest.raises(InputError, match="no such file"):
        read_acts(tmp_path / "nope.root", tmp_path / "particles.root")
    (tmp_path / "text.root").write_text("not root at all " * 20)
    with pytest.raises(InputError, match="not a ROOT file"):
        read_acts(tmp_path / "text.root", tmp_path / "particles.root")
    data = (tmp_path / "hits.root").read_bytes()
    (tmp_path / "trunc.root").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_acts(tmp_path / "trunc.root", tmp_path / "particles.root")
    # a hits tree lacking a kinematic branch
    with uproot.recreate(tmp_path / "partial.root") as f:
        f.mktree(
            "hits", {"event_id": np.uint32, "particle_id": np.uint64, "geometry_id": np.uint64}
        )
        f["hits"].extend(
            {
                "event_id": np.zeros(3, np.uint32),
                "particle_id": np.ones(3, np.uint64),
                "geometry_id": np.ones(3, np.uint64),
            }
        )
    with pytest.raises(InputError, match=r"missing branch\(es\) tx, ty, tz"):
        read_acts(tmp_path / "partial.root", tmp_path / "particles.root")


def test_tracks_are_lorentz_vectors(schema_dir):
    """Tracks carry vector's Momentum4D behaviour: the Z legs add up to the generated mass,
    and px/py/pz come back from (pt, eta, phi)."""
    ev = read_acts(schema_dir / "hits.root", schema_dir / "particles.root", tracks_per_event=None)
    truth = {e["event_id"]: e for e in EVENTS}
    signal = ev[ev.label == 1]
    legs = signal.tracks[signal.tracks.is_signal]
    assert ak.all(ak.num(legs) == 2)
    mass = ak.to_numpy((legs[:, 0] + legs[:, 1]).mass)
    generated = [91.0 if truth[i]["particles"][0][0] == 13 else 92.5 for i in signal.event_id]
    np.testing.assert_allclose(mass, generated, rtol=1e-4)
    first = ev[0]
    parts = truth[int(first.event_id)]["particles"]

    def key(pt, eta):
        return round(float(pt), 3), round(float(eta), 3)

    momenta = {
        key(np.hypot(p[2][0], p[2][1]), np.arcsinh(p[2][2] / np.hypot(p[2][0], p[2][1]))): p[2]
        for p in parts
    }
    for track in first.tracks:
        want = momenta[key(track.pt, track.eta)]
        np.testing.assert_allclose([track.px, track.py, track.pz], want, rtol=1e-5, atol=1e-5)


def test_reader_field_names_do_not_shadow_awkward_attributes(schema_dir, cms_events):
    """``events.hits.<field>`` must reach the field: no field may be named like an attribute
    of awkward's Array or Record (``type``, ``layout``, ``mask``, ...)."""
    reserved = {a for a in set(dir(ak.Array)) | set(dir(ak.Record)) if not a.startswith("_")}
    acts = read_acts(schema_dir / "hits.root", schema_dir / "particles.root")
    for events in (acts, cms_events):
        for record in (
            events,
            events.hits,
            *([events.tracks] if "tracks" in events.fields else []),
        ):
            clash = set(record.fields) & reserved
            assert not clash, clash
    assert ak.all(cms_events.hits.technology >= 0)  # a field, not an awkward type
