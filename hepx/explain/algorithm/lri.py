"""Self-interpretable models (LRI, GMT, PointMask) explained by their own scores, as explainer
algorithms."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data.data import BaseData

from hepx.errors import ConfigError
from hepx.explain.algorithm.base import ExplainerAlgorithm, PointInputs, frozen

__all__ = [
    "GMTLinScores",
    "GMTSamScores",
    "LRIBernoulliScores",
    "LRIGaussianScores",
    "PointMaskScores",
]


class _LRIScores(ExplainerAlgorithm):
    model_class = ""

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        if type(model).__name__ != self.model_class:
            raise ConfigError(
                f"method {self.name!r} needs a trained {self.model_class} model "
                f"(a run with method: {self.name}), got {type(model).__name__}"
            )
        with frozen(model), torch.no_grad():
            return model(inp.x, inp.pos, inp.batch).node_scores.float()


class LRIBernoulliScores(_LRIScores):
    """LRI-Bernoulli: ``p_i = sigmoid(a_i)`` of the model's extractor (eval mode, no sampling)."""

    name = "lri_bernoulli"
    model_class = "LRIBernoulli"


class LRIGaussianScores(_LRIScores):
    """LRI-Gaussian: ``-det(Sigma_i)`` of the model's extractor."""

    name = "lri_gaussian"
    model_class = "LRIGaussian"


class GMTLinScores(_LRIScores):
    """GMT-lin: ``p_i = sigmoid(a_i)`` of the model's extractor (:mod:`hepx.models.gmt`)."""

    name = "gmt_lin"
    model_class = "GMTLin"


class GMTSamScores(_LRIScores):
    """GMT-sam: ``p_i = sigmoid(a_i)`` of the model's extractor (:mod:`hepx.models.gmt`)."""

    name = "gmt_sam"
    model_class = "GMTSam"


class PointMaskScores(_LRIScores):
    """PointMask (jointly trained, :mod:`hepx.models.pointmask`): the mask ``m_i`` of the
    model's evaluation pass."""

    name = "pointmask"
    model_class = "PointMask"
