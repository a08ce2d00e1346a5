"""Explanations of point-cloud classifiers, in PyTorch Geometric's ``explain`` split.

* :mod:`hepx.explain.algorithm`: the explainer algorithms (``algorithm(model, batch)``);
* :mod:`hepx.explain.explanation`: :class:`PointExplanation`, their result (scores + method);
* :mod:`hepx.explain.metric`: ground-truth metrics, fidelity, sanity checks, robustness;
* :mod:`hepx.explain.registry`: the one name -> algorithm registry (:func:`get_explainer`);
* :mod:`hepx.explain.pyg`: the algorithms inside ``torch_geometric.explain.Explainer``.

Example
-------
>>> from hepx.explain import get_explainer
>>> explanation = get_explainer("gradcam")(model, batch)      # doctest: +SKIP
>>> explanation.scores                                        # doctest: +SKIP
"""

from hepx.explain.algorithm import (
    GGIG,
    BernMask,
    BernMaskP,
    EnsembleExplainer,
    ExplainerAlgorithm,
    GradCAM,
    GradGeo,
    IntegratedGradients,
    LRIBernoulliScores,
    LRIGaussianScores,
    PointMaskPostHoc,
    Symmetrised,
)
from hepx.explain.explanation import PointExplanation
from hepx.explain.registry import (
    METHODS,
    POST_HOC,
    available_methods,
    default_hparams,
    get_explainer,
    register_explainer,
    resolve_explainer,
)

__all__ = [
    "GGIG",
    "METHODS",
    "POST_HOC",
    "BernMask",
    "BernMaskP",
    "EnsembleExplainer",
    "ExplainerAlgorithm",
    "GradCAM",
    "GradGeo",
    "IntegratedGradients",
    "LRIBernoulliScores",
    "LRIGaussianScores",
    "PointExplanation",
    "PointMaskPostHoc",
    "Symmetrised",
    "available_methods",
    "default_hparams",
    "get_explainer",
    "register_explainer",
    "resolve_explainer",
]
