"""The fast paths of the ACTS reader against their plain NumPy definitions: the hash tables of
the hit-particle join, the run-based sorts and searches, the track sampling, the event scan and
the merged reads; and the reader's errors on what the fast paths might have let through."""

import acts_files as af
import awkward as ak
import numpy as np
import pytest
import uproot

import hepx.io.acts as acts
from hepx.errors import InputError
from hepx.io import read_acts


def _join_brute_force(p_ev, p_bc, ev, bc):
    """The particle row of each hit, -1 for none: a dict of the (event, barcode) pairs."""
    row = {(int(e), int(b)): i for i, (e, b) in enumerate(zip(p_ev, p_bc, strict=True))}
    return np.array([row.get((int(e), int(b)), -1) for e, b in zip(ev, bc, strict=True)])


def _particles(rng, n_events, per_event, n_codes, first_event=0):
    """Distinct (event, barcode) pairs sorted by event, barcodes packed like ACTS's."""
    ev, bc = [], []
    for e in range(first_event, first_event + n_events):
        k = int(rng.integers(0, per_event + 1))
        codes = rng.choice(n_codes, size=min(k, n_codes), replace=False)
        ev += [e] * len(codes)
        bc += [af.packed(1 + c % 7, 0, 1 + c // 7, 0, 0) for c in codes.tolist()]
    ev, bc = np.array(ev, np.int64), np.array(bc, np.uint64)
    order = np.lexsort((bc, ev))
    return ev[order], bc[order]


def _hits(rng, p_ev, p_bc, n, foreign):
    """Hits of the particles (runs of one event, shuffled inside), plus ``foreign`` hits of
    unknown barcodes or events."""
    pick = rng.integers(0, len(p_ev), n) if len(p_ev) else np.zeros(0, np.int64)
    ev, bc = p_ev[pick], p_bc[pick]
    unknown_bc = np.full(foreign, af.packed(9, 9, 999, 0, 0), np.uint64)
    unknown_ev = rng.integers(-3, 3 * max(len(p_ev), 1), foreign)
    ev = np.concatenate([ev, unknown_ev, np.full(foreign, p_ev[0] if len(p_ev) else 0)])
    bc = np.concatenate(
        [
            bc,
            p_bc[rng.integers(0, max(len(p_bc), 1), foreign)]
            if len(p_bc)
            else np.zeros(foreign, np.uint64),
            unknown_bc,
        ]
    )
    order = np.argsort(ev, kind="stable")
    return ev[order], bc[order]


@pytest.mark.parametrize(
    "n_events, per_event, n_codes, n_hits",
    [
        (30, 12, 40, 2000),  # few codes: the dense (event, code) table
        (40, 20, 5000, 50),  # many codes, few hits: the hash table of pairs
        (1, 1, 1, 10),
        (0, 0, 1, 0),
    ],
)
def test_hit_rows_equal_a_brute_force_join(n_events, per_event, n_codes, n_hits):
    rng = np.random.default_rng(n_codes)
    p_ev, p_bc = _particles(rng, n_events, per_event, n_codes, first_event=5)
    ev, bc = _hits(rng, p_ev, p_bc, n_hits, foreign=7)
    got = acts._hit_rows(p_ev, p_bc, ev, bc)
    np.testing.assert_array_equal(got, _join_brute_force(p_ev, p_bc, ev, bc))
    shuffled = rng.permutation(len(ev))  # interleaved events: one search per hit
    got = acts._hit_rows(p_ev, p_bc, ev[shuffled], bc[shuffled])
    np.testing.assert_array_equal(got, _join_brute_force(p_ev, p_bc, ev[shuffled], bc[shuffled]))


@pytest.mark.parametrize("spread", [1, 3])
def test_key_table_finds_its_keys_and_nothing_else(spread):
    rng = np.random.default_rng(spread)
    structured = np.array([af.packed(v, 0, p, 0, 0) for v in range(1, 9) for p in range(60)])
    for keys in (
        rng.integers(0, 2**63, 3000).astype(np.uint64) * np.uint64(2),
        structured.astype(np.uint64),
        np.array([0, 1, 2**32, 2**64 - 1], np.uint64),  # 0: the sentinel's key, in the table
        np.array([7], np.uint64),
    ):
        keys = np.unique(keys)
        table = acts._KeyTable(keys, spread=spread)
        queries = np.concatenate([keys, keys + np.uint64(1), np.zeros(3, np.uint64)])
        queries = rng.permutation(queries)
        expected = np.searchsorted(keys, queries)
        expected[
            (expected >= len(keys)) | (keys[np.minimum(expected, len(keys) - 1)] != queries)
        ] = -1
        np.testing.assert_array_equal(table.find(queries), expected)
    empty = acts._KeyTable(np.zeros(0, np.uint64))
    np.testing.assert_array_equal(empty.find(np.array([0, 5], np.uint64)), [-1, -1])


def test_run_based_sorts_and_searches_equal_numpy():
    rng = np.random.default_rng(3)
    blocks = [np.full(rng.integers(1, 30), e) for e in range(40)]
    cases = [
        np.concatenate(blocks),  # sorted: no order at all
        np.concatenate([blocks[i] for i in rng.permutation(40)]),  # shuffled runs
        rng.permutation(np.concatenate(blocks)),  # interleaved: many runs, a plain sort
        np.array([5, 5, 3, 3, 5, 5, 3]),  # runs of one key apart: stable across them
        np.array([], np.int64),
        np.array([4]),
    ]
    for keys in cases:
        order = acts._stable_order(keys)
        expected = np.argsort(keys, kind="stable")
        np.testing.assert_array_equal(np.arange(len(keys)) if order is None else order, expected)
        sorted_values = np.array([0, 3, 5, 7, 39])
        np.testing.assert_array_equal(
            acts._runs_searchsorted(sorted_values, keys), np.searchsorted(sorted_values, keys)
        )
        values, inverse = acts._sorted_unique(np.sort(keys))
        u, inv = np.unique(np.sort(keys), return_inverse=True)
        np.testing.assert_array_equal(values, u)
        np.testing.assert_array_equal(inverse, inv)


def _sample_tracks_by_definition(p_ev, n_events, candidate, is_signal, tracks_per_event, seed):
    """The sampling as defined: one lexsort of all particles by (event, key)."""
    rng = np.random.default_rng(seed[0])
    rng.bit_generator.advance(seed[1])
    sort_key = rng.random(len(p_ev))
    sort_key[is_signal] = -1.0
    sort_key[~candidate] = 2.0
    order = np.lexsort((sort_key, p_ev))
    ev_start = np.searchsorted(p_ev[order], np.arange(n_events))
    rank = np.empty(len(p_ev), dtype=np.int64)
    rank[order] = np.arange(len(p_ev)) - ev_start[p_ev[order]]
    return candidate if tracks_per_event is None else candidate & (rank < tracks_per_event)


def test_track_sampling_equals_its_definition():
    rng = np.random.default_rng(4)
    for trial in range(60):
        n_events, n = int(rng.integers(1, 40)), int(rng.integers(0, 300))
        p_ev = np.sort(rng.integers(0, n_events, n))
        candidate = rng.random(n) < 0.8
        is_signal = np.zeros(n, bool)
        for e in range(n_events):  # the signal pair, candidates or not
            rows = np.flatnonzero(p_ev == e)
            if len(rows) >= 2 and rng.random() < 0.5:
                is_signal[rng.choice(rows, 2, replace=False)] = True
        for k in (2, 3, 10, None):
            args = (p_ev, n_events, candidate, is_signal, k, (trial, 3 * trial))
            np.testing.assert_array_equal(
                acts._sample_tracks(*args), _sample_tracks_by_definition(*args)
            )


def test_particles_sorted_by_event_then_barcode():
    rng = np.random.default_rng(5)
    p_ev, p_bc = _particles(rng, 20, 10, 30)
    for order in (rng.permutation(len(p_ev)), np.argsort(p_ev, kind="stable")[::-1]):
        p = {"event_id": p_ev[order], "barcode": p_bc[order], "px": order.astype(np.float32)}
        got = acts._by_event_barcode(p)
        np.testing.assert_array_equal(got["event_id"], p_ev)
        np.testing.assert_array_equal(got["barcode"], p_bc)
        np.testing.assert_array_equal(got["px"], order[np.lexsort((p_bc[order], p_ev[order]))])


def test_a_particle_twice_in_an_event_is_an_error(tmp_path):
    af.write_acts(tmp_path, af.build_events(6), particles_layout="per_particle")
    with uproot.open(tmp_path / "particles.root") as f:
        columns = f["particles"].arrays(library="np")
    columns = {k: np.concatenate([v, v[4:5]]) for k, v in columns.items()}  # row 4 again
    with uproot.recreate(tmp_path / "particles.root") as f:
        f.mktree("particles", {k: v.dtype for k, v in columns.items()})
        f["particles"].extend(columns)
    barcode, event = int(columns["particle_id"][4]), int(columns["event_id"][4])
    with pytest.raises(InputError, match=f"particle {barcode} appears twice in event {event}"):
        read_acts(tmp_path / "hits.root", tmp_path / "particles.root")


def test_gaps_within_the_neighbouring_baskets_are_read_not_cut():
    baskets = np.arange(0, 70, 10)
    # gap 10:12 lies in the next range's basket, gap 22:31 in the two ranges' baskets: read;
    # gap 35:52 spans basket 40:50, which no range touches: cut (no budget)
    starts, stops = np.array([0, 12, 31, 52]), np.array([10, 22, 35, 55])
    np.testing.assert_array_equal(acts._coalesce(starts, stops, 0, baskets), [[0, 35], [52, 55]])


def _pairs_of_events_mixed(directory):
    """Rewrite the hits so that events k and k + 2 (k = 0, 1, 4, 5, ...) share their entries:
    a chunk of events k, k + 1 reads k + 2 and k + 3 too."""
    path = directory / "hits.root"
    with uproot.open(path) as f:
        columns = f["hits"].arrays(library="np")
    rank = np.unique(columns["event_id"], return_inverse=True)[1]
    segment = (rank // 4) * 2 + rank % 2  # (0, 2), (1, 3), (4, 6), ...
    order = np.lexsort((np.random.default_rng(0).random(len(rank)), segment))
    with uproot.recreate(path) as f:
        f.mktree("hits", {k: v.dtype for k, v in columns.items()})
        f["hits"].extend({k: v[order] for k, v in columns.items()})


@pytest.mark.parametrize("order", ["sorted", "mixed"])
@pytest.mark.parametrize("tracks_per_event", [3, None])
def test_chunks_mark_the_entries_of_other_events(tmp_path, order, tracks_per_event):
    """Sorted hits: each chunk's entries hold its events only (nothing to mask); events mixed
    in pairs: a chunk marks the entries of the other events it reads, which are neither
    matched nor counted."""
    af.write_acts(tmp_path, af.build_events(12), order="sorted", hits_without_particle=2)
    if order == "mixed":
        _pairs_of_events_mixed(tmp_path)
    paths, opts = (
        (tmp_path / "hits.root", tmp_path / "particles.root"),
        {"tracks_per_event": tracks_per_event},
    )
    chunks = acts.ActsChunks(*paths, step_size=150, **opts)
    reads = [chunks.hits.read(chunk) for chunk in chunks.plan()]
    assert len(reads) > 1
    marked = [h["inside"] is not None for h in reads]
    assert not any(marked) if order == "sorted" else all(marked)
    whole = read_acts(*paths, step_size=10**9, **opts)
    report = whole.attrs["hepx_report"]
    assert sum(acts._count(h) for h in reads) == report["hits_read"]
    assert report["hits_without_particle"] == 24
    chunks = acts.ActsChunks(*paths, step_size=150, **opts)
    parts = list(chunks.events())
    assert chunks.report == report
    assert ak.concatenate(parts).to_list() == whole.to_list()
