"""Reader for ACTS simulation output: ``hits.root`` (RootSimHitWriter) + particles (RootParticleWriter).

Hits are flat (one entry per hit) and, from multi-threaded runs, not sorted by event: they are
grouped by ``event_id`` with one stable sort, never a Python loop over events.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np
import vector

from hepx.errors import InputError
from hepx.io.rootfile import (
    iterate,
    open_tree,
    require_branches,
    split_optional,
    warn_missing_optional,
)

log = logging.getLogger(__name__)
vector.register_awkward()

Z_MASS = 91.1876  # GeV, PDG

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
_HIT_DTYPES = {"event_id": np.int64, "geometry_id": np.uint64, "index": np.int32}


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


def _read_hits(path: Any, tree: str, step_size: int | str):
    """The hits table (required and present optional branches), the schema, the tree and the
    optional branches it lacks."""
    ttree = open_tree(path, tree)
    keys = set(ttree.keys())
    schema = detect_hits_schema(keys)
    link = {
        "v43": ["particle_id"],
        "v44.0": ["barcode"],
        "v44.3": [f"barcode_{f}" for f in BARCODE_FIELDS],
    }[schema]
    require_branches(
        ttree,
        ["event_id", *link, *HIT_REQUIRED[1:]],
        what=f"the ActsTrack point clouds (ACTS simulated hits, {schema} schema)",
    )
    present, missing = split_optional(ttree, HIT_OPTIONAL)
    columns = [*HIT_REQUIRED, *present]
    # Flat tree: read straight into preallocated numpy arrays (no awkward layer, no concatenate).
    n = ttree.num_entries
    hits = {k: np.empty(n, _HIT_DTYPES.get(k, np.float32)) for k in columns}
    hits["barcode"] = np.empty(n, np.uint64)
    flat_branches = [*(b for b in link if b != "barcode"), *columns]
    start = 0
    for chunk in iterate(ttree, flat_branches, step_size=step_size, library="np"):
        stop = start + len(chunk["event_id"])
        if schema == "v43":
            hits["barcode"][start:stop] = chunk["particle_id"]
        elif schema == "v44.3":
            hits["barcode"][start:stop] = pack_barcode(
                *(chunk[f"barcode_{f}"] for f in BARCODE_FIELDS)
            )
        for k in columns:
            hits[k][start:stop] = chunk[k]
        start = stop
    if schema == "v44.0":  # one vector<uint32> of the five levels per hit
        start = 0
        for chunk in iterate(ttree, ["barcode"], step_size=step_size):
            nums = ak.to_numpy(ak.num(chunk["barcode"], axis=1))
            if len(nums) and not np.all(nums == len(BARCODE_FIELDS)):
                raise InputError(
                    f"{path}: branch 'barcode' must hold {len(BARCODE_FIELDS)} values per hit, "
                    f"found {int(nums[nums != len(BARCODE_FIELDS)][0])}"
                )
            comps = ak.to_numpy(ak.flatten(chunk["barcode"])).reshape(-1, len(BARCODE_FIELDS))
            hits["barcode"][start : start + len(comps)] = pack_barcode(*comps.T)
            start += len(comps)
    return hits, schema, ttree, missing


def _read_particles(path: Any, tree: str, step_size: int | str):
    """The particles table (required and present optional branches), the tree and the optional
    branches it lacks."""
    ttree = open_tree(path, tree)
    keys = set(ttree.keys())
    link = ["particle_id"] if "particle_id" in keys else list(BARCODE_FIELDS)
    require_branches(
        ttree,
        ["event_id", *link, *PARTICLE_REQUIRED],
        what="the Z -> ll truth and the tracks (ACTS particles)",
    )
    present, missing = split_optional(ttree, PARTICLE_OPTIONAL)
    fields = [*PARTICLE_REQUIRED, *present]
    needed = ["event_id", *link, *fields]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ["event_id", "barcode", *fields]}
    for chunk in iterate(ttree, needed, step_size=step_size):
        per_event = chunk["particle_type"].ndim == 2
        if per_event:
            counts = ak.to_numpy(ak.num(chunk["particle_type"], axis=1))
            for k in (*link, *fields):
                if not np.array_equal(ak.to_numpy(ak.num(chunk[k], axis=1)), counts):
                    raise InputError(
                        f"{path}: jagged branches of mismatched length: '{k}' and "
                        f"'particle_type' differ in number of particles per event"
                    )
            flat = {k: ak.to_numpy(ak.flatten(chunk[k])) for k in (*link, *fields)}
            event_id = np.repeat(ak.to_numpy(chunk["event_id"]).astype(np.int64), counts)
        else:  # pre-v8.3 layout: one entry per particle
            flat = {k: ak.to_numpy(chunk[k]) for k in (*link, *fields)}
            event_id = ak.to_numpy(chunk["event_id"]).astype(np.int64)
        if link == ["particle_id"]:
            barcode = flat["particle_id"].astype(np.uint64)
        else:
            barcode = pack_barcode(*(flat[f] for f in BARCODE_FIELDS))
        parts["event_id"].append(event_id)
        parts["barcode"].append(barcode)
        for k in fields:
            parts[k].append(flat[k])
    table = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return table, ttree, missing


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
    kept per event (the signal pair always, the rest sampled without replacement with ``seed``;
    ``None`` keeps all). Only the kept tracks' hits are returned.

    A NaN or infinite hit position or momentum (``tx, ty, tz, tpx, tpy, tpz``) or particle
    momentum or mass is an error naming the file, branch and count (``nonfinite="error"``), or
    the hit / particle is dropped and counted in the report (``nonfinite="drop"``; a dropped
    particle's hits then have no particle).

    The hits schema is detected from the branch names (<= v43 packed ``particle_id``,
    v44.0 ``barcode`` vector, v44.3 ``barcode_*``), as is the particles layout (one entry per
    event with vector branches, or one entry per particle).

    Returns
    -------
    awkward.Array
        One record per event with at least one kept track: ``event_id`` (int64), ``label``
        (int8), ``n_particles`` (tracks before sampling), ``hits`` (jagged: ``x, y, z`` [mm],
        ``t`` [mm/c], ``px, py, pz, e`` [GeV] before the hit, ``volume_id``, ``layer_id``,
        ``sensitive_id``, ``geometry_id``, ``barcode``, ``track`` (index into ``tracks``),
        ``index`` (hit number along the trajectory), ``node_label`` (int8), ``hit_index`` (entry
        in the hits tree)) and ``tracks`` (jagged Lorentz vectors, vector's ``Momentum4D``:
        ``pt, eta, phi, mass`` stored, ``px, py, pz, energy, ...`` computed; ``barcode``,
        ``pdg``, ``charge``, ``vx, vy, vz``, ``n_hits``, ``is_signal``).
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
    if tracks_per_event is not None and tracks_per_event < 2:
        raise InputError(
            f"tracks_per_event must be >= 2 (the signal pair) or None, got {tracks_per_event}"
        )
    trees = (hits_tree, particles_tree)
    h, p, schema, report = _read_checked(hits, particles, trees, step_size, nonfinite)
    p, matched, h_prow, n_hits = _match_hits(h, p, particles)
    report["hits_without_particle"] = int((~matched).sum())
    # Events are those of the particles table (sorted by event_id through the key order).
    ev_ids, p_ev = np.unique(p["event_id"], return_inverse=True)
    # Events with hits but no particle record at all count as read (and dropped).
    orphan_events = np.setdiff1d(np.unique(h["event_id"][~matched]), ev_ids)
    report["events_read"] = len(ev_ids) + len(orphan_events)
    truth = (min_lepton_hits, z_mass, mass_window)
    is_signal = _z_truth(p, p_ev, len(ev_ids), n_hits, *truth, report)
    candidate = n_hits >= min_track_hits
    keep = _sample_tracks(p_ev, len(ev_ids), candidate, is_signal, tracks_per_event, seed)
    events = _assemble(h, p, p_ev, ev_ids, matched, h_prow, n_hits, is_signal, candidate, keep)
    report["dropped_no_tracks"] = int(report["events_read"] - len(events))
    report.update(events_kept=len(events), schema=schema)
    if len(events) == 0:
        raise InputError(f"{hits}: no event has a track with >= {min_track_hits} hits")
    _log_report(hits, report)
    return ak.Array(events, attrs={"hepx_report": report, "hepx_source": str(hits)})


def _read_checked(hits: Any, particles: Any, trees: tuple[str, str], step_size, nonfinite: str):
    """The hits and particles tables, checked non-empty and finite; their schema; the report."""
    if nonfinite not in ("error", "drop"):
        raise InputError(f"nonfinite must be 'error' or 'drop', got {nonfinite!r}")
    h, schema, h_tree, h_missing = _read_hits(hits, trees[0], step_size)
    p, p_tree, p_missing = _read_particles(particles, trees[1], step_size)
    report: dict[str, Any] = {"hits_read": len(h["event_id"]), "particles_read": len(p["event_id"])}
    report["missing_optional_branches"] = h_missing + p_missing
    if len(h["event_id"]) == 0:
        raise InputError(f"{hits}: the hits tree '{trees[0]}' has no entries (an empty file)")
    if len(p["event_id"]) == 0:
        raise InputError(f"{particles}: the particles tree '{trees[1]}' holds no particle")
    _warn_missing(h_tree, h_missing, "hits")
    _warn_missing(p_tree, p_missing, "tracks")
    h = _finite_rows(h, HIT_USED, nonfinite, hits, "hits", report)
    p = _finite_rows(p, PARTICLE_USED, nonfinite, particles, "particles", report)
    return h, p, schema, report


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
    rows: dict[str, np.ndarray],
    names: Sequence[str],
    nonfinite: str,
    path: Any,
    what: str,
    report: dict[str, Any],
) -> dict[str, np.ndarray]:
    """``rows`` without entries whose ``names`` values are NaN or infinite (``"drop"``, counted
    as ``dropped_nonfinite_<what>``), or an error naming the branch and count (``"error"``)."""
    bad = np.zeros(len(rows[names[0]]), dtype=bool)
    for name in names:
        bad_here = ~np.isfinite(rows[name])
        if bad_here.any() and nonfinite == "error":
            raise InputError(
                f"{path}: branch {name} has {int(bad_here.sum())} non-finite values (NaN or "
                f"inf) in {what}; fix the file or read it with nonfinite: drop"
            )
        bad |= bad_here
    report[f"dropped_nonfinite_{what}"] = int(bad.sum())
    if not bad.any():
        return rows
    kept = {k: v[~bad] for k, v in rows.items()}
    kept.setdefault("entry", np.flatnonzero(~bad))  # the tree entries of the kept rows
    return kept


def _assemble(h, p, p_ev, ev_ids, matched, h_prow, n_hits, is_signal, candidate, keep):
    """The events with kept tracks: per event the label, the hits of its kept tracks (in entry
    order) and the kept tracks (in barcode order), as one awkward array."""
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
    h_sel = np.flatnonzero(matched & keep[h_prow])  # h_prow = -1 only where not matched
    h_sel = h_sel[np.argsort(p_ev[h_prow[h_sel]], kind="stable")]  # keeps the entry order
    h_rows = h_prow[h_sel]
    h_counts = np.bincount(p_ev[h_rows], minlength=n_events)
    hit_rec = ak.zip(_hit_fields(h, h_sel, local_of_row[h_rows], is_signal[h_rows]))
    # tracks are Lorentz vectors (vector's Momentum4D): tracks.px, (l1 + l2).mass, ...
    track_rec = ak.zip(_track_fields(p, t_rows, n_hits, is_signal), with_name="Momentum4D")
    ev_keep = t_counts > 0
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
    # Dense codes for barcodes (from the particles only), so (event, barcode) packs exactly
    # into one uint64 key; hit barcodes unknown to the particles table never match.
    codes = np.unique(p["barcode"])
    h_code = np.searchsorted(codes, h["barcode"])
    h_code_c = np.minimum(h_code, max(len(codes) - 1, 0))
    h_known = (
        (h_code < len(codes)) & (codes[h_code_c] == h["barcode"])
        if len(codes)
        else np.zeros(len(h_code), bool)
    )
    p_code = np.searchsorted(codes, p["barcode"])
    p_key = (p["event_id"].astype(np.uint64) << np.uint64(32)) | p_code.astype(np.uint64)
    h_key = (h["event_id"].astype(np.uint64) << np.uint64(32)) | h_code_c.astype(np.uint64)
    p_order = np.argsort(p_key, kind="stable")
    p = {k: v[p_order] for k, v in p.items()}
    p_key = p_key[p_order]
    if len(p_key) > 1 and np.any(p_key[1:] == p_key[:-1]):
        dup = int(np.flatnonzero(p_key[1:] == p_key[:-1])[0])
        raise InputError(
            f"{particles}: particle {int(p['barcode'][dup])} appears twice in event "
            f"{int(p['event_id'][dup])}"
        )
    pos = np.searchsorted(p_key, h_key)
    pos_c = np.minimum(pos, max(len(p_key) - 1, 0))
    matched = h_known & (
        (pos < len(p_key)) & (p_key[pos_c] == h_key) if len(p_key) else np.zeros(len(h_key), bool)
    )
    h_prow = np.where(matched, pos_c, -1)
    return p, matched, h_prow, np.bincount(h_prow[matched], minlength=len(p_key))


def _sample_tracks(
    p_ev: np.ndarray,
    n_events: int,
    candidate: np.ndarray,
    is_signal: np.ndarray,
    tracks_per_event: int | None,
    seed: int,
) -> np.ndarray:
    """Boolean per particle: a kept track. Sampled without replacement with one random key per
    particle, the signal pair first, up to ``tracks_per_event`` per event (None: all)."""
    rng = np.random.default_rng(seed)
    sort_key = rng.random(len(p_ev))
    sort_key[is_signal] = -1.0
    sort_key[~candidate] = 2.0
    order = np.lexsort((sort_key, p_ev))
    ev_start = np.searchsorted(p_ev[order], np.arange(n_events))
    rank = np.empty(len(p_ev), dtype=np.int64)
    rank[order] = np.arange(len(p_ev)) - ev_start[p_ev[order]]
    return candidate if tracks_per_event is None else candidate & (rank < tracks_per_event)


def _hit_fields(
    h: Mapping[str, np.ndarray], sel: np.ndarray, track: np.ndarray, signal: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-hit fields of the kept hits ``sel`` (rows of ``h``; ``h["entry"]``, when there,
    maps them to entries of the hits tree)."""
    out = {"x": h["tx"][sel], "y": h["ty"][sel], "z": h["tz"][sel]}
    if "tt" in h:  # the optional branches only when the file has them
        out["t"] = h["tt"][sel]
    out.update(px=h["tpx"][sel], py=h["tpy"][sel], pz=h["tpz"][sel])
    if "te" in h:
        out["e"] = h["te"][sel]
    if "geometry_id" in h:
        geo = decode_geometry_id(h["geometry_id"][sel])
        out.update({k: geo[k] for k in ("volume_id", "layer_id", "sensitive_id")})
        out["geometry_id"] = h["geometry_id"][sel]
    out["barcode"] = h["barcode"][sel]
    out["track"] = track.astype(np.int32)
    if "index" in h:
        out["index"] = h["index"][sel].astype(np.int32)
    out["node_label"] = signal.astype(np.int8)
    out["hit_index"] = (h["entry"][sel] if "entry" in h else sel).astype(np.int64)
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
    # then the kinematics on flat arrays with vector's numpy backend.
    local = ak.unflatten(np.arange(len(lep_rows)), counts)
    ia, ib = (ak.to_numpy(ak.flatten(x)) for x in ak.unzip(ak.argcombinations(local, 2)))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pair_ev = np.repeat(np.arange(n_events), ak.to_numpy(ak.num(ak.argcombinations(local, 2))))
    ia, ib = ia + offsets[pair_ev], ib + offsets[pair_ev]
    mom = vector.array(
        {
            "px": p["px"][lep_rows].astype(np.float64),
            "py": p["py"][lep_rows].astype(np.float64),
            "pz": p["pz"][lep_rows].astype(np.float64),
            "mass": p["m"][lep_rows].astype(np.float64),
        }
    )
    mass = np.asarray((mom[ia] + mom[ib]).mass)
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
