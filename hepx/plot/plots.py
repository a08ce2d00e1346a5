"""Interpretation plots on annotated events (the awkward arrays of :func:`hepx.post.annotate`,
or read back with :func:`hepx.post.read_parquet` / :func:`hepx.scoring.load_scored`).

Every function takes the events (and options), draws on ``ax`` when given, else on a new
figure with the experiment's style and label, and returns the ``matplotlib`` Axes; the
distribution plots return ``(ax, hist.Hist)``, the histogram they drew, to re-bin, add or
save. Signal is red and background blue in every plot (:data:`hepx.plot.style.SIGNAL`,
:data:`~hepx.plot.style.BACKGROUND`); text that describes a display goes above the axes, never
over the hits (the event and what is shown are in the legend's title, under the axes).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import hist
import matplotlib.pyplot as plt
import mplhep
import numpy as np

from hepx.errors import InputError
from hepx.kinds import detect_kind as kind_of
from hepx.plot.style import BACKGROUND, SIGNAL, experiment_label
from hepx.post.physics import (
    detect_kind,
    flat_importance,
    group_profile,
    roc_auc,
    roc_curve,
    track_ranking,
)

__all__ = [
    "axis_angle_hist",
    "default_event",
    "etaphi_display",
    "event_display",
    "importance_distribution",
    "layer_profile",
    "track_roc",
]


def _new_ax(kind: str, ax=None, figsize=(8.0, 7.0)):
    """``ax``, or the axes of a new figure (labelled by :func:`_finish`)."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    ax._hepx_label = kind  # type: ignore[attr-defined]
    return ax


def _finish(ax):
    """Experiment label on figures created here (after colour bars resized the axes)."""
    kind = getattr(ax, "_hepx_label", None)
    if kind is not None:
        experiment_label(ax, kind)
        del ax._hepx_label
    return ax


def _np(a) -> np.ndarray:
    return ak.to_numpy(a)


def default_event(events: ak.Array) -> int:
    """Index of the event to display by default: the signal event with the most hits (else 0)."""
    if len(events) == 0:
        raise InputError("no events to display")
    n = _np(ak.num(events.hits, axis=1))
    lab = _np(events.label) > 0 if "label" in events.fields else np.zeros(len(events), bool)
    if lab.any():
        return int(np.flatnonzero(lab)[np.argmax(n[lab])])
    return int(np.argmax(n))


def _event(events: ak.Array, index: int | None) -> tuple[int, ak.Record]:
    i = default_event(events) if index is None else int(index)
    if not -len(events) <= i < len(events):
        raise InputError(f"event index {i} out of range: {len(events)} events")
    return i, events[i]


def _importance_scatter(ax, u, v, imp, sig, *, cmap: str, size: float, label: str) -> np.ndarray:
    """Hits coloured by importance (most important drawn on top), true signal hits circled."""
    order = np.argsort(imp)
    sc = ax.scatter(u[order], v[order], c=imp[order], cmap=cmap, s=size, zorder=3)
    ax.figure.colorbar(sc, ax=ax, label="hit importance", pad=0.01)
    if sig.any():
        ax.scatter(
            u[sig],
            v[sig],
            s=4 * size + 10,
            facecolors="none",
            edgecolors=SIGNAL,
            linewidths=1.3,
            zorder=4,
            label=label,
        )
    return sig


def event_display(
    events: ak.Array,
    index: int | None = None,
    *,
    view: str = "xy",
    ax=None,
    cmap: str = "viridis",
):
    """ActsTrack event display: hits coloured by importance, true signal tracks marked.

    ``view`` ``"xy"`` (transverse plane) or ``"rz"`` (z vs signed r = sign(y) * hypot(x, y)).
    ``index`` is the event's position in ``events`` (default :func:`default_event`).
    """
    if not kind_of(events).has_tracks:
        raise InputError("event_display needs ActsTrack events; use etaphi_display for muon hits")
    if view not in ("xy", "rz"):
        raise InputError(f"view must be 'xy' or 'rz', got {view!r}")
    flat_importance(events)  # checks hits.importance
    _, ev = _event(events, index)
    h = ev.hits
    x, y, z = (_np(h[c]).astype(float) for c in ("x", "y", "z"))
    imp = _np(h.importance).astype(float)
    if view == "xy":
        u, v, xl, yl = x, y, "x [mm]", "y [mm]"
    else:
        u, v = z, np.sign(y + (y == 0)) * np.hypot(x, y)
        xl, yl = "z [mm]", "signed r [mm]"
    ax = _new_ax("actstrack", ax)
    sig = _importance_scatter(
        ax, u, v, imp, _np(h.node_label) > 0, cmap=cmap, size=14, label="signal-track hits"
    )
    if sig.any():
        track = _np(h.track)
        for t in np.unique(track[sig]):
            m = sig & (track == t)
            o = np.argsort(
                np.hypot(x[m], y[m]) if view == "xy" else np.abs(z[m]) + np.hypot(x[m], y[m])
            )
            ax.plot(u[m][o], v[m][o], color=SIGNAL, lw=0.8, alpha=0.6, zorder=2)
    if view == "xy":
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    n_tracks, n_particles = len(ev.tracks), int(ev.n_particles)
    sampled = (
        f"{n_tracks} of {n_particles} tracks (sampled by the reader)"
        if n_tracks < n_particles
        else f"all {n_tracks} tracks"
    )
    _legend_below(ax, title=f"event {int(ev.event_id)}: {sampled}")
    return _finish(ax)


def etaphi_display(events: ak.Array, index: int | None = None, *, ax=None, cmap: str = "viridis"):
    """Muon-system display in (eta, phi): hits coloured by importance, signal hits circled."""
    if kind_of(events).has_tracks:
        raise InputError("etaphi_display needs Tau3Mu (muon) events; use event_display")
    flat_importance(events)
    _, ev = _event(events, index)
    h = ev.hits
    eta, phi, imp = (_np(h[c]).astype(float) for c in ("eta", "phi", "importance"))
    ax = _new_ax("tau3mu", ax)
    _importance_scatter(
        ax,
        eta,
        phi,
        imp,
        _np(h.node_label) > 0,
        cmap=cmap,
        size=30,
        label=r"hits of $\tau \to 3\mu$ muons",
    )
    ax.set_xlabel(r"$\eta$")
    ax.set_ylabel(r"$\phi$ [rad]")
    ax.set_ylim(-np.pi, np.pi)
    _legend_below(ax, title=f"event {int(ev.event_id)}: {len(h)} hits after the selection")
    return _finish(ax)


def _legend_below(ax, *, title: str) -> None:
    """The legend under the axes (outside the data), with ``title``."""
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        labels,
        title=title,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=max(1, len(handles)),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )


def _split_hist(values: np.ndarray, sig: np.ndarray, axis) -> hist.Hist:
    """A 2-d histogram: ``hits`` (signal, background) x ``axis``, filled with ``values``."""
    h = hist.Hist(hist.axis.StrCategory(["signal", "background"], name="hits"), axis)
    h.fill(hits=np.where(sig, "signal", "background"), **{axis.name: values})
    return h


def _draw_split(h: hist.Hist, ax, counts: bool = True) -> None:
    """Signal and background of ``h`` (from :func:`_split_hist`) as normalised step lines."""
    parts = [(name, color) for name, color in (("signal", SIGNAL), ("background", BACKGROUND))]
    parts = [(n, c) for n, c in parts if h[n, :].sum() > 0]
    labels = [f"{n} hits ({int(h[n, :].sum())})" if counts else f"{n} hits" for n, _ in parts]
    mplhep.histplot(
        [h[n, :] for n, _ in parts],
        ax=ax,
        label=labels,
        color=[c for _, c in parts],
        density=True,
        histtype="step",
        linewidth=1.6,
        yerr=False,
    )


def importance_distribution(events: ak.Array, *, bins: int = 40, ax=None, log: bool = True):
    """Normalised importance distributions of signal and background hits (all events).

    Returns:
        ``(ax, h)``: ``h`` is a :class:`hist.Hist` with axes ``hits`` (``"signal"``,
        ``"background"``) and ``importance``.

    Example
    -------
    >>> ax, h = importance_distribution(out)          # doctest: +SKIP
    >>> h["signal", :].values()                       # doctest: +SKIP
    """
    kind = detect_kind(events)
    imp = flat_importance(events)
    sig = ak.to_numpy(ak.flatten(events.hits.node_label)) > 0
    if len(imp) == 0:
        raise InputError("no hits to histogram")
    lo, hi = float(imp.min()), float(imp.max())
    if hi <= lo:
        hi = lo + 1.0
    axis = hist.axis.Regular(
        bins, lo, hi + 1e-9 * (hi - lo), name="importance", label="hit importance"
    )
    h = _split_hist(imp, sig, axis)
    ax = _new_ax(kind, ax)
    _draw_split(h, ax)
    ax.set_xlabel("hit importance")
    ax.set_ylabel("normalised entries")
    if log:
        ax.set_yscale("log")
    auc = roc_auc(imp, sig)
    ax.legend(title=f"hit ROC AUC = {auc:.3f}" if np.isfinite(auc) else None, fontsize="small")
    return _finish(ax), h


def layer_profile(events: ak.Array, by: Any = None, *, ax=None):
    """Mean hit importance per detector group (ActsTrack: pixel / short strip / long strip,
    barrel / endcap, layer n; muons: station / ring, or ``by`` = any hit fields such as
    ``"sector"``/``"chamber"``), signal vs background, with the standard error of the mean.

    Returns:
        ``(ax, h)``: ``h`` is a :class:`hist.Hist` with axes ``group`` (the labels on the plot)
        and ``hits`` (``"signal"``, ``"background"``) and Mean storage (count, mean, variance).
    """
    from hepx.kinds import detect_kind as kind_of_events

    kind = kind_of_events(events)
    prof = group_profile(events, by)
    names = prof["by"]
    keys = np.stack([prof["keys"][n] for n in names], axis=1) if len(names) else np.zeros((0, 0))
    ticks = [kind.group_label(dict(zip(names, map(int, row), strict=True))) for row in keys]
    h = hist.Hist(
        hist.axis.StrCategory(ticks, name="group", label=" / ".join(names)),
        hist.axis.StrCategory(["signal", "background"], name="hits"),
        storage=hist.storage.Mean(),
    )
    view = h.view()
    for j, part in enumerate(("signal", "background")):
        st = prof[part]
        view["count"][:, j] = st["count"]
        view["value"][:, j] = st["mean"]
        view["_sum_of_deltas_squared"][:, j] = st["std"] ** 2 * st["count"]
    ax = _new_ax(kind.name, ax, figsize=(max(8.0, 0.28 * len(ticks) + 3), 6.5))
    pos = np.arange(len(ticks))
    for part, color, shift in (("signal", SIGNAL, -0.15), ("background", BACKGROUND, 0.15)):
        st = prof[part]
        ok = st["count"] > 0
        err = np.where(ok, st["std"] / np.sqrt(np.maximum(st["count"], 1)), np.nan)
        ax.errorbar(
            pos[ok] + shift, st["mean"][ok], yerr=err[ok], fmt="o", ms=4, color=color,
            label=f"{part} hits",
        )  # fmt: skip
    ax.set_xticks(pos)
    ax.set_xticklabels(ticks, rotation=90, fontsize="x-small")
    ax.set_xlim(-0.7, len(ticks) - 0.3)
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    ax.set_ylabel("mean hit importance")
    ax.legend(fontsize="small")
    return _finish(ax), h


def track_roc(events: ak.Array, *, ax=None, score: str = "importance"):
    """Track-level ROC of the per-track importance (true signal tracks vs others, signal events)."""
    if not kind_of(events).has_tracks:
        raise InputError("track_roc needs ActsTrack events (tracks)")
    if score not in events.tracks.fields:
        raise InputError(
            f"events carry no tracks.{score}; annotate them first (hepx.post.annotate)"
        )
    res = track_ranking(events, events.tracks[score])
    if not np.isfinite(res["auc"]):
        raise InputError("no signal event with both signal and other tracks: no track ROC")
    fpr, tpr = roc_curve(res["score"], res["is_signal"])
    ax = _new_ax("actstrack", ax)
    ax.plot(fpr, tpr, lw=2, color=SIGNAL, label=f"track {score}: AUC = {res['auc']:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    ax.set_xlabel("background-track efficiency")
    ax.set_ylabel("signal-track efficiency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(
        loc="lower right",
        fontsize="small",
        title=f"top-n efficiency = {res['mean_efficiency']:.3f}",
    )
    return _finish(ax)


def axis_angle_hist(events: ak.Array, *, bins: int = 18, ax=None):
    """LRI-Gaussian: angle between each hit's main noise axis and the true track direction,
    signal vs background hits, with the expectation for a random (isotropic) axis.

    Returns:
        ``(ax, h)``: ``h`` is a :class:`hist.Hist` with axes ``hits`` and ``angle``.
    """
    if "axis_angle" not in events.hits.fields:
        raise InputError(
            "events carry no hits.axis_angle (only ActsTrack LRI-Gaussian runs have it)"
        )
    kind = detect_kind(events)
    ang = ak.to_numpy(ak.flatten(events.hits.axis_angle)).astype(float)
    sig = ak.to_numpy(ak.flatten(events.hits.node_label)) > 0
    ok = np.isfinite(ang)
    if not ok.any():
        raise InputError("no finite axis angles to histogram")
    axis = hist.axis.Regular(bins, 0.0, 90.0, name="angle", label="angle [deg]")
    h = _split_hist(ang[ok], sig[ok], axis)
    ax = _new_ax(kind, ax)
    _draw_split(h, ax, counts=False)
    t = np.linspace(0, 90, 200)
    ax.plot(t, np.sin(np.radians(t)) * np.pi / 180, ls="--", color="grey", label="isotropic axis")
    ax.set_xlabel("angle(main noise axis, true track direction) [deg]")
    ax.set_ylabel("normalised entries / deg")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)  # no offset text on the label
    ax.set_xlim(0, 90)
    ax.legend(fontsize="small")
    return _finish(ax), h
