"""The notebook API: ``model = hepx.load(RUN_DIR)``; ``out = model.explain(events)``.

Example
-------
>>> import hepx, hepx.io, hepx.plot                                    # doctest: +SKIP
>>> events = hepx.io.read_cms_muon("ntuple.root")                      # doctest: +SKIP
>>> model = hepx.load("runs/tau3mu_bern")                              # doctest: +SKIP
>>> out = model.explain(events)          # events + hits.importance, logit, prob   # doctest: +SKIP
>>> hepx.plot.etaphi_display(out)                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import InputError
from hepx.run import TrainedRun

__all__ = ["TrainedModel", "load"]


class TrainedModel:
    """A trained hepx run, ready to score reader events (awkward Arrays) in a notebook.

    Args:
        run_dir: a ``hepx train`` run directory.
        checkpoint: ``"best"`` (the selected epoch) or ``"last"``.
        device: ``"cpu"`` or ``"cuda"``.

    Attributes:
        run: the :class:`hepx.run.TrainedRun`.
        model: the torch model (eval mode).
        config: the run's resolved config.
    """

    def __init__(
        self, run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str = "cpu"
    ) -> None:
        from hepx.device import checked_device

        checked_device(device)
        self.run = TrainedRun.open(run_dir, checkpoint=checkpoint)
        self.run_dir = self.run.directory
        self.config: dict[str, Any] = self.run.config
        self.model = self.run.model()
        self.device = device
        self.epoch: int = self.run.epoch

    @property
    def kind(self) -> str:
        """The dataset kind the run was trained on (``"actstrack"``, ``"tau3mu"``)."""
        return self.run.kind.name

    @property
    def reader_options(self) -> dict[str, Any]:
        """The reader options of the run's training data."""
        return self.run.reader_options

    @property
    def method(self) -> str:
        """The model method: ``plain``, ``lri_bernoulli``, ``lri_gaussian``, ``gmt_lin``,
        ``gmt_sam`` or ``pointmask``."""
        return self.run.method

    def __repr__(self) -> str:
        m = self.config["model"]
        return (
            f"TrainedModel({self.run_dir}, kind={self.kind}, {m['method']} {m['backbone']}, "
            f"epoch {self.epoch})"
        )

    def _scorer(self, explainer: Any, batch_size: int, max_points: int | None = None):
        from hepx.explain.registry import resolve_explainer
        from hepx.scoring import EventScorer

        return EventScorer(
            self.model,
            self.run.kind,
            batch_size=batch_size,
            device=self.device,
            explainer=resolve_explainer(explainer),
            max_points=self.run.eval_max_points if max_points is None else max_points,
        )

    def _check_kind(self, events: ak.Array) -> None:
        from hepx.kinds import detect_kind

        kind = detect_kind(events).name
        if kind != self.kind:
            raise InputError(f"these are {kind} events but the model was trained on {self.kind}")

    def explain(
        self,
        events: ak.Array,
        *,
        explainer: str | Callable[[Any, Any], Any] | None = None,
        batch_size: int = 64,
        k: int | str = 24,
        progress: bool | None = None,
        max_points: int | None = None,
    ) -> ak.Array:
        """Score ``events`` (from :func:`hepx.io.read_acts` / :func:`hepx.io.read_cms_muon`).

        Returns the events with ``hits.importance`` (and for ActsTrack ``tracks.importance``,
        ``tracks.importance_max``, ``tracks.importance_topk``, and ``hits.axis_angle`` for
        LRI-Gaussian), plus the per-event ``logit`` and ``prob``. ``explainer`` names a
        post-hoc method (or is a function ``f(model, batch) -> scores``) for plain runs.
        ``progress`` shows a bar over the batches (``None``: when stderr is a terminal).
        ``max_points`` caps the hits per model batch (``batch_size`` then caps the events;
        an event with more hits is a batch alone): memory bounded by hits, not events
        (``None``: the run's ``train.eval_max_points_per_batch``, if it has one).
        """
        self._check_kind(events)
        scorer = self._scorer(explainer, batch_size, max_points)
        scorer.require_scores(str(self.run_dir))
        return scorer.annotate(events, k=k, progress=progress)

    def predict(
        self,
        events: ak.Array,
        *,
        batch_size: int = 256,
        progress: bool | None = None,
        max_points: int | None = None,
    ) -> np.ndarray:
        """Per-event probability that the event is signal, shape ``[len(events)]``
        (``max_points`` as in :meth:`explain`)."""
        self._check_kind(events)
        pred = self._scorer(None, batch_size, max_points).predict(events, progress=progress)
        return pred.probabilities()


def load(
    run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str = "cpu"
) -> TrainedModel:
    """Load a trained run for use on awkward events: see :class:`TrainedModel`.

    Example
    -------
    >>> model = hepx.load("runs/tau3mu_bern")   # doctest: +SKIP
    """
    return TrainedModel(run_dir, checkpoint=checkpoint, device=device)
