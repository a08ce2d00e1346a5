"""The notebook API: ``model = hepx.load(RUN_DIR)``; ``out = model.explain(events)``.

Example
-------
>>> import hepx, hepx.io, hepx.plot                                    # doctest: +SKIP
>>> events = hepx.io.read_cms_muon("ntuple.root")                      # doctest: +SKIP
>>> model = hepx.load("runs/tau3mu_bern")                              # doctest: +SKIP
>>> out = model.explain(events)          # events + hits.importance, logit, prob
>>> hepx.plot.etaphi_display(out)                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import InputError


class TrainedModel:
    """A trained hepx run, ready to score reader events (awkward Arrays) in a notebook.

    Parameters
    ----------
    run_dir
        A ``hepx train`` run directory.
    checkpoint
        ``"best"`` (the selected epoch) or ``"last"``.
    device
        ``"cpu"`` or ``"cuda"``.
    """

    def __init__(
        self, run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str = "cpu"
    ) -> None:
        from hepx.post.pipeline import _load_run, _run_kind_and_options
        from hepx.training import model_from_checkpoint

        self.run_dir = Path(run_dir)
        state = _load_run(self.run_dir, checkpoint)
        self.config: dict[str, Any] = state["config"]
        self.kind, self.reader_options = _run_kind_and_options(state)
        self.model = model_from_checkpoint(state).eval()
        self.device = device
        self.epoch: int = state["epoch"]

    @property
    def method(self) -> str:
        """``plain``, ``lri_bernoulli`` or ``lri_gaussian``."""
        return self.config["model"]["method"]

    def __repr__(self) -> str:
        m = self.config["model"]
        return f"TrainedModel({self.run_dir}, kind={self.kind}, {m['method']} {m['backbone']}, epoch {self.epoch})"

    def _scorer(self, explainer, batch_size: int):
        from hepx.post.pipeline import _Scorer, resolve_explainer

        explainer = resolve_explainer(explainer)
        if explainer is None and not hasattr(self.model, "extractor"):
            from hepx.errors import CheckpointError

            raise CheckpointError(
                f"{self.run_dir} is a plain classifier without built-in importance: pass explainer=..."
            )
        return _Scorer(
            self.model, self.kind, batch_size=batch_size, device=self.device, explainer=explainer
        )

    def _check_kind(self, events: ak.Array) -> None:
        from hepx.post.physics import detect_kind

        kind = detect_kind(events)
        if kind != self.kind:
            raise InputError(f"these are {kind} events but the model was trained on {self.kind}")

    def explain(
        self,
        events: ak.Array,
        *,
        explainer: str | Callable[[Any, Any], Any] | None = None,
        batch_size: int = 64,
        k: int | str = 24,
    ) -> ak.Array:
        """Score ``events`` (from :func:`hepx.io.read_acts` / :func:`hepx.io.read_cms_muon`).

        Returns the events with ``hits.importance`` (and for ActsTrack ``tracks.importance``,
        ``tracks.importance_max``, ``tracks.importance_topk``, and ``hits.axis_angle`` for
        LRI-Gaussian), plus the per-event ``logit`` and ``prob``. ``explainer`` names a
        post-hoc method (or is a callable ``f(model, batch) -> scores``) for plain runs.
        """
        from hepx.post.pipeline import _score_events

        self._check_kind(events)
        return _score_events(self._scorer(explainer, batch_size), events, k)

    def predict(self, events: ak.Array, *, batch_size: int = 256) -> np.ndarray:
        """Per-event probability that the event is signal, shape [len(events)]."""
        import torch
        from torch_geometric.loader import DataLoader

        from hepx.data.convert import actstrack_arrays, tau3mu_arrays
        from hepx.data.dataset import PointCloudDataset

        self._check_kind(events)
        arrays = (actstrack_arrays if self.kind == "actstrack" else tau3mu_arrays)(events)
        classifier = self.model.classifier if hasattr(self.model, "extractor") else self.model
        model = self.model.to(self.device).eval()
        logits = []
        with torch.no_grad():
            for batch in DataLoader(PointCloudDataset(arrays), batch_size=batch_size):
                batch = batch.to(self.device)
                out = model(batch) if hasattr(model, "extractor") else classifier(batch)
                logits.append(
                    (out.logits if hasattr(out, "logits") else out).view(-1).cpu().numpy()
                )
        return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def load(
    run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str = "cpu"
) -> TrainedModel:
    """Load a trained run for use on awkward events: see :class:`TrainedModel`."""
    return TrainedModel(run_dir, checkpoint=checkpoint, device=device)
