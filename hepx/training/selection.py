"""Model selection: which epoch's weights become ``best.pt`` (the LRI reference's rule)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ModelSelection"]


class ModelSelection:
    """The reference's rule: the highest validation prediction ROC AUC (``metric="pred_auc"``;
    GMT's runs select by the accuracy, ``"pred_acc"``), ties broken by the lower validation
    loss; a NaN value never wins.

    Its state (``epoch``, ``auc``, ``loss``, ``phase`` of the best epoch so far; ``auc`` holds
    the selection metric's value, whichever it is) is saved in ``last.pt`` so that a resumed
    run selects as an uninterrupted one.
    """

    def __init__(self, state: Mapping[str, Any] | None = None, metric: str = "pred_auc") -> None:
        self.metric = metric
        self.best: dict[str, Any] = (
            dict(state) if state else {"epoch": -1, "auc": -math.inf, "loss": math.inf}
        )

    @property
    def epoch(self) -> int:
        return int(self.best["epoch"])

    def _entry(self, val: Mapping[str, float], epoch: int, phase: str) -> dict[str, Any]:
        value = val[self.metric] if not math.isnan(val[self.metric]) else -math.inf
        return {"epoch": epoch, "auc": value, "loss": val["loss"], "phase": phase}

    def offer(self, val: Mapping[str, float], epoch: int, phase: str) -> bool:
        """Record ``epoch`` if its validation metrics beat the best so far; True if so."""
        new = self._entry(val, epoch, phase)
        better = new["auc"] > self.best["auc"] or (
            new["auc"] == self.best["auc"] and new["loss"] < self.best["loss"]
        )
        if better:
            self.best = new
        return better

    def state_dict(self) -> dict[str, Any]:
        return dict(self.best)
