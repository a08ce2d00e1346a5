"""One training step's loss, and the optimiser of a model's parameter groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hepx.inference import is_lri

__all__ = ["TrainStep", "make_optimizer"]


class TrainStep(nn.Module):
    """Loss of one batch, as a module so DistributedDataParallel sees every forward.

    ``forward(batch, lri=True)`` -> ``(loss, logits [B, 1], pred_loss, info_loss)``; with
    ``lri=False`` (warm-up, or a plain model) the wrapped classifier is trained alone.
    """

    def __init__(self, model: nn.Module, *, pred_coef: float, info_coef: float) -> None:
        super().__init__()
        self.model = model
        self.pred_coef = pred_coef
        self.info_coef = info_coef

    @property
    def is_lri(self) -> bool:
        return is_lri(self.model)

    def forward(self, batch, lri: bool = True):
        y = batch.y.view(-1, 1).float()
        if self.is_lri and lri:
            out = self.model(batch)
            pred = F.binary_cross_entropy_with_logits(out.logits, y)
            info = out.info_loss
            return self.pred_coef * pred + self.info_coef * info, out.logits, pred, info
        classifier = self.model.classifier if self.is_lri else self.model
        logits = classifier(batch)
        pred = F.binary_cross_entropy_with_logits(logits, y)
        return self.pred_coef * pred, logits, pred, torch.zeros((), device=logits.device)


def make_optimizer(model: nn.Module, train: Mapping[str, Any]) -> torch.optim.Adam:
    """Adam over the model's parameter groups: ``classifier`` (``train.lr``,
    ``train.weight_decay``) and, for LRI models, ``extractor`` (``train.extractor_lr``,
    ``train.extractor_weight_decay``). Each group carries its ``name``."""
    groups = (
        model.parameter_groups()
        if hasattr(model, "parameter_groups")
        else {"classifier": list(model.parameters())}
    )
    param_groups = [
        {
            "params": groups["classifier"],
            "lr": train["lr"],
            "weight_decay": train["weight_decay"],
            "name": "classifier",
        }
    ]
    if "extractor" in groups:
        param_groups.append(
            {
                "params": groups["extractor"],
                "lr": train["extractor_lr"],
                "weight_decay": train["extractor_weight_decay"],
                "name": "extractor",
            }
        )
    return torch.optim.Adam(param_groups)
