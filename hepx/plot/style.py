"""Experiment-style figures: mplhep styles and labels, atomic PNG/PDF saving."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mplhep

from hepx.atomic import atomic_file
from hepx.errors import InputError

__all__ = [
    "BACKGROUND",
    "FORMATS",
    "SIGNAL",
    "experiment_label",
    "figure",
    "save_figure",
]

FORMATS = ("png", "pdf")
#: The colours of signal and background in every hepx plot (hits, tracks, curves).
SIGNAL = "tab:red"
BACKGROUND = "tab:blue"


def _experiment(kind: str) -> tuple[str, str, str, str]:
    """(experiment, label, mplhep style, right label) of a dataset kind's plots."""
    from hepx.kinds import KINDS

    return KINDS[kind].experiment if kind in KINDS else ("", "Simulation", "CMS", "")


@contextlib.contextmanager
def figure(kind: str, *, figsize: tuple[float, float] = (8.0, 7.0)) -> Iterator[plt.Figure]:
    """A new figure under the experiment's mplhep style (closed on exit)."""
    style = getattr(mplhep.style, _experiment(kind)[2])
    with plt.style.context(style):
        fig = plt.figure(figsize=figsize)
        try:
            yield fig
        finally:
            plt.close(fig)


def experiment_label(ax, kind: str, *, rlabel: str | None = None) -> None:
    """'ACTS Simulation' / 'CMS Phase-2 Simulation' on top of ``ax`` (mplhep ``exp_label``)."""
    exp, text, _, default_rlabel = _experiment(kind)
    if rlabel is None:
        rlabel = default_rlabel
    mplhep.label.exp_label(exp=exp, llabel=text, rlabel=rlabel, loc=0, ax=ax)


def save_figure(
    fig: plt.Figure, base: str | os.PathLike, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Save ``fig`` as ``base.<fmt>`` for each format, each file written atomically."""
    base = Path(base)
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise InputError(f"unsupported image format(s) {bad} (png, pdf, svg)")
    paths = []
    for fmt in formats:
        final = base.with_name(f"{base.name}.{fmt}")
        with atomic_file(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=100 if fmt == "png" else None, bbox_inches="tight")
        paths.append(final)
    return paths
