"""Explanations of point-cloud classifiers: post-hoc explainers, LRI scores, metrics, robustness.

Common interface: ``get_explainer(name, **options)(model, batch) -> Tensor [N]`` (one score per
point, higher = more important). Names (:func:`available_methods`): ``gradcam``, ``gradgeo``,
``bernmask``, ``bernmask_p``, ``pointmask``, ``ig``, ``ggig`` (post-hoc, on a frozen plain
classifier) and ``lri_bernoulli``, ``lri_gaussian`` (an LRI model's own scores).
``bernmask_p`` and ``pointmask`` need ``.fit(model, train_loader, epochs=...)`` first.

* :mod:`hepx.explain.metrics`: interpretation ROC AUC, precision@k, prediction metrics.
* :mod:`hepx.explain.fidelity`: fid+ / fid- of the top-k points.
* :mod:`hepx.explain.sanity`: model randomisation and model perturbation checks.
* :mod:`hepx.explain.robustness`: groups, explanation invariance / equivariance, symmetrisation.
* :mod:`hepx.explain.pyg`: the explainers as ``torch_geometric.explain`` algorithms.
"""

from hepx.explain.base import (
    EXPLAINERS,
    POST_HOC,
    Explainer,
    available_methods,
    default_hparams,
    get_explainer,
)
from hepx.explain.fidelity import fidelity
from hepx.explain.gradients import (
    GGIG,
    GradCAM,
    GradGeo,
    IntegratedGradients,
    integrated_gradients,
    path_baseline,
    point_score,
)
from hepx.explain.lri import LRIBernoulliScores, LRIGaussianScores
from hepx.explain.masks import BernMask, BernMaskP, PointMask
from hepx.explain.robustness import (
    E3,
    Permutation,
    PhiShift,
    RotationZ,
    Symmetrised,
    cosine_per_sample,
    explanation_robustness,
    model_invariance,
    spearman_per_sample,
)
from hepx.explain.sanity import model_perturbation, model_randomisation

__all__ = [
    "E3",
    "EXPLAINERS",
    "GGIG",
    "POST_HOC",
    "BernMask",
    "BernMaskP",
    "Explainer",
    "GradCAM",
    "GradGeo",
    "IntegratedGradients",
    "LRIBernoulliScores",
    "LRIGaussianScores",
    "Permutation",
    "PhiShift",
    "PointMask",
    "RotationZ",
    "Symmetrised",
    "available_methods",
    "cosine_per_sample",
    "default_hparams",
    "explanation_robustness",
    "fidelity",
    "get_explainer",
    "integrated_gradients",
    "model_invariance",
    "model_perturbation",
    "model_randomisation",
    "path_baseline",
    "point_score",
    "spearman_per_sample",
]
