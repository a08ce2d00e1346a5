"""ActsTrack read in chunks of whole events: the same events as the whole-file read, in the same
order, for every hit order of the simulation and the hand-built layouts; no chunk splits an
event; the hits read per chunk stay within the chunk's bound."""

import itertools

import acts_files as af
import awkward as ak
import numpy as np
import pytest
import uproot

import hepx.io.acts as acts
from hepx.errors import ConfigError, InputError
from hepx.io import read_acts
from hepx.io.acts import ActsChunks, event_segments, plan_chunks
from hepx.sim import simulate_actstrack

WHOLE = 10**9  # a step_size above the hits of any test file: one chunk


def _paths(d):
    return d / "hits.root", d / "particles.root"


@pytest.fixture(scope="module", params=["sorted", "shuffled", "interleaved"])
def event_order(request):
    return request.param


@pytest.fixture(scope="module")
def sim_dirs(tmp_path_factory):
    """Simulated files, 24 events written 8 at a time, per hit order and particles layout."""
    dirs = {}
    for order in ("sorted", "shuffled", "interleaved"):
        for layout in ("per_event", "per_particle"):
            d = tmp_path_factory.mktemp(f"sim_{order}_{layout}")
            simulate_actstrack(
                d,
                events=24,
                seed=5,
                event_order=order,
                particles_layout=layout,
                chunk_size=8,
                pileup=2,
                progress=False,
            )
            dirs[order, layout] = d
    return dirs


def assert_same_events(got, expected):
    """Field by field (values, dtypes, jagged counts), then as whole arrays."""
    assert got.fields == expected.fields and len(got) == len(expected)
    assert str(got.type) == str(expected.type)
    for field in expected.fields:
        if field in ("hits", "tracks"):
            np.testing.assert_array_equal(ak.num(got[field]), ak.num(expected[field]))
            for sub in expected[field].fields:
                a = ak.to_numpy(ak.flatten(got[field][sub]))
                b = ak.to_numpy(ak.flatten(expected[field][sub]))
                assert a.dtype == b.dtype, (field, sub)
                np.testing.assert_array_equal(a, b, err_msg=f"{field}.{sub}")
        else:
            a, b = ak.to_numpy(got[field]), ak.to_numpy(expected[field])
            assert a.dtype == b.dtype, field
            np.testing.assert_array_equal(a, b, err_msg=field)
    assert ak.array_equal(got, expected, dtype_exact=True, check_parameters=True)


def _chunked(d, **options):
    chunks = ActsChunks(*_paths(d), **options)
    parts = list(chunks)
    chunks.check_kept()
    return parts, chunks.report


@pytest.mark.parametrize("layout", ["per_event", "per_particle"])
def test_chunks_give_the_whole_file_events_for_every_hit_order(sim_dirs, event_order, layout):
    d = sim_dirs[event_order, layout]
    opts = {"tracks_per_event": 4, "seed": 3}  # sampled tracks: the draws must line up too
    whole = read_acts(*_paths(d), step_size=WHOLE, **opts)
    ids = ak.to_numpy(whole.event_id)
    assert np.all(np.diff(ids) > 0)  # the whole-file read gives events in event_id order
    for step in (1, 150, 1000):
        parts, report = _chunked(d, step_size=step, **opts)
        if step == 1:
            assert len(parts) > 2
        chunk_ids = np.concatenate([ak.to_numpy(p.event_id) for p in parts])
        assert len(np.unique(chunk_ids)) == len(chunk_ids)  # no event in two chunks
        assert_same_events(ak.concatenate(parts), whole)
        assert report == whole.attrs["hepx_report"]
        assert read_acts(*_paths(d), step_size=step, **opts).attrs["hepx_report"] == report
    # hit_index stays the entry in the hits tree
    with uproot.open(d / "hits.root") as f:
        raw = f["hits"].arrays(["event_id", "tx"], library="np")
    index = ak.to_numpy(ak.flatten(whole.hits.hit_index))
    np.testing.assert_array_equal(raw["tx"][index], ak.to_numpy(ak.flatten(whole.hits.x)))
    ev_of_hit = np.repeat(ids, ak.to_numpy(ak.num(whole.hits)))
    np.testing.assert_array_equal(raw["event_id"][index], ev_of_hit)


@pytest.mark.parametrize(
    ("schema", "layout", "order"),
    [
        ("v43", "per_particle", "sorted"),
        ("v43", "per_particle", "interleaved"),
        ("v44.0", "per_event", "sorted"),
        ("v44.3", "per_event", "sorted"),
        ("v44.3", "per_particle", "interleaved"),
    ],
)
def test_chunks_for_every_schema_and_particles_layout(tmp_path, schema, layout, order):
    af.write_acts(
        tmp_path, af.build_events(18), schema=schema, particles_layout=layout, order=order
    )
    for tracks in (None, 5):
        whole = read_acts(*_paths(tmp_path), tracks_per_event=tracks, step_size=WHOLE)
        parts, report = _chunked(tmp_path, tracks_per_event=tracks, step_size=60)
        assert len(parts) > 1 if order == "sorted" else len(parts) == 1
        assert_same_events(ak.concatenate(parts), whole)
        assert report == whole.attrs["hepx_report"]


def _rewrite(path, tree, change):
    with uproot.open(path) as f:
        columns = f[tree].arrays(library="np")
    columns = change(columns)
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.dtype for k, v in columns.items()})
        f[tree].extend(columns)


def test_chunks_with_dropped_values_and_events_missing_from_one_tree(tmp_path):
    """Dropped non-finite hits and particles, an event with particles but no hits, one with hits
    but no particles, and a hits-only event of a lower id in the middle of the file."""
    af.write_acts(tmp_path, af.build_events(18), particles_layout="per_particle", order="sorted")

    def hits(c):
        keep = c["event_id"] != 121
        c = {k: v[keep] for k, v in c.items()}
        c["tx"][[3, 170]] = np.nan
        extra = {k: v[300:340].copy() for k, v in c.items()}
        extra["event_id"][:] = 5
        return {k: np.concatenate([v[:700], extra[k], v[700:]]) for k, v in c.items()}

    def particles(c):
        keep = c["event_id"] != 135
        c = {k: v[keep] for k, v in c.items()}
        c["px"][[10, 99]] = np.inf
        return c

    _rewrite(tmp_path / "hits.root", "hits", hits)
    _rewrite(tmp_path / "particles.root", "particles", particles)
    for min_track_hits in (0, 3):
        opts = {"nonfinite": "drop", "tracks_per_event": 3, "min_track_hits": min_track_hits}
        whole = read_acts(*_paths(tmp_path), step_size=WHOLE, **opts)
        report = whole.attrs["hepx_report"]
        assert report["dropped_nonfinite_hits"] == 2 and report["dropped_nonfinite_particles"] == 2
        assert report["events_read"] == 19  # 17 with particles (121: no hits), 135 and 5: hits only
        for step in (1, 100):
            parts, chunk_report = _chunked(tmp_path, step_size=step, **opts)
            assert_same_events(ak.concatenate(parts), whole)
            assert chunk_report == report


def _segments_brute_force(event_id):
    """Cut-safe segments, straight from the definition: a cut after entry i is safe iff no
    event has entries on both sides."""
    n = len(event_id)
    stops = [
        i + 1 for i in range(n) if not set(event_id[: i + 1].tolist()) & set(event_id[i + 1 :])
    ]
    return np.array(stops)


def _in_chunk(event_id, chunk):
    """Boolean per value: an event id of the chunk."""
    ids = np.asarray(event_id, np.int64)
    lo = ids.min() if chunk.lo is None else chunk.lo
    hi = ids.max() + 1 if chunk.hi is None else chunk.hi
    return (ids >= lo) & (ids < hi)


def _event_id_tree(path, event_id):
    with uproot.recreate(path) as f:
        f["hits"] = {"event_id": np.asarray(event_id, np.uint32)}
    return uproot.open(path)["hits"]


def _orders(rng):
    """Event-id sequences (one per hit) in the orders multi-threaded writers produce."""
    blocks = [np.full(rng.integers(1, 9), e) for e in range(30)]
    sorted_ = np.concatenate(blocks)
    shuffled = np.concatenate([blocks[i] for i in rng.permutation(30)])
    interleaved = np.concatenate(
        [rng.permutation(np.concatenate(blocks[a : a + 10])) for a in (0, 10, 20)]
    )
    mixed_writer = rng.permutation(sorted_)  # one segment: every cut splits an event
    odd_even = np.concatenate(  # segments whose ids interleave: 0, 2, 4, ... then 1, 3, ...
        [rng.permutation(np.concatenate(blocks[s::2])) for s in (0, 1)]
    )
    yield from (sorted_, shuffled, interleaved, mixed_writer, odd_even)
    yield np.array([3, 3, 1, 3, 1, 2, 2, 5, 4, 5, 4, 6]) * 1000 + 7  # sparse ids


def test_plan_never_splits_an_event_and_bounds_the_read(tmp_path):
    rng = np.random.default_rng(11)
    for k, event_id in enumerate(_orders(rng)):
        tree = _event_id_tree(tmp_path / f"e{k}.root", event_id)
        events, segment, seg_stop = event_segments(tree, step=7)  # several scan blocks
        np.testing.assert_array_equal(seg_stop, _segments_brute_force(event_id))
        np.testing.assert_array_equal(events, np.unique(event_id))
        largest = int(np.diff(seg_stop, prepend=0).max())
        baskets = np.arange(0, len(event_id), 13)
        for target, merge in [(t, m) for t in (1, 5, 20, 1000) for m in (None, baskets)]:
            plan = list(plan_chunks(events, segment, seg_stop, target, merge))
            assert plan[0].lo is None and plan[-1].hi is None
            bounds = [c.hi for c in plan[:-1]]
            assert bounds == [c.lo for c in plan[1:]] and bounds == sorted(set(bounds))
            covered = 0
            for chunk in plan:
                mine = _in_chunk(event_id, chunk)
                inside = np.zeros(len(event_id), bool)
                for a, b in chunk.ranges:
                    inside[a:b] = True
                assert mine.any() and not (mine & ~inside).any()  # every hit of its events
                if merge is None:
                    assert chunk.entries_read <= max(target, largest)
                else:  # gaps merged inside a basket: at most the baskets of its hits in addition
                    touched = np.unique(np.flatnonzero(mine) // 13)
                    assert chunk.entries_read <= max(target, largest) + 13 * len(touched)
                assert np.all(chunk.ranges[1:, 0] > chunk.ranges[:-1, 1])  # sorted, disjoint
                covered += int(mine.sum())
            assert covered == len(event_id)
        if k == 0:  # sorted: one segment per event, chunks of about the target
            assert (
                len(seg_stop) == 30 and len(list(plan_chunks(events, segment, seg_stop, 1))) == 30
            )


def test_interleaved_hits_are_never_cut_inside_an_event(sim_dirs):
    """The interleaved simulation mixes the hits of 8 events; a cut every 50 entries would split
    events, the chunks keep each writer chunk's events together."""
    d = sim_dirs["interleaved", "per_event"]
    with uproot.open(d / "hits.root") as f:
        event_id = f["hits"]["event_id"].array(library="np")
    head, tail = set(event_id[:50].tolist()), set(event_id[50:].tolist())
    assert head & tail, "a naive cut after 50 entries must split an event here"
    chunks = ActsChunks(*_paths(d), step_size=50)
    plan = list(chunks.plan())
    assert len(plan) == 3  # one per writer chunk of 8 mixed events
    for chunk, events in zip(plan, chunks, strict=True):
        ids = ak.to_numpy(events.event_id)
        assert (chunk.lo is None or ids.min() >= chunk.lo) and (
            chunk.hi is None or ids.max() < chunk.hi
        )
        ((start, stop),) = chunk.ranges
        assert np.isin(event_id[start:stop], ids).all()
        assert not np.isin(np.delete(event_id, np.arange(start, stop)), ids).any()


def _basket_entries(tree, entries):
    """Entries in the baskets (of any branch of ``tree``) that hold ``entries``."""
    starts = np.unique(np.concatenate([tree[b].entry_offsets for b in tree.keys()]))
    touched = np.unique(np.searchsorted(starts, entries, side="right") - 1)
    return int((starts[touched + 1] - starts[touched]).sum())


@pytest.mark.parametrize("in_baskets", [False, True])
@pytest.mark.parametrize("order", ["shuffled", "interleaved"])
def test_the_largest_read_is_bounded_by_the_chunk(sim_dirs, order, in_baskets, monkeypatch):
    """Every read of a chunk is counted: at most max(step, largest cut-safe segment) hits-tree
    entries per chunk and twice its events' particles-tree entries; reads merged over gaps
    inside a basket (which uproot decompresses whole anyway) add at most those baskets."""
    d = sim_dirs[order, "per_particle"]
    if not in_baskets:
        monkeypatch.setattr(acts, "basket_starts", lambda tree, branches: None)
    reads = []
    real = acts.read_range

    def spy(tree, branches, start, stop, **kw):
        reads.append((tree.name, list(branches), stop - start))
        return real(tree, branches, start, stop, **kw)

    monkeypatch.setattr(acts, "read_range", spy)
    hits_tree = uproot.open(d / "hits.root")["hits"]
    particles_tree = uproot.open(d / "particles.root")["particles"]
    event_id = hits_tree["event_id"].array(library="np")
    particle_event = particles_tree["event_id"].array(library="np")
    largest = int(np.diff(_segments_brute_force(event_id), prepend=0).max())
    step = 120
    chunks = ActsChunks(*_paths(d), step_size=step)
    hits_read, parts = [], []
    for chunk, (events, n_entries) in zip(chunks.plan(), chunks.pieces(), strict=True):
        hits = sum(n for tree, branches, n in reads if tree == "hits" and "tx" in branches)
        particles = sum(
            n for tree, branches, n in reads if tree == "particles" and "px" in branches
        )
        own_hits = np.flatnonzero(_in_chunk(event_id, chunk))
        own = np.flatnonzero(_in_chunk(particle_event, chunk))
        assert n_entries == len(own_hits) <= max(step, largest)
        hits_bound, particles_bound = max(step, largest), 2 * len(own)
        if in_baskets:
            hits_bound += _basket_entries(hits_tree, own_hits)
            particles_bound += _basket_entries(particles_tree, own)
        assert hits <= hits_bound and particles <= particles_bound
        hits_read.append(hits)
        parts.append(events)
        reads.clear()
    assert len(hits_read) > 1
    if not in_baskets:
        assert max(hits_read) <= max(step, largest) < len(event_id)
    whole = read_acts(*_paths(d), step_size=WHOLE)
    assert_same_events(ak.concatenate([p for p in parts if len(p)]), whole)


def test_step_size_as_a_memory_size_and_bad_values(sim_dirs):
    d = sim_dirs["shuffled", "per_event"]
    whole = read_acts(*_paths(d), step_size=WHOLE)
    parts, _ = _chunked(d, step_size="4 kB")
    assert len(parts) > 1
    assert_same_events(ak.concatenate(parts), whole)
    assert_same_events(read_acts(*_paths(d)), whole)  # default "100 MB": one chunk here
    for bad in (0, -3, 1.5, "lots"):  # the schema's check, then the size's parse
        with pytest.raises((ConfigError, InputError), match="step_size"):
            ActsChunks(*_paths(d), step_size=bad)


@pytest.mark.parametrize("order", ["sorted", "shuffled", "interleaved"])
def test_small_chunks_decompress_each_basket_once(sim_dirs, order, monkeypatch):
    """Chunks much smaller than the baskets (8 events each): a chunk's read goes on to the ends
    of the baskets it opens and the next chunks take their hits and particles from it, so both
    trees are read once, in disjoint ranges on cluster boundaries (the particles' event index
    aside), and the events are the whole read's."""
    d = sim_dirs[order, "per_event"]
    reads = {"hits": [], "particles": []}
    real = acts.read_range

    def spy(tree, branches, start, stop, **kw):
        if branches != ["event_id"]:  # the particles' event index is read once, whole
            reads[tree.name].append((start, stop))
        return real(tree, branches, start, stop, **kw)

    monkeypatch.setattr(acts, "read_range", spy)
    tree = uproot.open(d / "hits.root")["hits"]
    clusters = tree["tx"].entry_offsets
    particle_clusters = uproot.open(d / "particles.root")["particles"]["px"].entry_offsets
    parts, _ = _chunked(d, step_size=40)
    # several chunks per basket, but where hits of a basket's events interleave (one cut-safe
    # segment per basket) one
    per_basket = 1 if order == "interleaved" else 3
    assert len(parts) >= per_basket * (len(clusters) - 1)
    assert sorted(reads["hits"]) == list(itertools.pairwise(int(c) for c in clusters))
    expected = list(itertools.pairwise(int(c) for c in particle_clusters))
    assert sorted(reads["particles"]) == expected
    monkeypatch.setattr(acts, "read_range", real)
    assert_same_events(ak.concatenate(parts), read_acts(*_paths(d), step_size=WHOLE))
