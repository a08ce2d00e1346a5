"""Reader for ACTS simulation output: ``hits.root`` (RootSimHitWriter) + particles (RootParticleWriter).

Hits are flat (one entry per hit) and, from multi-threaded runs, not sorted by event: they are
grouped by ``event_id`` with one stable sort, never a Python loop over events. Files are read
in chunks of whole events in ``event_id`` order (:class:`ActsChunks`): a pass over the hits'
``event_id`` finds the entry ranges that hold whole events (:func:`event_segments`), and each
chunk reads only its ranges and its events' particles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import InputError
from hepx.io.rootfile import (
    iterate,
    open_tree,
    read_range,
    require_branches,
    split_optional,
    warn_missing_optional,
)

log = logging.getLogger(__name__)


def register_vector() -> None:
    """Give the tracks records (``Momentum4D``) vector's behaviour: ``(l1 + l2).mass``, boosts.

    The readers call it before they hand events to the user; the conversion, which needs no
    Lorentz algebra, does not import vector (nor the sympy backend it loads)."""
    import vector

    vector.register_awkward()


Z_MASS = 91.1876  # GeV: the LRI label rule's Z mass (PDG 2022); not particle's newer PDG value

BARCODE_FIELDS = ("vertex_primary", "vertex_secondary", "particle", "generation", "sub_particle")
# (shift, width in bits) of each barcode level in the packed <= v43 particle_id.
_BARCODE_LAYOUT = {
    "vertex_primary": (52, 12),
    "vertex_secondary": (40, 12),
    "particle": (24, 16),
    "generation": (16, 8),
    "sub_particle": (0, 16),
}
# (shift, width) of the GeometryIdentifier fields.
_GEOMETRY_LAYOUT = {
    "volume_id": (56, 8),
    "boundary_id": (48, 8),
    "layer_id": (36, 12),
    "approach_id": (28, 8),
    "sensitive_id": (8, 20),
    "extra_id": (0, 8),
}
#: Hits-tree branches the ActsTrack point clouds need besides the particle link: the event
#: (grouping), the position (``pos``) and the momentum before the hit (``node_dir``).
HIT_REQUIRED = ("event_id", "tx", "ty", "tz", "tpx", "tpy", "tpz")
#: Hits-tree branches read when present (``geometry_id`` gives ``volume_id``, ``layer_id``,
#: ``sensitive_id``; ``tt`` gives ``t``, ``te`` gives ``e``); the events lack them otherwise.
HIT_OPTIONAL = ("geometry_id", "tt", "te", "index")
#: Kinematic branches of the hits tree.
HIT_KINEMATICS = ("tx", "ty", "tz", "tt", "tpx", "tpy", "tpz", "te")
#: Particles-tree branches the Z -> ll truth and the tracks need besides the ids: flavour,
#: charge, momentum and mass.
PARTICLE_REQUIRED = ("particle_type", "q", "px", "py", "pz", "m")
#: Particles-tree branches read when present (the tracks' production vertex).
PARTICLE_OPTIONAL = ("vx", "vy", "vz")
#: Branches of the particles tree read besides the ids (when present).
PARTICLE_FIELDS = (*PARTICLE_REQUIRED, *PARTICLE_OPTIONAL)
_HIT_DTYPES = {"geometry_id": np.uint64, "index": np.int32}


def pack_barcode(
    vertex_primary: np.ndarray,
    vertex_secondary: np.ndarray,
    particle: np.ndarray,
    generation: np.ndarray,
    sub_particle: np.ndarray,
) -> np.ndarray:
    """Pack barcode components into the <= v43 uint64 ``particle_id`` layout.

    Raises :class:`InputError` if a component does not fit its bit field.
    """
    out = np.zeros(np.shape(vertex_primary), dtype=np.uint64)
    values = (vertex_primary, vertex_secondary, particle, generation, sub_particle)
    for name, value in zip(BARCODE_FIELDS, values, strict=True):
        shift, width = _BARCODE_LAYOUT[name]
        value = np.asarray(value).astype(np.uint64)
        if value.size and value.max() >= (1 << width):
            raise InputError(
                f"barcode component {name} = {int(value.max())} does not fit in {width} bits"
            )
        out |= value << np.uint64(shift)
    return out


def decode_barcode(particle_id: np.ndarray) -> dict[str, np.ndarray]:
    """Split packed uint64 particle ids into the five barcode levels (uint32 arrays)."""
    pid = np.asarray(particle_id, dtype=np.uint64)
    return {
        name: ((pid >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)
        for name, (shift, width) in _BARCODE_LAYOUT.items()
    }


def decode_geometry_id(geometry_id: np.ndarray) -> dict[str, np.ndarray]:
    """Split ACTS ``GeometryIdentifier`` values into volume/boundary/layer/approach/sensitive/extra."""
    gid = np.asarray(geometry_id, dtype=np.uint64)
    return {
        name: ((gid >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)
        for name, (shift, width) in _GEOMETRY_LAYOUT.items()
    }


def detect_hits_schema(branches: set[str]) -> str:
    """Which particle link the hits tree carries: 'v43', 'v44.0' or 'v44.3'."""
    if "particle_id" in branches:
        return "v43"
    if all(f"barcode_{f}" in branches for f in BARCODE_FIELDS):
        return "v44.3"
    if "barcode" in branches:
        return "v44.0"
    raise InputError(
        "hits tree has no particle link: expected 'particle_id' (ACTS <= v43), 'barcode' "
        "(v44.0-44.2) or barcode_vertex_primary, ... (v44.3+)"
    )


#: The hits-tree branches of each schema's particle link.
_LINK = {
    "v43": ("particle_id",),
    "v44.0": ("barcode",),
    "v44.3": tuple(f"barcode_{f}" for f in BARCODE_FIELDS),
}
#: Hits-tree entries of ``event_id`` read at a time to find the cut-safe segments.
_SCAN_ENTRIES = 1 << 20


@dataclass(frozen=True)
class ActsChunk:
    """One chunk of whole events: those with ``lo <= event_id < hi`` (``None``: no bound), whose
    hits lie in the hits-tree entry ranges ``ranges`` (``[k, 2]``, start and stop, ascending;
    whole cut-safe segments, which may hold hits of other events too)."""

    lo: int | None
    hi: int | None
    ranges: np.ndarray

    @property
    def entries_read(self) -> int:
        """Hits-tree entries the chunk reads."""
        return int((self.ranges[:, 1] - self.ranges[:, 0]).sum())


class _HitsTree:
    """The hits tree: its schema, the branches read and the optional branches it lacks."""

    def __init__(self, path: Any, tree: str):
        self.path = path
        self.tree = open_tree(path, tree)
        self.schema = detect_hits_schema(set(self.tree.keys()))
        link = _LINK[self.schema]
        require_branches(
            self.tree,
            ["event_id", *link, *HIT_REQUIRED[1:]],
            what=f"the ActsTrack point clouds (ACTS simulated hits, {self.schema} schema)",
        )
        present, self.missing = split_optional(self.tree, HIT_OPTIONAL)
        self.columns = [*HIT_REQUIRED, *present]
        self.branches = [*(b for b in link if b != "barcode"), *self.columns]
        self.baskets = basket_starts(self.tree, [*link, *self.columns])
        clusters, self.basket_span = _clusters(self.tree, [*link, *self.columns])
        self._reads = _ClusterReads(clusters, self._read_range, _ColumnRows)

    def read(self, chunk: ActsChunk, extend: int = 0) -> dict[str, Any]:
        """The entries the chunk reads, in entry order, as uproot gives them (not copied where
        the dtype is right), with their ``entry`` in the tree (``entry_start``: the first one,
        for one range) and ``inside``: whether the entry's event is one of the chunk's (None:
        every entry; the others are hits of other events read with them).

        ``extend``: how far (entries) the chunk's read may go on, before its first range and
        after its last, to the nearest cluster boundaries: the baskets it opens are then read
        whole (uproot decompresses them whole anyway) and kept for the next chunk, which takes
        from them what it needs, so that each basket is decompressed once where consecutive
        chunks lie in the same baskets, however small the chunks."""
        last = len(chunk.ranges) - 1
        parts = [
            self._reads.rows(int(a), int(b), extend if i == 0 else 0, extend if i == last else 0)
            for i, (a, b) in enumerate(chunk.ranges)
        ]
        if len(parts) == 1:
            h = {**parts[0], "entry_start": int(chunk.ranges[0, 0])}
        else:
            h = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
            h["entry"] = np.concatenate([np.arange(a, b) for a, b in chunk.ranges])
        h["inside"] = _inside_mask(h["event_id"], chunk.lo, chunk.hi)
        return h

    def _read_range(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The entries ``start:stop``: the columns and ``barcode``; ``event_id`` an integer type
        of at most 32 bits (as ACTS writes it) or int64."""
        arrays = read_range(self.tree, self.branches, start, stop)
        ids = arrays["event_id"]
        small = ids.dtype.kind in "iu" and ids.dtype.itemsize <= 4  # compares exactly with int64
        out = {"event_id": ids if small else ids.astype(np.int64)}
        for k in self.columns[1:]:
            out[k] = arrays[k].astype(_HIT_DTYPES.get(k, np.float32), copy=False)
        if self.schema == "v43":
            out["barcode"] = arrays["particle_id"].astype(np.uint64, copy=False)
        elif self.schema == "v44.3":
            out["barcode"] = pack_barcode(*(arrays[f"barcode_{f}"] for f in BARCODE_FIELDS))
        else:  # v44.0: one vector<uint32> of the five levels per hit
            vec = read_range(self.tree, ["barcode"], start, stop, library="ak")["barcode"]
            nums = ak.to_numpy(ak.num(vec, axis=1))
            if len(nums) and not np.all(nums == len(BARCODE_FIELDS)):
                raise InputError(
                    f"{self.path}: branch 'barcode' must hold {len(BARCODE_FIELDS)} values per "
                    f"hit, found {int(nums[nums != len(BARCODE_FIELDS)][0])}"
                )
            comps = ak.to_numpy(ak.flatten(vec)).reshape(-1, len(BARCODE_FIELDS))
            out["barcode"] = pack_barcode(*comps.T)
        return out


class _ParticlesTree:
    """The particles tree (one entry per event, or per particle): its particle link, the fields
    read, the optional branches it lacks and, once read, its entries in ``event_id`` order."""

    def __init__(self, path: Any, tree: str):
        self.path, self.name = path, tree
        self.tree = open_tree(path, tree)
        keys = set(self.tree.keys())
        self.link = ["particle_id"] if "particle_id" in keys else list(BARCODE_FIELDS)
        require_branches(
            self.tree,
            ["event_id", *self.link, *PARTICLE_REQUIRED],
            what="the Z -> ll truth and the tracks (ACTS particles)",
        )
        present, self.missing = split_optional(self.tree, PARTICLE_OPTIONAL)
        self.fields = [*PARTICLE_REQUIRED, *present]
        self.branches = ["event_id", *self.link, *self.fields]
        self.baskets = basket_starts(self.tree, self.branches)
        clusters, self.basket_span = _clusters(self.tree, self.branches)
        self._index: tuple[np.ndarray, np.ndarray] | None = None
        read = partial(read_range, self.tree, self.branches, library="ak")
        self._reads = _ClusterReads(clusters, read, _RecordRows)

    def read(self, chunk: ActsChunk) -> dict[str, np.ndarray]:
        """The particles of the chunk's event-id range, in entry order: from the entries of
        those events only (contiguous runs, merged over gaps inside one basket and over the
        smallest others up to as many entries again)."""
        if self._index is None:  # the entries sorted by event_id: one integer per entry
            ids = read_range(self.tree, ["event_id"], 0, self.tree.num_entries)["event_id"]
            order = np.argsort(ids, kind="stable")
            self._index = (ids[order].astype(np.int64), order)
        ids, order = self._index
        first = 0 if chunk.lo is None else np.searchsorted(ids, chunk.lo)
        last = len(ids) if chunk.hi is None else np.searchsorted(ids, chunk.hi)
        wanted = np.sort(order[first:last])
        runs = np.flatnonzero(np.diff(wanted) != 1)
        starts = np.concatenate([wanted[:1], wanted[runs + 1]])
        stops = np.concatenate([wanted[runs] + 1, wanted[-1:] + 1])
        # a read may go on to the cluster boundaries within its own length or one basket
        ranges = _coalesce(starts, stops, len(wanted), self.baskets)
        reach = (ranges[:, 1] - ranges[:, 0]).clip(min=self.basket_span)
        if self.baskets is None:
            reach[:] = 0
        parts = [
            self._rows(self._reads.rows(int(a), int(b), int(r), int(r)), chunk)
            for (a, b), r in zip(ranges, reach, strict=True)
        ]
        if not parts:
            empty = {k: np.zeros(0, np.float32) for k in self.fields}
            return {"event_id": np.zeros(0, np.int64), "barcode": np.zeros(0, np.uint64), **empty}
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}

    def _rows(self, arrays: ak.Array, chunk: ActsChunk) -> dict[str, np.ndarray]:
        """One row per particle of the entries ``arrays`` whose event is in ``chunk``."""
        ids = ak.to_numpy(arrays["event_id"])
        keep = _inside_mask(ids, chunk.lo, chunk.hi)  # per entry (None: all); flattened, selected
        if keep is None:
            keep = slice(None)
        link, fields = self.link, self.fields
        if arrays["particle_type"].ndim == 2:  # one entry per event, vector branches
            counts = ak.to_numpy(ak.num(arrays["particle_type"], axis=1))
            for k in (*link, *fields):
                if not np.array_equal(ak.to_numpy(ak.num(arrays[k], axis=1)), counts):
                    raise InputError(
                        f"{self.path}: jagged branches of mismatched length: '{k}' and "
                        f"'particle_type' differ in number of particles per event"
                    )
            rows = keep if isinstance(keep, slice) else np.repeat(keep, counts)
            flat = {k: ak.to_numpy(ak.flatten(arrays[k]))[rows] for k in (*link, *fields)}
            event_id = np.repeat(ids[keep].astype(np.int64), counts[keep])
        else:  # pre-v8.3 layout: one entry per particle
            flat = {k: ak.to_numpy(arrays[k])[keep] for k in (*link, *fields)}
            event_id = ids[keep].astype(np.int64)
        if link == ["particle_id"]:
            barcode = flat["particle_id"].astype(np.uint64)
        else:
            barcode = pack_barcode(*(flat[f] for f in BARCODE_FIELDS))
        return {"event_id": event_id, "barcode": barcode, **{k: flat[k] for k in fields}}


def _inside_mask(values: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray | None:
    """:func:`_between` of ``values``, or None where every value is inside (no mask needed)."""
    if not len(values):
        return None
    if (lo is None or int(values.min()) >= lo) and (hi is None or int(values.max()) < hi):
        return None
    return _between(values, lo, hi)


def _between(values: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """Boolean per value: ``lo <= value < hi`` (``None``: no bound)."""
    values = np.asarray(values).astype(np.int64, copy=False)
    keep = np.ones(len(values), dtype=bool)
    if lo is not None:
        keep &= values >= lo
    if hi is not None:
        keep &= values < hi
    return keep


def _coalesce(
    starts: np.ndarray, stops: np.ndarray, budget: int, baskets: np.ndarray | None = None
) -> np.ndarray:
    """Ascending entry ranges ``[k, 2]`` merged over their smallest gaps while the entries of
    the gaps read in addition stay within ``budget`` (adjacent ranges always merge), and over
    every gap that lies in the baskets of the ranges on its two sides (``baskets``: the entries
    where a basket of some branch starts), since uproot decompresses a basket whole for each
    read that touches it: one read then, not two that decompress the same basket."""
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    gaps = starts[1:] - stops[:-1]
    merge = np.zeros(len(gaps), dtype=bool)
    if baskets is not None and len(gaps):
        basket = np.searchsorted(baskets, np.stack([stops[:-1] - 1, starts[1:]]), side="right")
        merge = basket[1] - basket[0] <= 1  # the gap's baskets are its neighbours'
    order = np.argsort(np.where(merge, 0, gaps), kind="stable")
    merge[order[np.cumsum(np.where(merge, 0, gaps)[order]) <= budget]] = True
    cut = np.flatnonzero(~merge)
    return np.stack(
        [np.concatenate([starts[:1], starts[cut + 1]]), np.concatenate([stops[cut], stops[-1:]])],
        axis=1,
    )


def event_segments(
    tree: Any, step: int = _SCAN_ENTRIES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events of a hits tree and its cut-safe segments, from its ``event_id`` only.

    A *cut-safe segment* is a smallest range of entries holding whole events: entry ``i`` ends
    one iff no event has hits both up to ``i`` and after it. One pass of ``step`` entries finds
    the first and last entry of each event (from the runs of equal ids: one sort of the runs,
    not of the entries); the segments are then the unions of the events' overlapping entry
    spans. Memory: one step and a few integers per event.

    Returns the distinct event ids (ascending) with the segment of each (its first hit's), and
    the stop of each segment (the next one's start).
    """
    ids, firsts, lasts = [], [], []
    for start, block in _event_blocks(tree, step):
        if not len(block):
            continue
        values, first, last = _block_spans(block)
        ids.append(values)
        firsts.append(start + first)
        lasts.append(start + last)
    ids_all = np.concatenate(ids)
    order = np.argsort(ids_all, kind="stable")
    events, at = np.unique(ids_all[order], return_index=True)
    first = np.minimum.reduceat(np.concatenate(firsts)[order], at)
    last = np.maximum.reduceat(np.concatenate(lasts)[order], at)
    # Spans in order of their first entry (distinct: one event per entry); a segment ends
    # where no earlier-starting span reaches past it, i.e. the running last before the next
    # span's first entry.
    by_first = np.argsort(first)
    reach = np.maximum.accumulate(last[by_first])
    ends = np.flatnonzero(reach[:-1] < first[by_first[1:]])
    seg_stop = np.concatenate([reach[ends], reach[-1:]]) + 1
    return events, np.searchsorted(seg_stop, first, side="right"), seg_stop


def _block_spans(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ids of ``block`` (ascending) with the first and last position of each,
    from the runs of equal consecutive ids."""
    cut = np.flatnonzero(block[1:] != block[:-1]) + 1
    run_first = np.concatenate([[0], cut])
    run_last = np.concatenate([cut - 1, [len(block) - 1]])
    values = block[run_first]
    if len(values) > 1 and np.any(values[1:] < values[:-1]):
        order = np.argsort(values, kind="stable")
        values, run_first, run_last = values[order], run_first[order], run_last[order]
    head = np.concatenate([[True], values[1:] != values[:-1]])
    at = np.flatnonzero(head)
    return values[at], np.minimum.reduceat(run_first, at), np.maximum.reduceat(run_last, at)


def basket_starts(tree: Any, branches: Sequence[str]) -> np.ndarray:
    """The entries where a basket of any of ``branches`` starts (ascending)."""
    return np.unique(np.concatenate([np.asarray(tree[b].entry_offsets[:-1]) for b in branches]))


class _ColumnRows:
    """Rows as ``{name: array}`` (:class:`_ClusterReads`)."""

    @staticmethod
    def length(rows: dict[str, np.ndarray]) -> int:
        return len(next(iter(rows.values())))

    @staticmethod
    def slice(rows: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
        return {k: v[a:b] for k, v in rows.items()}

    @staticmethod
    def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


class _RecordRows:
    """Rows as an awkward array of records (:class:`_ClusterReads`)."""

    length = staticmethod(len)

    @staticmethod
    def slice(rows: ak.Array, a: int, b: int) -> ak.Array:
        return rows[a:b]

    concat = staticmethod(ak.concatenate)


class _ClusterReads:
    """Entry ranges of a tree, read so that each basket is decompressed once when consecutive
    ranges lie in the same baskets: a read may go on to the nearest cluster boundaries (where
    every branch read starts a basket; uproot decompresses the baskets it touches whole
    anyway), and it is kept, so that the next ranges take from it what it holds.

    ``read(start, stop)`` reads the entries; ``rows`` (:class:`_ColumnRows`,
    :class:`_RecordRows`) slices, measures and joins what it returns."""

    def __init__(self, clusters: np.ndarray, read: Callable[[int, int], Any], rows: Any):
        self.clusters, self.read, self.kind = clusters, read, rows
        self._last: tuple[int, Any] | None = None  # (first entry, rows) of the last read

    def rows(self, start: int, stop: int, back: int, ahead: int) -> Any:
        """The entries ``start:stop``: those the last read holds from ``start`` on, the rest
        read from the cluster boundary at most ``back`` entries before ``start`` (none if the
        last read gave the first ones) to the one at most ``ahead`` after ``stop``."""
        kind, parts = self.kind, []
        if self._last is not None:
            first, rows = self._last
            end = first + kind.length(rows)
            if first <= start < end:
                parts.append(kind.slice(rows, start - first, min(stop, end) - first))
                start, back = min(stop, end), 0
        if start < stop:
            self._last = None  # not held beside the new read
            below = int(self.clusters[np.searchsorted(self.clusters, start, side="right") - 1])
            above = int(self.clusters[np.searchsorted(self.clusters, stop)])
            lo = below if start - below <= back else start
            hi = above if above - stop <= ahead else stop
            rows = self.read(lo, hi)
            self._last = (lo, rows)
            parts.append(kind.slice(rows, start - lo, stop - lo))
        return parts[0] if len(parts) == 1 else kind.concat(parts)


def _clusters(tree: Any, branches: Sequence[str]) -> tuple[np.ndarray, int]:
    """The entries where a basket of every one of ``branches`` starts (uproot's
    ``common_entry_offsets``: the cluster boundaries, with the number of entries at the end)
    and the most entries one basket of them holds."""
    wanted = set(branches)
    common = np.asarray(tree.common_entry_offsets(filter_name=wanted.__contains__), np.int64)
    offsets = [np.asarray(tree[b].entry_offsets) for b in wanted]
    span = max(int(np.diff(o).max()) if len(o) > 1 else 0 for o in offsets)
    return common, span


def _event_blocks(tree: Any, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first entry, event ids as int64)`` of the hits tree, ``step`` entries at a time."""
    start = 0
    for arrays in iterate(tree, ["event_id"], step_size=step, library="np"):
        block = arrays["event_id"].astype(np.int64)
        yield start, block
        start += len(block)


def plan_chunks(
    events: np.ndarray,
    segment: np.ndarray,
    seg_stop: np.ndarray,
    target: int,
    baskets: np.ndarray | None = None,
) -> Iterator[ActsChunk]:
    """Chunks of consecutive events in ``event_id`` order (:func:`event_segments`' output),
    each keeping at most ``max(target, its first event's segment)`` hits-tree entries: the
    whole segments of its events, read in ranges merged over the smallest gaps within that
    bound and over gaps inside one basket (``baskets``, :func:`basket_starts`; a range then
    exceeds the bound only within one basket, which uproot holds whole anyway).

    A chunk takes events while the distinct segments they lie in hold at most ``target``
    entries, or only events of its first segment when that one is larger. The loop runs over
    chunks, each over a window of events that doubles until the chunk ends inside it.
    """
    seg_start = np.concatenate([[0], seg_stop[:-1]]).astype(np.int64)
    size = seg_stop - seg_start
    n, a = len(events), 0
    while a < n:
        limit = max(int(target), int(size[segment[a]]))
        width = 64
        while True:
            window = segment[a : a + width]
            new = np.zeros(len(window), dtype=bool)
            new[np.unique(window, return_index=True)[1]] = True
            cost = np.cumsum(np.where(new, size[window], 0))
            fit = int(np.searchsorted(cost, limit, side="right"))
            if fit < len(window) or a + width >= n:
                break
            width *= 2
        b = a + fit
        segs = np.unique(segment[a:b])
        slack = limit - int(cost[fit - 1])
        ranges = _coalesce(seg_start[segs], seg_stop[segs], slack, baskets)
        lo = int(events[a]) if a > 0 else None
        yield ActsChunk(lo=lo, hi=int(events[b]) if b < n else None, ranges=ranges)
        a = b


def _target_entries(tree: Any, step_size: int | str, branches: Sequence[str]) -> int:
    """Hits-tree entries per chunk: ``step_size`` itself (an int) or the entries of that much
    memory of ``branches`` (``"100 MB"``, as uproot's ``iterate`` counts)."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer, str)):
        raise InputError(f"step_size must be a number of entries or a size, got {step_size!r}")
    if not isinstance(step_size, str):
        if step_size < 1:
            raise InputError(f"step_size must be >= 1 entry, got {step_size}")
        return int(step_size)
    try:
        return max(1, int(tree.num_entries_for(step_size, list(branches))))
    except Exception as err:
        raise InputError(f"step_size {step_size!r}: not a size ({err})") from None


class ActsChunks:
    """The events of ACTS hits and particles files, in chunks of whole events (bounded memory).

    Takes :func:`read_acts`'s arguments; iterate (once) for the chunks' events, as
    :func:`read_acts` returns them, in the same order (``event_id``): their concatenation is
    :func:`read_acts`'s result. A chunk holds about ``step_size`` hits-tree entries (an int: that
    many; a size such as ``"100 MB"``: that much of the branches read) and never splits an
    event, whatever the order of the hits (:func:`event_segments`, :func:`plan_chunks`); only
    the particles of its events are read. :attr:`report` counts what was read and dropped so
    far. Memory: one chunk and the rest of the baskets it opened in both trees (kept for the
    next chunks; hits: at most another ``step_size`` or one basket per branch), plus a few
    integers per event and per particles-tree entry.

    Example
    -------
    >>> for events in ActsChunks("hits.root", "particles.root", step_size=500_000):  # doctest: +SKIP
    ...     print(len(events))
    """

    def __init__(
        self,
        hits: str | os.PathLike,
        particles: str | os.PathLike,
        *,
        hits_tree: str = "hits",
        particles_tree: str = "particles",
        tracks_per_event: int | None = 10,
        min_track_hits: int = 3,
        min_lepton_hits: int = 3,
        z_mass: float = Z_MASS,
        mass_window: float = 2.0,
        seed: int = 0,
        step_size: int | str = "100 MB",
        nonfinite: str = "error",
    ):
        _check_options(
            {k: v for k, v in locals().items() if k not in ("self", "hits", "particles")}
        )
        if tracks_per_event is not None and tracks_per_event < 2:
            raise InputError(
                f"tracks_per_event must be >= 2 (the signal pair) or None, got {tracks_per_event}"
            )
        self.hits = _HitsTree(hits, hits_tree)
        self.particles = _ParticlesTree(particles, particles_tree)
        if self.hits.tree.num_entries == 0:
            raise InputError(f"{hits}: the hits tree '{hits_tree}' has no entries (an empty file)")
        if self.particles.tree.num_entries == 0:
            raise InputError(
                f"{particles}: the particles tree '{particles_tree}' holds no particle"
            )
        self.selection = {
            "tracks_per_event": tracks_per_event,
            "min_track_hits": min_track_hits,
            "truth": (min_lepton_hits, z_mass, mass_window),
            "seed": seed,
            "nonfinite": nonfinite,
        }
        self.target = _target_entries(self.hits.tree, step_size, self.hits.branches)
        # A read may go on to the end of the baskets it opens (uproot decompresses them whole
        # anyway) and keep those rows for the next chunk: at most a chunk or a basket more.
        has_baskets = self.hits.baskets is not None
        self.extend = max(self.target, self.hits.basket_span) if has_baskets else 0
        self.report: dict[str, Any] = {
            "hits_read": 0,
            "particles_read": 0,
            "missing_optional_branches": self.hits.missing + self.particles.missing,
            "dropped_nonfinite_hits": 0,
            "dropped_nonfinite_particles": 0,
            **dict.fromkeys(_CHUNK_COUNTS, 0),
            "schema": self.hits.schema,
        }
        _warn_missing(self.hits.tree, self.hits.missing, "hits")
        _warn_missing(self.particles.tree, self.particles.missing, "tracks")

    def plan(self) -> Iterator[ActsChunk]:
        """The chunks (from a pass over the hits tree's ``event_id``), lazily."""
        events, segment, seg_stop = event_segments(self.hits.tree, max(self.target, _SCAN_ENTRIES))
        return plan_chunks(events, segment, seg_stop, self.target, self.hits.baskets)

    def __iter__(self) -> Iterator[ak.Array]:
        register_vector()
        yield from self.events()

    def events(self) -> Iterator[ak.Array]:
        """The chunks' events (non-empty), without registering vector's behaviour."""
        for events, _ in self.pieces():
            if len(events):
                yield events

    def pieces(self) -> Iterator[tuple[ak.Array, int]]:
        """Every chunk's events (possibly none kept) and the hits-tree entries of its events."""
        offset = 0  # particles before the chunk, in event_id order: the track sampling's draws
        nonfinite = self.selection["nonfinite"]
        for chunk in self.plan():
            h, p = self.hits.read(chunk, self.extend), self.particles.read(chunk)
            part = {"hits_read": _count(h), "particles_read": len(p["event_id"])}
            h = _finite_rows(h, HIT_USED, nonfinite, self.hits.path, "hits", part)
            p = _finite_rows(p, PARTICLE_USED, nonfinite, self.particles.path, "particles", part)
            events = _chunk_events(h, p, self.particles.path, self.selection, offset, part)
            offset += len(p["event_id"])
            for key, value in part.items():
                self.report[key] += value
            yield events, part["hits_read"]

    def check_kept(self) -> None:
        """Raise :class:`InputError` if no particle was read or no event kept (call after
        iterating); log the report otherwise."""
        if self.report["particles_read"] == 0:
            raise InputError(
                f"{self.particles.path}: the particles tree '{self.particles.name}' holds no "
                "particle"
            )
        if self.report["events_kept"] == 0:
            raise InputError(
                f"{self.hits.path}: no event has a track with >= "
                f"{self.selection['min_track_hits']} hits"
            )
        _log_report(self.hits.path, self.report)

    def finish(self, parts: Sequence[ak.Array]) -> ak.Array:
        """The chunks' events ``parts`` as one array with the report attached (what
        :func:`read_acts` returns), or an error if none was kept."""
        self.check_kept()
        events = parts[0] if len(parts) == 1 else ak.concatenate(parts)
        attrs = {"hepx_report": dict(self.report), "hepx_source": str(self.hits.path)}
        return ak.Array(events, attrs=attrs)


#: Report counts of each chunk, added up.
_CHUNK_COUNTS = (
    "hits_without_particle",
    "events_read",
    "events_ambiguous_z",
    "dropped_no_tracks",
    "events_kept",
)


def _check_options(options: dict[str, Any]) -> None:
    """The reader's keyword arguments against the ActsTrack reader schema (one-line
    :class:`~hepx.errors.ConfigError` naming the option, what it must be and what it got)."""
    from hepx.kinds import get_kind

    get_kind("actstrack").reader_options(options, where="read_acts")


def read_acts(
    hits: str | os.PathLike,
    particles: str | os.PathLike,
    *,
    hits_tree: str = "hits",
    particles_tree: str = "particles",
    tracks_per_event: int | None = 10,
    min_track_hits: int = 3,
    min_lepton_hits: int = 3,
    z_mass: float = Z_MASS,
    mass_window: float = 2.0,
    seed: int = 0,
    step_size: int | str = "100 MB",
    nonfinite: str = "error",
) -> ak.Array:
    """Read ACTS hits and particles into one awkward record per event, with Z -> ll truth.

    An event is positive (``label`` 1) when it has exactly one opposite-charge, same-flavour
    lepton pair (e or mu, each with at least ``min_lepton_hits`` hits) whose invariant mass is
    within ``mass_window`` GeV of ``z_mass``; the hits of that pair get ``node_label`` 1.
    Tracks are particles with at least ``min_track_hits`` hits; ``tracks_per_event`` of them are
    kept per event (the signal pair always, the rest sampled without replacement with ``seed``)
    and only their hits are returned. ``tracks_per_event=None`` reads full events: every track
    and every hit, also those of particles with fewer than ``min_track_hits`` hits and those
    without a particle (``track`` -1 for both), and every event with a hit.

    A NaN or infinite hit position or momentum (``tx, ty, tz, tpx, tpy, tpz``) or particle
    momentum or mass is an error naming the file, branch and count (``nonfinite="error"``), or
    the hit / particle is dropped and counted in the report (``nonfinite="drop"``; a dropped
    particle's hits then have no particle).

    The hits schema is detected from the branch names (<= v43 packed ``particle_id``,
    v44.0 ``barcode`` vector, v44.3 ``barcode_*``), as is the particles layout (one entry per
    event with vector branches, or one entry per particle). The files are read in chunks of
    whole events of about ``step_size`` hits-tree entries (:class:`ActsChunks`, which gives
    the chunks one at a time); the result does not depend on ``step_size``.

    Returns
    -------
    awkward.Array
        One record per event with at least one kept track, in ``event_id`` order: ``event_id``
        (int64), ``label`` (int8), ``n_particles`` (tracks before sampling), ``hits`` (jagged:
        ``x, y, z`` [mm], ``t`` [mm/c], ``px, py, pz, e`` [GeV] before the hit, ``volume_id``,
        ``layer_id``, ``sensitive_id``, ``geometry_id``, ``barcode``, ``track`` (index into
        ``tracks``), ``index`` (hit number along the trajectory), ``node_label`` (int8),
        ``hit_index`` (entry in the hits tree)) and ``tracks`` (jagged Lorentz vectors, vector's
        ``Momentum4D``: ``pt, eta, phi, mass`` stored, ``px, py, pz, energy, ...`` computed;
        ``barcode``, ``pdg``, ``charge``, ``vx, vy, vz``, ``n_hits``, ``is_signal``).
        ``events.attrs["hepx_report"]`` counts what was read and dropped.

    Required: ``HIT_REQUIRED``, ``PARTICLE_REQUIRED`` and the particle link. Without optional
    ones (``HIT_OPTIONAL``, ``PARTICLE_OPTIONAL``) the events lack their fields, named once per
    tree in a warning and in the report's ``missing_optional_branches``.

    Example
    -------
    >>> events = read_acts("hits.root", "particles.root")               # doctest: +SKIP
    >>> legs = events.tracks[events.tracks.is_signal]                    # doctest: +SKIP
    >>> (legs[:, 0] + legs[:, 1]).mass                                   # doctest: +SKIP
    """
    options = {k: v for k, v in locals().items() if k not in ("hits", "particles")}
    chunks = ActsChunks(hits, particles, **options)
    register_vector()
    return chunks.finish(list(chunks.events()))


def _chunk_events(
    h: dict[str, np.ndarray],
    p: dict[str, np.ndarray],
    particles: Any,
    selection: Mapping[str, Any],
    offset: int,
    report: dict[str, Any],
) -> ak.Array:
    """The events of one chunk: hits ``h`` and particles ``p`` of whole events (``offset``: the
    particles of the events before them), counted into ``report``."""
    p, matched, h_prow, n_hits = _match_hits(h, p, particles)
    report["hits_without_particle"] = _count(h) - int(np.count_nonzero(matched))
    # Events are those of the particles table (sorted by event_id through the key order).
    ev_ids, p_ev = _sorted_unique(p["event_id"])
    # Events with hits but no particle record at all count as read (and dropped).
    inside = h.get("inside")
    unmatched = ~matched if inside is None else inside & ~matched
    orphan_events = np.setdiff1d(np.unique(h["event_id"][unmatched]), ev_ids)
    report["events_read"] = len(ev_ids) + len(orphan_events)
    is_signal = _z_truth(p, p_ev, len(ev_ids), n_hits, *selection["truth"], report)
    candidate = n_hits >= selection["min_track_hits"]
    keep = _sample_tracks(
        p_ev,
        len(ev_ids),
        candidate,
        is_signal,
        selection["tracks_per_event"],
        (selection["seed"], offset),
    )
    full = selection["tracks_per_event"] is None
    truth = (n_hits, is_signal, candidate, keep)
    events = _assemble(h, p, p_ev, ev_ids, matched, h_prow, truth, all_hits=full)
    report["dropped_no_tracks"] = int(report["events_read"] - len(events))
    report["events_kept"] = len(events)
    return events


#: The event fields an optional branch gives.
_OPTIONAL_FIELDS = {
    "geometry_id": ("volume_id", "layer_id", "sensitive_id", "geometry_id"),
    "tt": ("t",),
    "te": ("e",),
    "index": ("index",),
    **{k: (k,) for k in PARTICLE_OPTIONAL},
}


def _warn_missing(tree: Any, missing: Sequence[str], record: str) -> None:
    """One warning naming the optional branches ``tree`` lacks and the fields then absent."""
    fields = ", ".join(f"{record}.{f}" for b in missing for f in _OPTIONAL_FIELDS[b])
    warn_missing_optional(tree, missing, f"the events have no {fields}")


#: Branches whose values the point clouds and the truth use: checked to be finite.
HIT_USED = ("tx", "ty", "tz", "tpx", "tpy", "tpz")
PARTICLE_USED = ("px", "py", "pz", "m")


def _finite_rows(
    rows: dict[str, Any],
    names: Sequence[str],
    nonfinite: str,
    path: Any,
    what: str,
    report: dict[str, Any],
) -> dict[str, Any]:
    """``rows`` without entries whose ``names`` values are NaN or infinite (``"drop"``, counted
    as ``dropped_nonfinite_<what>``), or an error naming the branch and count (``"error"``).

    With ``rows["inside"]`` (the hits: :meth:`_HitsTree.read`) only the entries inside count,
    and a dropped one leaves ``inside``, the arrays stay whole."""
    masked, inside = "inside" in rows, rows.get("inside")
    report[f"dropped_nonfinite_{what}"] = 0
    if all(_all_finite(rows[name]) for name in names):  # two reductions each, no mask
        return rows
    bad = np.zeros(len(rows[names[0]]), dtype=bool)
    for name in names:
        bad_here = ~np.isfinite(rows[name])
        if inside is not None:
            bad_here &= inside
        if bad_here.any() and nonfinite == "error":
            raise InputError(
                f"{path}: branch {name} has {int(bad_here.sum())} non-finite values (NaN or "
                f"inf) in {what}; fix the file or read it with nonfinite: drop"
            )
        bad |= bad_here
    report[f"dropped_nonfinite_{what}"] = int(bad.sum())
    if not bad.any():
        return rows
    if masked:
        return {**rows, "inside": ~bad if inside is None else inside & ~bad}
    kept = {k: v[~bad] for k, v in rows.items()}
    kept.setdefault("entry", np.flatnonzero(~bad))  # the tree entries of the kept rows
    return kept


def _all_finite(values: np.ndarray) -> bool:
    """Whether no value is NaN or infinite (min and max propagate both)."""
    return not len(values) or bool(np.isfinite(values.min()) & np.isfinite(values.max()))


def _count(h: Mapping[str, Any]) -> int:
    """The hits of the chunk's events among the entries read (``h["inside"]``)."""
    inside = h.get("inside")
    return len(h["event_id"]) if inside is None else int(np.count_nonzero(inside))


def _assemble(h, p, p_ev, ev_ids, matched, h_prow, truth, *, all_hits=False):
    """The events with kept tracks: per event the label, the hits of its kept tracks (in entry
    order) and the kept tracks (in barcode order), as one awkward array. ``truth`` is
    ``(n_hits, is_signal, candidate, keep)`` per particle row.

    ``all_hits`` (full events): every hit of the events, also those of particles that are no
    track and those without a particle (``track`` -1), and every event with a hit."""
    n_hits, is_signal, candidate, keep = truth
    n_events = len(ev_ids)
    label = np.zeros(n_events, dtype=np.int8)
    np.add.at(label, p_ev[is_signal], 1)
    label = (label > 0).astype(np.int8)
    n_candidates = np.bincount(p_ev[candidate], minlength=n_events)
    # Kept tracks, ordered by (event, barcode code): local track index inside the event.
    t_rows = np.flatnonzero(keep)
    t_counts = np.bincount(p_ev[t_rows], minlength=n_events)
    t_start = np.concatenate([[0], np.cumsum(t_counts)[:-1]])
    local_of_row = np.full(len(p_ev), -1, dtype=np.int64)
    local_of_row[t_rows] = np.arange(len(t_rows)) - t_start[p_ev[t_rows]]
    # Kept hits, ordered by (event, original entry).
    h_sel, h_event = _kept_hits(h, ev_ids, p_ev, matched, h_prow, keep, all_hits)
    h_rows = h_prow[h_sel]  # -1: no particle (full events only)
    h_counts = np.bincount(h_event, minlength=n_events)
    has_particle = h_rows >= 0
    track = np.where(has_particle, local_of_row[h_rows], -1)
    signal = has_particle & is_signal[h_rows]
    hit_rec = ak.zip(_hit_fields(h, h_sel, track, signal))
    # tracks are Lorentz vectors (vector's Momentum4D): tracks.px, (l1 + l2).mass, ...
    track_rec = ak.zip(_track_fields(p, t_rows, n_hits, is_signal), with_name="Momentum4D")
    ev_keep = h_counts > 0 if all_hits else t_counts > 0
    return ak.zip(
        {
            "event_id": ev_ids[ev_keep].astype(np.int64),
            "label": label[ev_keep],
            "n_particles": n_candidates[ev_keep].astype(np.int32),
            "hits": ak.unflatten(hit_rec, h_counts)[ev_keep],
            "tracks": ak.unflatten(track_rec, t_counts)[ev_keep],
        },
        depth_limit=1,
    )


def _kept_hits(h, ev_ids, p_ev, matched, h_prow, keep, all_hits):
    """Rows of ``h`` kept, ordered by (event, entry), and the event index of each: the hits of
    kept tracks, or (``all_hits``) every hit of an event of ``ev_ids``."""
    if all_hits:
        ev = _runs_searchsorted(ev_ids, h["event_id"])
        ev_c = np.minimum(ev, max(len(ev_ids) - 1, 0))
        known = (ev < len(ev_ids)) & (ev_ids[ev_c] == h["event_id"]) if len(ev_ids) else ev < 0
        if h.get("inside") is not None:
            known &= h["inside"]
        h_sel = np.flatnonzero(known)
        h_event = ev_c[h_sel]
    else:
        h_sel = np.flatnonzero(np.append(keep, False)[h_prow])  # h_prow -1: not matched
        h_event = p_ev[h_prow[h_sel]]
    order = _stable_order(h_event)  # keeps the entry order inside an event
    return (h_sel, h_event) if order is None else (h_sel[order], h_event[order])


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of ascending ``values``, from their runs."""
    new = np.ones(len(values), dtype=bool)
    new[1:] = values[1:] != values[:-1]
    return values[new], np.cumsum(new) - 1


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The start and length of each run of equal consecutive ``values``."""
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], starts]) if len(values) else starts
    return starts, np.diff(starts, append=len(values))


def _runs_searchsorted(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.searchsorted(sorted_values, queries)``, searched once per run of equal queries."""
    starts, lengths = _runs(queries)
    if len(starts) > len(queries) // 4:
        return np.searchsorted(sorted_values, queries)
    return np.repeat(np.searchsorted(sorted_values, queries[starts]), lengths)


def _stable_order(keys: np.ndarray) -> np.ndarray | None:
    """``np.argsort(keys, kind="stable")``, or None where ``keys`` are already ascending; the
    runs of equal keys are sorted, not the keys, where they are few."""
    starts, lengths = _runs(keys)
    if len(starts) > len(keys) // 4:
        return np.argsort(keys, kind="stable")
    heads = keys[starts]
    if np.all(heads[1:] > heads[:-1]):
        return None
    by_key = np.argsort(heads, kind="stable")
    lengths = lengths[by_key]
    shift = starts[by_key] - (np.cumsum(lengths) - lengths)  # old minus new start of the run
    return np.repeat(shift, lengths) + np.arange(len(keys))


def _log_report(hits: Any, report: Mapping[str, Any]) -> None:
    log.info(
        "%s: %d events read, %d kept (%d without tracks), %d hits without a particle",
        hits,
        report["events_read"],
        report["events_kept"],
        report["dropped_no_tracks"],
        report["hits_without_particle"],
    )


def _match_hits(
    h: Mapping[str, np.ndarray], p: Mapping[str, np.ndarray], particles: Any
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Join hits to particles on (event, barcode), vectorised.

    Returns the particles sorted by (event, barcode), whether each hit found its particle, the
    particle row of each hit (-1: none) and the number of hits of each particle.
    """
    p = _by_event_barcode(p)
    p_ev, p_bc = p["event_id"], p["barcode"]
    same = (p_ev[1:] == p_ev[:-1]) & (p_bc[1:] == p_bc[:-1])
    if same.any():
        dup = int(np.flatnonzero(same)[0])
        raise InputError(
            f"{particles}: particle {int(p_bc[dup])} appears twice in event {int(p_ev[dup])}"
        )
    h_prow = _hit_rows(p_ev, p_bc, h["event_id"], h["barcode"])
    if h.get("inside") is not None:  # hits of other events (or dropped) match nothing
        h_prow[~h["inside"]] = -1
    matched = h_prow >= 0
    return p, matched, h_prow, np.bincount(h_prow[matched], minlength=len(p_ev))


def _by_event_barcode(p: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The particles sorted by (event, barcode): by event only (from the runs of events) where
    each event's barcodes already ascend, as the writers give them."""
    order = _stable_order(p["event_id"])
    ev, bc = (p[k] if order is None else p[k][order] for k in ("event_id", "barcode"))
    if not np.all((bc[1:] > bc[:-1]) | (ev[1:] != ev[:-1])):
        order = np.lexsort((p["barcode"], p["event_id"]))
    return dict(p) if order is None else {k: v[order] for k, v in p.items()}


def _hit_rows(p_ev: np.ndarray, p_bc: np.ndarray, ev: np.ndarray, bc: np.ndarray) -> np.ndarray:
    """The row of the particle of each hit ``(ev, bc)`` (-1: none) among the particles
    ``(p_ev, p_bc)`` (sorted by event, distinct pairs): the hit's event (searched once per run
    of hits of one event) and barcode code (a hash table of the particles' distinct barcodes),
    then a dense (event, code) table, or a hash table of the pairs where the dense one would
    outgrow the chunk."""
    if not len(p_ev):
        return np.full(len(ev), -1, dtype=np.int64)
    ev_ids, p_loc = _sorted_unique(p_ev)
    codes = np.unique(p_bc)
    p_code = np.searchsorted(codes, p_bc)
    loc = np.minimum(_runs_searchsorted(ev_ids, ev), len(ev_ids) - 1)
    code = _KeyTable(codes, spread=3).find(bc)  # few codes: a sparse table, fewer probes
    bad = code < 0
    bad |= ev_ids[loc] != ev
    if len(ev_ids) * len(codes) <= 4 * (len(ev) + len(p_ev)):
        table = np.full(len(ev_ids) * len(codes) + 1, -1, dtype=_index_dtype(len(p_ev)))
        table[p_loc * len(codes) + p_code] = np.arange(len(p_ev))
        at = loc * len(codes)
        at += code
        at[bad] = len(table) - 1
        return table[at]
    pairs = _KeyTable((p_loc.astype(np.uint64) << np.uint64(32)) | p_code.astype(np.uint64))
    rows = pairs.find((loc.astype(np.uint64) << np.uint64(32)) | code.astype(np.uint64))
    rows[bad] = -1
    return rows


class _KeyTable:
    """A hash table of distinct uint64 keys to their index, built and probed with whole-array
    operations: open addressing with linear probing, one round per probe step (a few), never a
    loop over keys. Empty slots hold ``len(keys)``, the index of a sentinel key."""

    _MIX = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, keys: np.ndarray, spread: int = 1):
        n = len(keys)
        self.keys = np.append(keys, np.uint64(0))
        self.bits = max(4, (2 * n - 1).bit_length() + spread)  # load at most 2**-(1 + spread)
        self.slots = np.full(1 << self.bits, n, dtype=_index_dtype(n + 1))
        todo, slot = np.arange(n), self._slot(keys)
        while len(todo):  # each free slot takes one of the keys that probe it
            free = self.slots[slot] == n
            self.slots[slot[free]] = todo[free]
            left = self.slots[slot] != todo
            todo, slot = todo[left], self._next(slot[left])

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        slot = keys >> np.uint64(32)  # high and low halves mixed, then Fibonacci hashing:
        slot ^= keys  # the top bits of the product
        slot *= self._MIX
        slot >>= np.uint64(64 - self.bits)
        return slot.view(np.int64)

    def _next(self, slot: np.ndarray) -> np.ndarray:
        return (slot + 1) & ((1 << self.bits) - 1)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The index of each of ``keys`` (the slots' integer type), -1 where it is not in the
        table."""
        empty = len(self.keys) - 1
        slot = self._slot(keys)
        index = self.slots[slot]
        found = np.take(self.keys, index) == keys
        used = index != empty
        found &= used
        todo = np.flatnonzero(used & ~found)  # probe on: the next slot
        while len(todo):
            slot[todo] = self._next(slot[todo])
            at = index[todo] = self.slots[slot[todo]]
            used = at != empty
            hit = (self.keys[at] == keys[todo]) & used
            found[todo] = hit
            todo = todo[used & ~hit]
        index[~found] = -1
        return index


def _index_dtype(n: int) -> type:
    """The integer type of indices below ``n`` (and -1): int32 where it holds them."""
    return np.int32 if n < 2**31 else np.int64


def _sample_tracks(
    p_ev: np.ndarray,
    n_events: int,
    candidate: np.ndarray,
    is_signal: np.ndarray,
    tracks_per_event: int | None,
    seed: tuple[int, int],
) -> np.ndarray:
    """Boolean per particle: a kept track. Sampled without replacement with one random key per
    particle, the signal pair first, up to ``tracks_per_event`` per event (None: all).

    ``seed`` is ``(seed, offset)``: the keys are draws ``offset, offset + 1, ...`` of the
    stream of ``seed``, so a chunk of events gets the keys a whole-file read gives them."""
    if tracks_per_event is None:
        return candidate
    rng = np.random.default_rng(seed[0])
    rng.bit_generator.advance(seed[1])
    sort_key = rng.random(len(p_ev))
    sort_key[is_signal] = -1.0
    # Ranks among the candidates only: the others sort last (they would get key 2.0).
    rows = _by_event_key(p_ev, sort_key, np.flatnonzero(candidate), n_events)
    ev = p_ev[rows]
    rank = np.arange(len(rows)) - np.searchsorted(ev, np.arange(n_events))[ev]
    keep = np.zeros(len(p_ev), dtype=bool)
    keep[rows] = rank < tracks_per_event
    return keep


def _by_event_key(p_ev: np.ndarray, key: np.ndarray, rows: np.ndarray, n_events: int) -> np.ndarray:
    """``rows`` sorted by (event, key), as ``np.lexsort((key[rows], p_ev[rows]))`` but for the
    order among keys -1 (the signal pair, kept whatever their order): one quicksort of the keys,
    then a stable radix sort of the events (< 2**16 of them); the lexsort where keys >= 0 tie."""
    by_key = np.argsort(key[rows])
    sorted_key = key[rows[by_key]]
    if n_events >= 1 << 16 or np.any((sorted_key[1:] == sorted_key[:-1]) & (sorted_key[1:] >= 0)):
        return rows[np.lexsort((key[rows], p_ev[rows]))]
    rows = rows[by_key]
    return rows[np.argsort(p_ev[rows].astype(np.uint16), kind="stable")]


def _hit_fields(
    h: Mapping[str, np.ndarray], sel: np.ndarray, track: np.ndarray, signal: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-hit fields of the kept hits ``sel`` (rows of ``h``; ``h["entry"]``, when there,
    maps them to entries of the hits tree)."""

    def take(name: str) -> np.ndarray:
        return np.take(h[name], sel)

    out = {"x": take("tx"), "y": take("ty"), "z": take("tz")}
    if "tt" in h:  # the optional branches only when the file has them
        out["t"] = take("tt")
    out.update(px=take("tpx"), py=take("tpy"), pz=take("tpz"))
    if "te" in h:
        out["e"] = take("te")
    if "geometry_id" in h:
        gid = take("geometry_id")
        for name in ("volume_id", "layer_id", "sensitive_id"):  # as decode_geometry_id
            shift, width = _GEOMETRY_LAYOUT[name]
            field = (gid >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            out[name] = field.astype(np.uint32)
        out["geometry_id"] = gid
    out["barcode"] = take("barcode")
    out["track"] = track.astype(np.int32)
    if "index" in h:
        out["index"] = take("index").astype(np.int32, copy=False)
    out["node_label"] = signal.astype(np.int8)
    entry = np.take(h["entry"], sel) if "entry" in h else h.get("entry_start", 0) + sel
    out["hit_index"] = entry.astype(np.int64, copy=False)
    return out


def _track_fields(
    p: Mapping[str, np.ndarray], rows: np.ndarray, n_hits: np.ndarray, is_signal: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-track fields of the kept particles ``rows``."""
    px, py, pz = (p[k][rows].astype(np.float64) for k in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.full_like(pz, np.inf), where=pt > 0))
    out = {
        "barcode": p["barcode"][rows],
        "pdg": p["particle_type"][rows].astype(np.int32),
        "charge": p["q"][rows].astype(np.float32),
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": np.arctan2(py, px).astype(np.float32),
        "mass": p["m"][rows].astype(np.float32),
    }
    out.update({k: p[k][rows].astype(np.float32) for k in PARTICLE_OPTIONAL if k in p})
    out["n_hits"] = n_hits[rows].astype(np.int32)
    out["is_signal"] = is_signal[rows]
    return out


def _pair_mass(
    p: Mapping[str, np.ndarray], rows: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Invariant mass of the pairs ``(rows[a[i]], rows[b[i]])`` of particles (rows of ``p``),
    in float64: ``sqrt((E_a + E_b)^2 - |p_a + p_b|^2)`` with ``E = sqrt(|p|^2 + m^2)``."""
    mom = np.stack([p[k][rows].astype(np.float64) for k in ("px", "py", "pz")], axis=1)
    energy = np.sqrt(np.sum(mom**2, axis=1) + p["m"][rows].astype(np.float64) ** 2)
    total = mom[a] + mom[b]
    m2 = (energy[a] + energy[b]) ** 2 - np.sum(total**2, axis=1)
    return np.sqrt(np.maximum(m2, 0.0))


def _z_truth(
    p: Mapping[str, np.ndarray],
    p_ev: np.ndarray,
    n_events: int,
    n_hits: np.ndarray,
    min_lepton_hits: int,
    z_mass: float,
    mass_window: float,
    report: dict[str, int],
) -> np.ndarray:
    """Boolean per particle: member of the event's unique Z -> ll candidate pair."""
    pdg = p["particle_type"].astype(np.int64)
    lep_rows = np.flatnonzero(np.isin(np.abs(pdg), (11, 13)) & (n_hits >= min_lepton_hits))
    lep_ev = p_ev[lep_rows]
    counts = np.bincount(lep_ev, minlength=n_events)
    # Pairs inside each event: combinations of local indices (lep_rows is sorted by event),
    # then the pair's invariant mass on flat arrays.
    local = ak.unflatten(np.arange(len(lep_rows)), counts)
    ia, ib = (ak.to_numpy(ak.flatten(x)) for x in ak.unzip(ak.argcombinations(local, 2)))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pair_ev = np.repeat(np.arange(n_events), ak.to_numpy(ak.num(ak.argcombinations(local, 2))))
    ia, ib = ia + offsets[pair_ev], ib + offsets[pair_ev]
    mass = _pair_mass(p, lep_rows, ia, ib)  # the candidate leptons' kinematics only
    flavour, charge = np.abs(pdg[lep_rows]), p["q"][lep_rows]
    cand = (
        (flavour[ia] == flavour[ib])
        & (charge[ia] * charge[ib] < 0)
        & (np.abs(mass - z_mass) < mass_window)
    )
    n_cand = np.bincount(pair_ev[cand], minlength=n_events)
    report["events_ambiguous_z"] = int((n_cand > 1).sum())
    sel = cand & (n_cand[pair_ev] == 1)
    is_signal = np.zeros(len(pdg), dtype=bool)
    is_signal[lep_rows[ia[sel]]] = True
    is_signal[lep_rows[ib[sel]]] = True
    return is_signal
