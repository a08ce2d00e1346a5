"""A trained model over reader events (awkward arrays): per-hit importance, per-event score."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
from torch import nn

from hepx.errors import CheckpointError, InputError
from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.inference import Predictions, is_lri, predict
from hepx.kinds import DatasetKind, get_kind

__all__ = ["EventScorer"]


class EventScorer:
    """Runs a model over reader events of its dataset kind, in batches.

    Args:
        model: the trained model (moved to ``device``, eval mode).
        kind: the dataset kind the model was trained on.
        batch_size: events per model batch (the cap on events under ``max_points``).
        device: ``"cpu"`` or ``"cuda"``.
        explainer: the source of the point scores for models without their own (plain
            classifiers); ``None`` uses the LRI model's scores.
        max_points: hits per model batch at most (an event with more is a batch alone), so
            that memory does not grow with the event size; ``None``: ``batch_size`` events.
            The scores do not depend on it (eval mode: each event's outputs are its own).

    Example
    -------
    >>> scorer = EventScorer(run.model(), run.kind, max_points=200_000)   # doctest: +SKIP
    >>> scored = scorer.annotate(events)                               # doctest: +SKIP
    >>> scored.hits.importance, scored.prob                            # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        kind: str | DatasetKind,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        explainer: ExplainerAlgorithm | None = None,
        max_points: int | None = None,
    ) -> None:
        from hepx.data.batching import check_budget
        from hepx.device import checked_device

        checked_device(device)
        if max_points is not None:
            check_budget(max_points)
        self.model = model.to(device).eval()
        self.kind = get_kind(kind)
        self.batch_size = batch_size
        self.device = device
        self.explainer = explainer
        self.max_points = max_points

    def require_scores(self, what: str) -> None:
        """Raise :class:`CheckpointError` if neither the model nor an explainer scores points."""
        if self.explainer is None and not is_lri(self.model):
            raise CheckpointError(
                f"{what}: a plain model (no built-in importance) needs an explainer, e.g. "
                "gradcam; LRI, GMT and PointMask runs score hits themselves"
            )

    def predict(self, events: ak.Array, *, progress: bool | None = False) -> Predictions:
        """The model (and explainer) over ``events``: :class:`~hepx.inference.Predictions`."""
        from hepx.data.batching import make_loader
        from hepx.data.dataset import PointCloudDataset

        arrays = self.kind.to_arrays(events)
        loader = make_loader(
            PointCloudDataset(arrays), batch_size=self.batch_size, max_points=self.max_points
        )
        pred = predict(
            self.model,
            loader,
            device=self.device,
            explainer=self.explainer,
            progress=progress,
            desc=f"score {self.kind.name}",
        )
        if self.explainer is not None or is_lri(self.model):
            if len(pred.scores) != arrays.num_points:
                raise InputError(
                    f"the explainer returned {len(pred.scores)} scores for {arrays.num_points} hits"
                )
        return pred

    def annotate(self, events: ak.Array, *, k: Any = None, progress: bool | None = False):
        """``events`` with ``hits.importance`` (and the kind's per-track fields), ``logit`` and
        ``prob`` per event."""
        pred = self.predict(events, progress=progress)
        sigma = pred.sigma  # LRI-Gaussian: the kind may use it (ActsTrack's axis angle)
        if sigma is not None and sigma.shape[1:] != (3, 3):
            sigma = None
        out = self.kind.annotate(events, pred.scores, sigma=sigma, k=k)
        logit = pred.logits.astype(np.float32)
        out = ak.with_field(out, logit, "logit")
        prob = (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)
        return ak.with_field(out, prob, "prob")
