"""Write and read the importance outputs: ROOT (TTrees, friend-ready) and Parquet.

ROOT file layout (all TTrees written with ``mktree`` + ``extend``):

``events``
    ``event_id`` (int64), ``scored`` (bool), ``label`` (int8), ``logit`` / ``prob`` (float32,
    when the events carry them), ``n_hits`` (scored hits), ``max_importance``. One entry per
    scored event, or, with a per-entry friend layout (Tau3Mu), one entry per entry of the
    input tree, friend-ready: events the reader's selection dropped have ``scored`` false,
    ``label`` -1, NaN scores and 0 hits, so a trigger study gets a score (or NaN) for every
    input event.
``hits_importance``
    Flat, one entry per hit: ``event_id``, ``hit_index``, ``importance`` (float32),
    ``node_label`` (int8), and ``axis_angle`` when present.

    * Without a friend layout: only the scored hits (a join table on ``(event_id, hit_index)``).
    * ActsTrack with a friend layout (:class:`FriendLayout` of the input ``hits`` tree): exactly
      one entry per entry of the input ``hits`` tree, in the same order, so
      ``hits->AddFriend("hits_importance", "out.root")`` works. Hits that were not scored (tracks
      not kept by the reader) have ``importance = NaN`` and ``node_label = -1``; ``hit_index``
      is the entry number; ``track_importance`` is the hit's track's mean importance.
``mu_hit_importance`` (Tau3Mu with a friend layout only)
    One entry per entry of the input ``Ntuplizer/MuonTrackTree``: ``event_id``, ``scored``
    (bool: the event passed the reader's selection and was scored), ``logit``, ``prob``,
    ``n_mu_hit`` and jagged ``mu_hit_importance`` aligned with the input ``mu_hit_*`` vectors.
    Hits that were not scored (removed by the hit filters, or in unscored events) are ``NaN``.
``tracks`` (ActsTrack)
    One entry per scored event: ``event_id``, ``n_track`` and ``track_barcode``,
    ``track_is_signal``, ``track_pt``, ``track_eta``, ``track_importance`` (mean),
    ``track_importance_max``, ``track_importance_topk``.

Parquet: the annotated awkward events themselves (``ak.to_parquet``), one row per event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import uproot

from hepx.atomic import atomic_file
from hepx.errors import InputError
from hepx.post.physics import detect_kind, flat_importance

if TYPE_CHECKING:
    from hepx.kinds import DatasetKind

__all__ = [
    "EVENT_TREE",
    "HIT_TREE",
    "MUON_TREE",
    "TRACK_TREE",
    "FriendLayout",
    "ParquetAppender",
    "RootImportanceWriter",
    "importance_from_root",
    "read_parquet",
    "read_root",
    "write_parquet",
    "write_root",
]

EVENT_TREE = "events"
HIT_TREE = "hits_importance"
MUON_TREE = "mu_hit_importance"
TRACK_TREE = "tracks"
#: Value of hits/events that were not scored in the friend trees.
FILL = np.nan


@dataclass
class FriendLayout:
    """Shape of the input tree the output must be a friend of; two shapes exist.

    * A flat hits tree, one entry per hit (ActsTrack ``hits``): ``event_id`` = the input tree's
      ``event_id`` per entry (its length is the number of entries), no ``counts``. Given to the
      writer for the whole file.
    * One entry per event with jagged hits (Tau3Mu ``MuonTrackTree``): ``counts`` = hits per
      entry (``n_mu_hit``) of the entries ``entry_start, entry_start + 1, ...`` (one chunk),
      ``event_id`` = event id per entry (default: the entry number). Given with each chunk.
      Events are matched to entries through their ``entry`` field (default: ``event_id``,
      which is the entry number for the default reader).
    """

    event_id: np.ndarray | None = None
    counts: np.ndarray | None = None
    entry_start: int = 0

    @property
    def n_entries(self) -> int:
        ref = self.counts if self.counts is not None else self.event_id
        return 0 if ref is None else len(ref)


def _flat(array: ak.Array, dtype) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


def _event_field(events: ak.Array, name: str, dtype, default=np.nan) -> np.ndarray:
    if name in events.fields:
        return ak.to_numpy(events[name]).astype(dtype)
    return np.full(len(events), default, dtype=dtype)


class RootImportanceWriter:
    """Incremental writer of the ROOT layout above: ``add(events)`` per chunk, then ``close()``.

    ``kind`` is the events' dataset kind (its name or :class:`~hepx.kinds.DatasetKind`); kinds
    with tracks also get the ``tracks`` tree. A flat-hits :class:`FriendLayout` given here (the
    whole input hits tree) makes ``hits_importance`` its friend; a per-entry layout given with
    each chunk to :meth:`add` writes ``mu_hit_importance``. Use :func:`write_root` for the
    one-shot, atomic version.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str | DatasetKind,
        *,
        friend: FriendLayout | None = None,
    ):
        from hepx.kinds import get_kind

        self.kind = get_kind(kind)
        if not self.kind.scorable:
            raise InputError(f"no importance ROOT layout for {self.kind.title} events")
        self.path = Path(path)
        self._file = uproot.recreate(self.path)
        self._trees: set[str] = set()
        self._acts_friend: dict[str, np.ndarray] | None = None
        if friend is not None:
            if friend.event_id is None or friend.counts is not None:
                raise InputError(
                    "the writer's friend layout is the flat input hits tree: give its event_id "
                    "per entry (per-entry layouts go with each chunk to add())"
                )
            n = friend.n_entries
            self._acts_friend = {
                "event_id": np.asarray(friend.event_id, np.int64),
                "hit_index": np.arange(n, dtype=np.int64),
                "importance": np.full(n, FILL, np.float32),
                "node_label": np.full(n, -1, np.int8),
                "track_importance": np.full(n, FILL, np.float32),
            }

    def _extend(self, name: str, data: dict[str, Any], **kw: Any) -> None:
        if name not in self._trees:
            types = {
                k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()
            }
            self._file.mktree(name, types, **kw)
            self._trees.add(name)
        self._file[name].extend(data)

    def add(self, events: ak.Array, *, friend: FriendLayout | None = None) -> None:
        """Write one chunk of annotated events (with ``hits.importance``)."""
        if detect_kind(events) != self.kind.name:
            raise InputError(
                f"events are {detect_kind(events)}, this writer is for {self.kind.name}"
            )
        imp = flat_importance(events).astype(np.float32)
        hits = events.hits
        n_hits = ak.to_numpy(ak.num(hits, axis=1)).astype(np.int32)
        ev_id = ak.to_numpy(events.event_id).astype(np.int64)
        hit_ev = np.repeat(ev_id, n_hits)
        hit_index = _flat(hits.hit_index, np.int64)
        node_label = _flat(hits.node_label, np.int8)
        if len(events) == 0:
            self.add_empty_chunk(friend)
            return
        max_imp = np.full(len(events), np.nan, np.float32)
        nz = n_hits > 0
        max_imp[nz] = ak.to_numpy(ak.max(hits.importance[nz], axis=1)).astype(np.float32)
        per_event = {
            "event_id": ev_id,
            "scored": np.ones(len(events), bool),
            "label": _event_field(events, "label", np.int8, 0),
            "logit": _event_field(events, "logit", np.float32),
            "prob": _event_field(events, "prob", np.float32),
            "n_hits": n_hits,
            "max_importance": max_imp,
        }
        if friend is not None:  # one entry per input entry, like the hit-level friend
            per_event = _per_entry(per_event, _entries(events, friend), friend)
        self._extend(EVENT_TREE, per_event)
        flat = {
            "event_id": hit_ev,
            "hit_index": hit_index,
            "importance": imp,
            "node_label": node_label,
        }
        if "axis_angle" in hits.fields:
            flat["axis_angle"] = _flat(hits.axis_angle, np.float32)
        if self.kind.has_tracks:
            self._add_tracks(events, ev_id)
        if self._acts_friend is not None:
            self._fill_hits_friend(events, hit_index, hit_ev, imp, node_label, flat)
            return
        self._extend(HIT_TREE, flat)
        if friend is not None:
            self._add_muon_friend(events, friend, hit_index, imp)

    def _fill_hits_friend(self, events, hit_index, hit_ev, imp, node_label, flat) -> None:
        """Put the chunk's hits at their entries of the flat hits friend (written at close)."""
        f = self._acts_friend
        if len(hit_index) and (hit_index.min() < 0 or hit_index.max() >= len(f["importance"])):
            raise InputError(
                f"hit_index up to {int(hit_index.max())} does not fit the input hits tree "
                f"of {len(f['importance'])} entries: events from another file?"
            )
        if not np.array_equal(f["event_id"][hit_index], hit_ev):
            raise InputError("events do not match the input hits tree (event_id differs)")
        f["importance"][hit_index] = imp
        f["node_label"][hit_index] = node_label
        if self.kind.has_tracks and "importance" in events.tracks.fields:
            f["track_importance"][hit_index] = _hit_track_value(events, "importance")
        if "axis_angle" in flat:
            f.setdefault("axis_angle", np.full(len(f["importance"]), FILL, np.float32))
            f["axis_angle"][hit_index] = flat["axis_angle"]

    def _add_tracks(self, events: ak.Array, ev_id: np.ndarray) -> None:
        tr = events.tracks
        fields = {
            "barcode": tr.barcode,
            "is_signal": tr.is_signal,
            "pt": tr.pt,
            "eta": tr.eta,
        }
        for name in ("importance", "importance_max", "importance_topk"):
            if name in tr.fields:
                fields[name] = tr[name]
        rec = ak.zip({k: ak.values_astype(v, _track_dtype(k)) for k, v in fields.items()})
        self._extend(
            TRACK_TREE,
            {"event_id": ev_id, "track": rec},
            counter_name=lambda c: "n_" + c,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )

    def _add_muon_friend(
        self, events: ak.Array, friend: FriendLayout, hit_index: np.ndarray, imp: np.ndarray
    ) -> None:
        entry = _entries(events, friend)
        n_ev_hits = ak.to_numpy(ak.num(events.hits, axis=1)).astype(np.int64)
        self._write_muon_friend(
            friend,
            entry,
            np.repeat(entry, n_ev_hits),
            hit_index,
            imp,
            _event_field(events, "logit", np.float32),
            _event_field(events, "prob", np.float32),
        )

    def add_empty_chunk(self, friend: FriendLayout | None) -> None:
        """Friend entries of a chunk in which no event was scored (all NaN)."""
        if friend is None:
            return
        none_i, none_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
        self._write_muon_friend(friend, none_i, none_i, none_i, none_f, none_f, none_f)
        empty = {
            "event_id": none_i,
            "scored": np.zeros(0, bool),
            "label": np.zeros(0, np.int8),
            "logit": none_f,
            "prob": none_f,
            "n_hits": np.zeros(0, np.int32),
            "max_importance": none_f,
        }
        self._extend(EVENT_TREE, _per_entry(empty, none_i, friend))

    def _write_muon_friend(self, friend, entry, hit_entry, hit_index, imp, logit_ev, prob_ev):
        if friend.counts is None:
            raise InputError("a Tau3Mu friend layout needs the number of hits per entry (counts)")
        counts = np.asarray(friend.counts, np.int64)
        n = len(counts)
        start = int(friend.entry_start)
        if len(entry) and (entry.min() < 0 or entry.max() >= n):
            raise InputError(
                f"event entries {int(entry.min()) + start}..{int(entry.max()) + start} outside the "
                f"friend chunk of {n} entries starting at {start}"
            )
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        if len(hit_index) and np.any(hit_index >= counts[hit_entry]):
            raise InputError("hit_index beyond the entry's n_mu_hit: events from another file?")
        values = np.full(int(offsets[-1]), FILL, np.float32)
        values[offsets[hit_entry] + hit_index] = imp
        scored = np.zeros(n, bool)
        scored[entry] = True
        logit = np.full(n, np.nan, np.float32)
        prob = np.full(n, np.nan, np.float32)
        logit[entry] = logit_ev
        prob[entry] = prob_ev
        eid = (
            np.asarray(friend.event_id, np.int64)
            if friend.event_id is not None
            else np.arange(start, start + n, dtype=np.int64)
        )
        rec = ak.zip({"importance": ak.unflatten(values, counts)})
        self._extend(
            MUON_TREE,
            {"event_id": eid, "scored": scored, "logit": logit, "prob": prob, "mu_hit": rec},
            counter_name=lambda c: "n_" + c,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )

    def close(self) -> None:
        if self._acts_friend is not None:
            f = self._acts_friend
            step = 1_000_000
            n = len(f["importance"])
            for a in range(0, max(n, 1), step):
                self._extend(HIT_TREE, {k: v[a : a + step] for k, v in f.items()})
        self._file.close()

    def __enter__(self) -> RootImportanceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()


def _entries(events: ak.Array, friend: FriendLayout) -> np.ndarray:
    """Each event's entry in the chunk of ``friend`` (from ``entry``, else ``event_id``)."""
    field = "entry" if "entry" in events.fields else "event_id"
    return ak.to_numpy(events[field]).astype(np.int64) - int(friend.entry_start)


def _per_entry(
    per_event: dict[str, np.ndarray], entry: np.ndarray, friend: FriendLayout
) -> dict[str, np.ndarray]:
    """Per-event columns spread to one row per entry of the friend chunk: unscored entries get
    ``scored`` False, ``label`` -1, NaN scores and 0 hits."""
    n = friend.n_entries
    start = int(friend.entry_start)
    fill = {"scored": False, "label": -1, "n_hits": 0}
    out = {
        k: np.full(n, fill.get(k, np.nan), dtype=v.dtype)
        for k, v in per_event.items()
        if k != "event_id"
    }
    for k, v in per_event.items():
        if k != "event_id":
            out[k][entry] = v
    ids = friend.event_id if friend.event_id is not None else np.arange(start, start + n)
    return {"event_id": np.asarray(ids, np.int64), **out}


def _track_dtype(name: str):
    return {"barcode": np.uint64, "is_signal": np.bool_}.get(name, np.float32)


def _hit_track_value(events: ak.Array, field: str) -> np.ndarray:
    """The hit's track's ``field`` value per hit (NaN for hits without a track)."""
    trk_counts = ak.to_numpy(ak.num(events.tracks, axis=1)).astype(np.int64)
    trk_off = np.concatenate([[0], np.cumsum(trk_counts)])
    n_hits = ak.to_numpy(ak.num(events.hits, axis=1)).astype(np.int64)
    local = _flat(events.hits.track, np.int64)
    glob = np.repeat(trk_off[:-1], n_hits) + local
    vals = _flat(events.tracks[field], np.float32)
    ok = (local >= 0) & (local < np.repeat(trk_counts, n_hits))
    out = np.full(len(local), np.nan, np.float32)
    out[ok] = vals[glob[ok]]
    return out


def write_root(
    path: str | os.PathLike, events: ak.Array, *, friend: FriendLayout | None = None
) -> Path:
    """Write annotated events (``hits.importance``) to a ROOT file atomically; see module doc."""
    kind = detect_kind(events)
    per_entry = friend is not None and friend.counts is not None
    path = Path(path)
    with atomic_file(path) as tmp:
        with RootImportanceWriter(tmp, kind, friend=None if per_entry else friend) as w:
            w.add(events, friend=friend if per_entry else None)
    return path


def read_root(path: str | os.PathLike) -> dict[str, ak.Array]:
    """Read back every tree written by :func:`write_root` as awkward arrays, by tree name."""
    try:
        with uproot.open(path) as f:
            names = {k.split(";")[0] for k in f.keys() if f.classname_of(k) == "TTree"}
            return {n: f[n].arrays(library="ak") for n in sorted(names)}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None


def importance_from_root(events: ak.Array, path: str | os.PathLike) -> ak.Array:
    """Per-hit importance for reader ``events``, looked up in the flat ``hits_importance`` tree
    of ``path`` by ``(event_id, hit_index)``; jagged like ``events.hits`` (NaN if not found)."""
    with uproot.open(path) as f:
        if HIT_TREE not in f:
            raise InputError(f"{path}: no '{HIT_TREE}' tree (not written by hepx score)")
        t = f[HIT_TREE].arrays(["event_id", "hit_index", "importance"], library="np")
    n_hits = ak.num(events.hits, axis=1)
    want_ev = np.repeat(ak.to_numpy(events.event_id).astype(np.int64), ak.to_numpy(n_hits))
    want_hit = _flat(events.hits.hit_index, np.int64)
    have_ev, have_hit = t["event_id"].astype(np.int64), t["hit_index"].astype(np.int64)
    order = np.lexsort((have_hit, have_ev))
    have_ev, have_hit, vals = have_ev[order], have_hit[order], t["importance"][order]
    # position of (event, hit) pairs via a structured sort key
    key_have = np.rec.fromarrays([have_ev, have_hit])
    key_want = np.rec.fromarrays([want_ev, want_hit])
    pos = np.searchsorted(key_have, key_want)
    pos_c = np.minimum(pos, max(len(vals) - 1, 0))
    found = (
        (pos < len(vals)) & (have_ev[pos_c] == want_ev) & (have_hit[pos_c] == want_hit)
        if len(vals)
        else np.zeros(len(want_ev), bool)
    )
    out = np.where(found, vals[pos_c] if len(vals) else np.nan, np.nan).astype(np.float32)
    return ak.unflatten(out, n_hits)


class ParquetAppender:
    """Annotated events written to one Parquet file chunk by chunk (pyarrow ``ParquetWriter``,
    the schema of the first chunk). A context manager: closed on exit."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.writer = None
        self.schema = None

    def write(self, events: ak.Array) -> None:
        """Append one chunk of events."""
        import pyarrow.parquet as pq

        table = ak.to_arrow_table(ak.Array(events, attrs=None))
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, self.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> ParquetAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_parquet(path: str | os.PathLike, events: ak.Array) -> Path:
    """Write annotated events to Parquet atomically (one row per event)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        ak.to_parquet(ak.Array(events, attrs=None), tmp)
    return path


def read_parquet(path: str | os.PathLike) -> ak.Array:
    """Read events written by :func:`write_parquet` (or ``hepx score``); ActsTrack tracks
    come back as vector's Lorentz vectors, as :func:`hepx.io.read_acts` gives them."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        events = ak.from_parquet(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError, ... on damaged files
        raise InputError(
            f"{path}: not a readable Parquet file, damaged or foreign ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]})"
        ) from None
    if "tracks" in events.fields:
        from hepx.io.acts import register_vector

        register_vector()
    return events
