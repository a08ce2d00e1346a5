"""Reader for CMS endcap-muon ntuples (``Ntuplizer/MuonTrackTree``) as used for Tau3Mu."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepx.errors import InputError
from hepx.io.filters import HitFilter, parse_filters
from hepx.io.rootfile import open_tree, require_branches, split_optional, warn_missing_optional

log = logging.getLogger(__name__)

#: The standard Tau3Mu selection: station 1, no neighbour-sector copies, no DT hits.
DEFAULT_FILTERS: tuple[dict[str, Any], ...] = (
    {"branch": "mu_hit_station", "op": "==", "value": 1},
    {"branch": "mu_hit_neighbor", "op": "==", "value": 0},
    {"branch": "mu_hit_type", "op": "!=", "value": 0},
)

#: Output hit field -> ntuple branch.
HIT_FIELDS: dict[str, str] = {
    "eta": "mu_hit_sim_eta",
    "phi": "mu_hit_sim_phi",  # degrees in the file, radians in the output
    "theta": "mu_hit_sim_theta",
    "r": "mu_hit_sim_r",
    "z": "mu_hit_sim_z",
    "bend": "mu_hit_bend",
    "endcap": "mu_hit_endcap",
    "station": "mu_hit_station",
    "ring": "mu_hit_ring",
    "sector": "mu_hit_sector",
    "chamber": "mu_hit_chamber",
    "technology": "mu_hit_type",  # 0 DT, 1 CSC, 2 RPC, 3 GEM, 4 ME0 (not "type": awkward's)
    "neighbor": "mu_hit_neighbor",
}
HIT_COUNTER = "n_mu_hit"
#: The hit fields the Tau3Mu point clouds use (coordinates and the feature): their branches are
#: required, with the hit filters' branches and the truth branch; the other ``HIT_FIELDS`` are
#: optional (read when present, the events lack the field otherwise).
USED_FIELDS = ("eta", "phi", "bend")


def branch_sets(filters: Sequence[HitFilter], truth_branch: str | None) -> tuple[list, list]:
    """The required and the optional per-hit branches for ``filters`` and ``truth_branch``.

    Required: the branches of the point clouds' coordinates and feature (``USED_FIELDS``), of
    the hit filters, and the per-hit truth (the node labels). Optional: the other
    ``HIT_FIELDS`` branches, carried along for the user.
    """
    required = [HIT_FIELDS[f] for f in USED_FIELDS] + [f.branch for f in filters]
    required += [truth_branch] if truth_branch is not None else []
    required = list(dict.fromkeys(required))
    return required, [b for b in HIT_FIELDS.values() if b not in required]


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) into (-pi, pi]."""
    return np.pi - np.mod(np.pi - phi, 2 * np.pi)


def read_cms_muon(
    path: str | os.PathLike,
    *,
    tree: str = "Ntuplizer/MuonTrackTree",
    filters: Sequence[Mapping[str, Any] | HitFilter] | None = DEFAULT_FILTERS,
    truth_branch: str | None = "mu_hit_truth_tau",
    label_branch: str | None = "n_gen_tau",
    event_id_branch: str | None = None,
    min_hits: int = 3,
    min_signal_hits: int = 3,
    step_size: int | str = "100 MB",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    nonfinite: str = "error",
) -> ak.Array:
    """Read CMS endcap-muon hits into one awkward record per event.

    Parameters
    ----------
    path
        ROOT file with the ntuple.
    tree
        Path of the TTree inside the file.
    filters
        Hit selection as data: a list of ``{branch, op, value}`` mappings (AND-ed).
        ``None`` or ``[]`` keeps every hit. Default: station 1, neighbour 0, type != DT.
    truth_branch
        Per-hit truth branch (non-zero = hit of a muon from the tau decay); gives ``node_label``.
        ``None`` for data without truth (all node labels 0).
    label_branch
        Per-event branch whose non-zero value marks a signal event (default: the number of
        generated taus); ``None`` or absent: an event is signal when any hit has truth.
    event_id_branch
        Per-event branch with an event number (default: the entry number).
    min_hits, min_signal_hits
        Events with fewer selected hits, and signal events with fewer selected signal hits,
        are dropped (and counted in ``events.attrs["hepx_report"]``).
    step_size, entry_start, entry_stop
        Passed to ``uproot.TTree.iterate`` (chunked reading; :class:`MuonChunks` yields the
        chunks one by one, for bounded memory).
    nonfinite
        A NaN or infinite eta, phi or bend in a selected hit is an error (``"error"``, naming
        the file, branch and count), or the hit is dropped and counted (``"drop"``).

    Returns
    -------
    awkward.Array
        One record per kept event: ``event_id`` (int64), ``label`` (int8), ``n_signal_hits``,
        and ``hits``, a jagged record of ``eta``, ``phi`` (radians, in (-pi, pi]), ``theta``,
        ``r``, ``z``, ``bend``, the chamber fields (``endcap``, ``station``, ``ring``,
        ``sector``, ``chamber``, ``neighbor``, ``technology``: 0 DT, 1 CSC, 2 RPC, 3 GEM,
        4 ME0, from ``mu_hit_type``), plus ``node_label`` (int8) and ``hit_index`` (the hit's
        index in the event's original ``mu_hit_*`` vectors).

    Required branches: ``mu_hit_sim_eta``, ``mu_hit_sim_phi``, ``mu_hit_bend`` (the point
    clouds), the filters' branches and ``truth_branch`` (a missing one is an error naming the
    file and branches). The other hit fields' branches and ``label_branch`` are optional: the
    events lack the fields of absent ones, which are named once, in a logged warning and in
    ``events.attrs["hepx_report"]["missing_optional_branches"]``.

    Example
    -------
    >>> events = read_cms_muon("ntuple.root", min_signal_hits=1)     # doctest: +SKIP
    >>> events.hits.phi, events.hits.node_label                       # doctest: +SKIP
    """
    options = {k: v for k, v in locals().items() if k != "path"}
    chunks = MuonChunks(path, **options)
    parts = list(chunks)
    events = ak.concatenate(parts) if parts else ak.Array([])
    return chunks.finish(events)


class MuonChunks:
    """The selected events of a CMS muon ntuple, one uproot chunk at a time (bounded memory).

    Takes :func:`read_cms_muon`'s arguments; iterate for the chunks' events (awkward arrays as
    :func:`read_cms_muon` returns them). :attr:`report` counts what was read and dropped so far.

    Example
    -------
    >>> for events in MuonChunks("ntuple.root", step_size="50 MB"):     # doctest: +SKIP
    ...     print(len(events))
    """

    def __init__(self, path: str | os.PathLike, *, warn_missing: bool = True, **options: Any):
        """``warn_missing=False`` leaves the missing optional branches to the report only
        (for callers that read one file in several calls and warned once already)."""
        from hepx.kinds import get_kind

        kind = get_kind("tau3mu")
        given = kind.reader_options(options, where="read_cms_muon")
        o = {**{k: f.default for k, f in kind.reader_schema.items()}, **given}
        self.path = path
        self.filters = parse_filters(o["filters"])
        self.tree = open_tree(path, o["tree"])
        if self.tree.num_entries == 0:
            raise InputError(f"{path}: the tree '{o['tree']}' has no entries (an empty file)")
        hit_branches, per_event, label_branch, missing = _branches(
            self.tree, self.filters, o["truth_branch"], o["label_branch"], o["event_id_branch"]
        )
        self.branches = hit_branches + per_event
        self.selection = {
            "hit_branches": hit_branches,
            "filters": self.filters,
            "truth_branch": o["truth_branch"],
            "label_branch": label_branch,
            "event_id_branch": o["event_id_branch"],
            "min_hits": o["min_hits"],
            "min_signal_hits": o["min_signal_hits"],
            "nonfinite": o["nonfinite"],
        }
        start = 0 if o["entry_start"] is None else o["entry_start"]
        stop = self.tree.num_entries if o["entry_stop"] is None else o["entry_stop"]
        self.entries = {
            "entry_start": start,
            "entry_stop": min(stop, self.tree.num_entries),
            "step_size": o["step_size"],
        }
        self.report = dict.fromkeys(("events_read", "dropped_no_hits", "dropped_few_hits"), 0)
        self.report.update(dropped_few_signal_hits=0, dropped_nonfinite_hits=0, events_kept=0)
        self.report["missing_optional_branches"] = missing
        if warn_missing:
            warn_missing_optional(self.tree, missing, _missing_effect(missing, o["label_branch"]))

    def __iter__(self):
        chunk_iter = self.tree.iterate(self.branches, library="ak", report=True, **self.entries)
        for arrays, rep in _guard(chunk_iter, self.path):
            events = _process_chunk(
                arrays,
                entry0=rep.tree_entry_start,
                report=self.report,
                path=self.path,
                **self.selection,
            )
            self.report["events_kept"] += len(events)
            if len(events):
                yield events

    def check_kept(self) -> None:
        """Raise :class:`InputError` if no event was kept (call after iterating); log the
        report otherwise."""
        if self.report["events_kept"] == 0:
            raise InputError(
                f"{self.path}: no events left after the hit filters and minimum-hit cuts "
                f"({self.report['events_read']} read)"
            )
        _log_report(self.path, self.report)

    def finish(self, events: ak.Array) -> ak.Array:
        """``events`` (all chunks) with the report attached, or an error if none was kept."""
        self.check_kept()
        return ak.Array(events, attrs={"hepx_report": self.report, "hepx_source": str(self.path)})


def _branches(ttree, filters, truth_branch, label_branch, event_id_branch):
    """The per-hit and per-event branches to read (the required ones checked to exist), the
    label branch (``None`` when absent: the label then comes from the per-hit truth) and the
    optional branches the tree lacks."""
    required, optional = branch_sets(filters, truth_branch)
    hits = [b for b in required if b != truth_branch]
    require_branches(
        ttree, hits, what="the Tau3Mu point clouds (hit eta, phi, bend and the filters' branches)"
    )
    if truth_branch is not None:
        require_branches(ttree, [truth_branch], what="the per-hit truth (truth_branch)")
    present, missing = split_optional(ttree, optional)
    hit_branches = required + present
    for b in hit_branches:  # from the branch types, before anything is read
        if isinstance(ttree[b].interpretation, uproot.AsDtype):
            raise InputError(_per_event_message(ttree.file.file_path, b))
    per_event = []
    if label_branch is not None and label_branch in ttree.keys():
        per_event.append(label_branch)
    elif label_branch is not None:
        missing.append(label_branch)
        label_branch = None
    if event_id_branch is not None:
        require_branches(ttree, [event_id_branch], what="event ids (event_id_branch)")
        per_event.append(event_id_branch)
    if HIT_COUNTER in ttree.keys():
        per_event.append(HIT_COUNTER)
    return hit_branches, per_event, label_branch, missing


def _missing_effect(missing: Sequence[str], label_branch: str | None) -> str:
    """What the events lack without the optional branches ``missing``."""
    names = {b: n for n, b in HIT_FIELDS.items()}
    parts = [f"no hits.{names[b]}" for b in missing if b in names]
    if label_branch in missing:
        parts.append("the event label comes from the per-hit truth")
    return "; ".join(parts)


def _guard(chunk_iter, path):
    try:
        yield from chunk_iter
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"{path}: failed while reading, the file may be truncated or corrupted "
            f"({type(err).__name__}: {' '.join(str(err).split())[:160]})"
        ) from None


def _process_chunk(
    arrays: ak.Array,
    *,
    entry0: int,
    hit_branches: list[str],
    filters: list[HitFilter],
    truth_branch: str | None,
    label_branch: str | None,
    event_id_branch: str | None,
    min_hits: int,
    min_signal_hits: int,
    nonfinite: str,
    report: dict[str, int],
    path: Any,
) -> ak.Array:
    n_events = len(arrays)
    report["events_read"] += n_events
    counts = _check_lengths(arrays, hit_branches, entry0, path)
    if event_id_branch is not None:
        event_id = ak.to_numpy(arrays[event_id_branch]).astype(np.int64)
    else:
        event_id = np.arange(entry0, entry0 + n_events, dtype=np.int64)

    # Work on flat arrays with one mask: slicing every jagged branch separately is far slower.
    event_of_hit = np.repeat(np.arange(n_events), counts)
    flat = {b: ak.to_numpy(ak.flatten(arrays[b], axis=1)) for b in hit_branches}
    mask = np.ones(int(counts.sum()), dtype=bool)
    for f in filters:
        mask &= np.asarray(f.mask(flat[f.branch]))
    mask &= _finite_hits(flat, mask, nonfinite, report, path, entry0)
    if truth_branch is not None:
        truth = flat[truth_branch] != 0
        any_truth = np.bincount(event_of_hit, weights=truth, minlength=n_events) > 0
    else:
        truth = np.zeros(len(mask), dtype=bool)
        any_truth = np.zeros(n_events, dtype=bool)
    label = ak.to_numpy(arrays[label_branch]) != 0 if label_branch is not None else any_truth
    n_sel = np.bincount(event_of_hit, weights=mask, minlength=n_events).astype(np.int64)
    n_sig = np.bincount(event_of_hit, weights=mask & truth, minlength=n_events).astype(np.int64)
    no_hits = counts == 0
    few_hits = ~no_hits & (n_sel < min_hits)
    few_signal = ~no_hits & ~few_hits & label & (n_sig < min_signal_hits)
    report["dropped_no_hits"] += int(no_hits.sum())
    report["dropped_few_hits"] += int(few_hits.sum())
    report["dropped_few_signal_hits"] += int(few_signal.sum())
    keep = ~(no_hits | few_hits | few_signal)
    sel = np.flatnonzero(mask & keep[event_of_hit])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    fields = {name: flat[b][sel] for name, b in HIT_FIELDS.items() if b in flat}
    fields["phi"] = wrap_phi(np.deg2rad(fields["phi"].astype(np.float64))).astype(np.float32)
    fields["bend"] = fields["bend"].astype(np.float32)
    fields["node_label"] = truth[sel].astype(np.int8)
    fields["hit_index"] = (sel - starts[event_of_hit[sel]]).astype(np.int64)
    return ak.zip(
        {
            "event_id": event_id[keep],
            "label": label[keep].astype(np.int8),
            "n_signal_hits": n_sig[keep].astype(np.int32),
            "hits": ak.unflatten(ak.zip(fields), n_sel[keep]),
        },
        depth_limit=1,
    )


def _finite_hits(flat, mask, nonfinite: str, report, path, entry0: int) -> np.ndarray:
    """Hits whose used fields are finite; a selected non-finite hit is an error or dropped."""
    ok = np.ones(len(mask), dtype=bool)
    for name in USED_FIELDS:
        bad = mask & ~np.isfinite(flat[HIT_FIELDS[name]].astype(np.float64))
        if bad.any() and nonfinite == "error":
            raise InputError(
                f"{path}: branch {HIT_FIELDS[name]} has {int(bad.sum())} non-finite values "
                f"(NaN or inf) in selected hits of entries {entry0} and on; fix the file or "
                "read it with nonfinite: drop"
            )
        ok &= ~bad
    report["dropped_nonfinite_hits"] += int((mask & ~ok).sum())
    return ok


def _check_lengths(arrays: ak.Array, hit_branches: list[str], entry0: int, path: Any) -> np.ndarray:
    """Hits per entry, checked equal across the jagged branches and the hit counter."""
    for b in hit_branches:
        if arrays[b].ndim != 2:
            raise InputError(_per_event_message(path, b))
    ref = HIT_FIELDS["eta"]
    counts = ak.to_numpy(ak.num(arrays[ref], axis=1))
    for b in hit_branches:
        other = ak.to_numpy(ak.num(arrays[b], axis=1))
        if not np.array_equal(other, counts):
            bad = int(np.flatnonzero(other != counts)[0])
            raise InputError(
                f"{path}: jagged branches of mismatched length: {b} has {other[bad]} hits but "
                f"{ref} has {counts[bad]} in entry {entry0 + bad}"
            )
    if HIT_COUNTER in arrays.fields:
        counter = ak.to_numpy(arrays[HIT_COUNTER]).astype(np.int64)
        if not np.array_equal(counter, counts):
            bad = int(np.flatnonzero(counter != counts)[0])
            raise InputError(
                f"{path}: counter {HIT_COUNTER} = {counter[bad]} but the mu_hit_* vectors hold "
                f"{counts[bad]} hits in entry {entry0 + bad}"
            )
    return counts


def _per_event_message(path: Any, branch: str) -> str:
    return (
        f"{path}: branch {branch} holds one value per entry; a per-hit branch holds one value "
        "per hit (a vector branch)"
    )


def _log_report(path: Any, report: Mapping[str, int]) -> None:
    dropped = {k: v for k, v in report.items() if k.startswith("dropped") and v}
    log.info(
        "%s: read %d events, kept %d%s",
        path,
        report["events_read"],
        report["events_kept"],
        "; " + ", ".join(f"{k[8:]}: {v}" for k, v in dropped.items()) if dropped else "",
    )
