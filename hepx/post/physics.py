"""Per-hit importance mapped back onto physics objects, on the readers' awkward events.

The functions take the events of :func:`hepx.io.read_acts` (ActsTrack) or
:func:`hepx.io.read_cms_muon` (Tau3Mu) and a per-hit importance given either as a flat array
(hits of all events, in event order: ``ak.flatten(events.hits)``, i.e. the order of
:func:`hepx.data.convert.actstrack_arrays` and of the model's per-point scores) or as a jagged
array with the same number of hits per event. They validate lengths (:class:`InputError`) and
call the numba kernels of :mod:`hepx.post.kernels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import InputError
from hepx.post import kernels

__all__ = [
    "DEFAULT_TOPK",
    "annotate",
    "attach_importance",
    "axis_angles",
    "detect_kind",
    "flat_importance",
    "group_profile",
    "offsets_of",
    "roc_auc",
    "roc_curve",
    "track_importance",
    "track_ranking",
]

#: Default size of the per-event top set of :func:`track_importance` (hits).
DEFAULT_TOPK = 24


def detect_kind(events: ak.Array) -> str:
    """The dataset kind's name of reader events: ``"actstrack"`` (hits and tracks) or
    ``"tau3mu"`` (muon hits); see :func:`hepx.kinds.detect_kind`."""
    from hepx.kinds import detect_kind as kind_of

    return kind_of(events).name


def _require_tracks(events: ak.Array, what: str) -> None:
    from hepx.kinds import detect_kind as kind_of

    if not kind_of(events).has_tracks:
        raise InputError(f"{what} needs events with tracks (ActsTrack: hits + tracks)")


def offsets_of(jagged: ak.Array) -> np.ndarray:
    """int64 offsets [E + 1] of a jagged array's first inner dimension."""
    counts = ak.to_numpy(ak.num(jagged, axis=1)).astype(np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _flat(array: ak.Array, dtype=None) -> np.ndarray:
    out = ak.to_numpy(ak.flatten(array, axis=1))
    return out if dtype is None else np.ascontiguousarray(out, dtype=dtype)


def flat_importance(
    events: ak.Array, importance: Any = None, *, what: str = "importance"
) -> np.ndarray:
    """Per-hit importance as a flat float64 array, checked against the events' hits.

    ``importance`` is a flat array (one value per hit of all events), a jagged array (one list
    per event), or ``None`` to use ``events.hits.importance``. Raises :class:`InputError` on a
    length mismatch or non-finite values.
    """
    counts = ak.to_numpy(ak.num(events.hits, axis=1)).astype(np.int64)
    if importance is None:
        if "importance" not in events.hits.fields:
            raise InputError("events carry no hits.importance; pass the importance explicitly")
        importance = events.hits.importance
    if isinstance(importance, ak.Array) and importance.ndim == 2:
        got = ak.to_numpy(ak.num(importance, axis=1)).astype(np.int64)
        if len(got) != len(counts) or not np.array_equal(got, counts):
            bad = _first_mismatch(got, counts)
            raise InputError(
                f"{what} does not match the events: {bad}; it must have one value per hit "
                "of every event (same event order as the reader output)"
            )
        flat = _flat(importance, np.float64)
    else:
        flat = np.asarray(
            ak.to_numpy(importance) if isinstance(importance, ak.Array) else importance
        )
        if flat.ndim != 1:
            raise InputError(f"{what} must be one value per hit (1-d), got shape {flat.shape}")
        flat = flat.astype(np.float64, copy=False)
        if len(flat) != int(counts.sum()):
            raise InputError(
                f"{what} has {len(flat)} values but the {len(counts)} events hold "
                f"{int(counts.sum())} hits; it must have one value per hit, in event order"
            )
    if len(flat) and not np.all(np.isfinite(flat)):
        raise InputError(f"{what} holds {int((~np.isfinite(flat)).sum())} non-finite values")
    return flat


def _first_mismatch(got: np.ndarray, want: np.ndarray) -> str:
    if len(got) != len(want):
        return f"{len(got)} lists for {len(want)} events"
    i = int(np.flatnonzero(got != want)[0])
    return f"event {i} has {got[i]} values for {want[i]} hits"


def attach_importance(events: ak.Array, importance: Any, *, field: str = "importance") -> ak.Array:
    """Return ``events`` with ``hits.<field>`` added (float32, aligned with the hits)."""
    flat = flat_importance(events, importance, what=field)
    counts = ak.num(events.hits, axis=1)
    hits = ak.with_field(events.hits, ak.unflatten(flat.astype(np.float32), counts), field)
    return ak.with_field(events, hits, "hits")


def _per_event(value: Any, n_events: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.int64), (n_events,))
    if np.any(arr < 0):
        raise InputError(f"{name} must be >= 0")
    return np.ascontiguousarray(arr)


def track_importance(
    events: ak.Array, importance: Any = None, *, k: int | Sequence[int] | str = DEFAULT_TOPK
) -> ak.Array:
    """Per track (ActsTrack): importance of its hits.

    Returns a jagged record array aligned with ``events.tracks``: ``n_hits`` (hits of the track
    in the events), ``mean``, ``max`` and ``topk`` (fraction of the track's hits among the ``k``
    most important hits of its event; ``k`` an int, one int per event, or ``"signal"`` = the
    event's number of true signal hits). Tracks without hits get NaN.
    """
    _require_tracks(events, "track_importance")
    imp = flat_importance(events, importance)
    hit_off = offsets_of(events.hits)
    trk_off = offsets_of(events.tracks)
    hit_track = _flat(events.hits.track, np.int64)
    if isinstance(k, str):
        if k != "signal":
            raise InputError(f"k must be an integer, integers per event or 'signal', got {k!r}")
        k_arr = ak.to_numpy(ak.sum(events.hits.node_label, axis=1)).astype(np.int64)
    else:
        k_arr = _per_event(k, len(events), "k")
    count, mean, best = kernels.track_reduce(hit_off, trk_off, hit_track, imp)
    topk = kernels.topk_track_fraction(hit_off, trk_off, hit_track, imp, k_arr)
    counts = np.diff(trk_off)
    rec = ak.zip(
        {
            "n_hits": count.astype(np.int32),
            "mean": mean.astype(np.float32),
            "max": best.astype(np.float32),
            "topk": topk.astype(np.float32),
        }
    )
    return ak.unflatten(rec, counts)


def track_ranking(
    events: ak.Array,
    score: Any = None,
    *,
    n: int | Sequence[int] | None = None,
) -> dict[str, Any]:
    """Does the model rank the true signal tracks first? (ActsTrack)

    ``score`` is one value per track (flat or jagged like ``events.tracks``); default
    ``events.tracks.importance`` (see :func:`annotate`). ``n`` is the number of top-ranked tracks
    looked at per event (default: the event's number of signal tracks).

    Returns ``auc`` (track-level ROC AUC, all tracks of signal events pooled, label =
    ``is_signal``), ``efficiency`` (per event, NaN where there is no signal track), and
    ``mean_efficiency`` (over events with signal tracks), plus flat ``score``/``is_signal``/
    ``event`` arrays of the tracks used for the AUC (for ROC plots).
    """
    _require_tracks(events, "track_ranking")
    trk_off = offsets_of(events.tracks)
    if score is None:
        if "importance" not in events.tracks.fields:
            raise InputError(
                "events carry no tracks.importance; run annotate() first or pass score"
            )
        score = events.tracks.importance
    if isinstance(score, ak.Array) and score.ndim == 2:
        got = ak.to_numpy(ak.num(score, axis=1))
        if not np.array_equal(got, np.diff(trk_off)):
            raise InputError("track score does not match the events' tracks (one value per track)")
        flat = _flat(score, np.float64)
    else:
        flat = np.asarray(score, dtype=np.float64).ravel()
        if len(flat) != int(trk_off[-1]):
            raise InputError(
                f"track score has {len(flat)} values but the events hold {int(trk_off[-1])} tracks"
            )
    # NaN (track without hits) ranks last.
    flat = np.where(np.isfinite(flat), flat, -np.inf)
    is_sig = _flat(events.tracks.is_signal, np.bool_)
    event_of_track = np.repeat(np.arange(len(events)), np.diff(trk_off))
    n_sig = np.bincount(event_of_track[is_sig], minlength=len(events)).astype(np.int64)
    n_arr = n_sig if n is None else _per_event(n, len(events), "n")
    eff = kernels.topn_signal_efficiency(trk_off, flat, is_sig, n_arr)
    use = (n_sig > 0)[event_of_track]
    auc = roc_auc(flat[use], is_sig[use])
    return {
        "auc": auc,
        "efficiency": eff,
        "mean_efficiency": float(np.nanmean(eff)) if np.any(np.isfinite(eff)) else float("nan"),
        "score": flat[use],
        "is_signal": is_sig[use],
        "event": event_of_track[use],
    }


def group_profile(
    events: ak.Array,
    by: str | Sequence[str] | None = None,
    *,
    importance: Any = None,
    split: str | None = "node_label",
) -> dict[str, Any]:
    """Importance per detector group: ActsTrack layer/volume, muon station/chamber/sector.

    ``by`` names hit fields (default: the kind's ``profile_groups``, e.g.
    ``("volume_id", "layer_id")`` or ``("station", "ring")``; ``"sector"``, ``"chamber"``, ...).
    Returns ``{"by": [...], "keys": {field: array [G]}, "all": stats, "signal": stats,
    "background": stats}`` where stats is ``{"count", "mean", "std", "max"}`` per group (signal /
    background by the hit field ``split``; omitted when ``split`` is None).
    """
    from hepx.kinds import detect_kind as kind_of

    default = kind_of(events).profile_groups
    names = list(default if by is None else ([by] if isinstance(by, str) else by))
    missing = [f for f in names if f not in events.hits.fields]
    if missing:
        raise InputError(
            f"cannot group by {missing}: hit fields are {', '.join(events.hits.fields)}"
        )
    imp = flat_importance(events, importance)
    cols = [_flat(events.hits[f], np.int64) for f in names]
    if cols and len(cols[0]):
        keys_2d = np.stack(cols, axis=1)
        uniq, codes = np.unique(keys_2d, axis=0, return_inverse=True)
        codes = codes.ravel().astype(np.int64)
    else:
        uniq, codes = np.zeros((0, len(names)), np.int64), np.zeros(0, np.int64)
    n_groups = len(uniq)
    out: dict[str, Any] = {"by": names, "keys": {f: uniq[:, j] for j, f in enumerate(names)}}

    def stats(mask: np.ndarray | None) -> dict[str, np.ndarray]:
        c = codes if mask is None else np.where(mask, codes, -1)
        count, mean, std, best = kernels.group_stats(c, imp, n_groups)
        return {"count": count, "mean": mean, "std": std, "max": best}

    out["all"] = stats(None)
    if split is not None:
        lab = _flat(events.hits[split], np.int64) > 0
        out["signal"] = stats(lab)
        out["background"] = stats(~lab)
    return out


def axis_angles(sigma: Any, direction: Any) -> np.ndarray:
    """Angle (degrees, [0, 90]) between each hit's LRI-Gaussian main noise axis and a direction.

    ``sigma`` [N, d, d] (from the model output ``.sigma``), ``direction`` [N, d], e.g. the true
    momentum direction of the hit's particle (ActsTrack ``hits.px, py, pz``).
    """
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)
    direction = np.ascontiguousarray(direction, dtype=np.float64)
    if sigma.ndim != 3 or sigma.shape[1] != sigma.shape[2]:
        raise InputError(f"sigma must have shape [N, d, d], got {sigma.shape}")
    if direction.shape != sigma.shape[:2]:
        raise InputError(
            f"direction must have shape [N, d] = {sigma.shape[:2]}, got {direction.shape}"
        )
    return kernels.main_axis_angle(sigma, direction)


def annotate(
    events: ak.Array,
    importance: Any,
    *,
    sigma: Any = None,
    k: int | Sequence[int] | str = DEFAULT_TOPK,
) -> ak.Array:
    """Add importance fields to reader events (returns a new array, aligned with the input).

    Always ``hits.importance``; what else is the dataset kind's
    (:meth:`hepx.kinds.DatasetKind.annotate`). ActsTrack also adds ``tracks.importance`` (mean
    over the track's hits), ``tracks.importance_max``, ``tracks.importance_topk`` (see
    :func:`track_importance`) and, with an LRI-Gaussian ``sigma`` [N, 3, 3], ``hits.axis_angle``
    (degrees between the main noise axis and the hit's true momentum direction).

    Example
    -------
    >>> out = annotate(events, scores)        # doctest: +SKIP
    >>> out.tracks.importance                 # doctest: +SKIP
    """
    from hepx.kinds import detect_kind as kind_of

    return kind_of(events).annotate(events, importance, sigma=sigma, k=k)


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of ``scores`` against binary ``labels``."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) else np.zeros(0, np.int64)
    cut = np.concatenate([distinct, [len(s) - 1]]) if len(s) else np.zeros(0, np.int64)
    tp = np.cumsum(y)[cut] if len(s) else np.zeros(0)
    fp = (cut + 1) - tp
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.concatenate([[0.0], fp / n_neg]), np.concatenate([[0.0], tp / n_pos])


def roc_auc(scores: Any, labels: Any) -> float:
    """ROC AUC with ties counted half (Mann-Whitney); NaN if only one class is present."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
