"""Explainer algorithms: post-hoc methods of a frozen classifier and the LRI models' own scores.

Each is an :class:`ExplainerAlgorithm`: ``algorithm(model, batch) -> PointExplanation``.
"""

from hepx.explain.algorithm.base import ExplainerAlgorithm, PointInputs, point_inputs
from hepx.explain.algorithm.ensemble import EnsembleExplainer, normalise_scores
from hepx.explain.algorithm.gradients import (
    GGIG,
    GradCAM,
    GradGeo,
    IntegratedGradients,
    integrated_gradients,
    path_baseline,
    point_score,
)
from hepx.explain.algorithm.lri import LRIBernoulliScores, LRIGaussianScores
from hepx.explain.algorithm.masks import BernMask, BernMaskP, PointMaskPostHoc
from hepx.explain.algorithm.symmetrised import Symmetrised

__all__ = [
    "GGIG",
    "BernMask",
    "BernMaskP",
    "EnsembleExplainer",
    "ExplainerAlgorithm",
    "GradCAM",
    "GradGeo",
    "IntegratedGradients",
    "LRIBernoulliScores",
    "LRIGaussianScores",
    "PointInputs",
    "PointMaskPostHoc",
    "Symmetrised",
    "integrated_gradients",
    "normalise_scores",
    "path_baseline",
    "point_inputs",
    "point_score",
]
