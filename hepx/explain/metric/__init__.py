"""Metrics of explanations: against the ground truth, fidelity, sanity checks, robustness.

* :mod:`~hepx.explain.metric.groundtruth`: prediction metrics, interpretation ROC AUC, precision@k;
* :mod:`~hepx.explain.metric.fidelity`: fid+ / fid- of the top-k points;
* :mod:`~hepx.explain.metric.sanity`: model randomisation and model perturbation;
* :mod:`~hepx.explain.metric.robustness`: symmetry groups, explanation invariance / equivariance.
"""

from hepx.explain.metric.fidelity import fidelity, topk_mask
from hepx.explain.metric.groundtruth import (
    capped_precision_at_k,
    interpretation_roc_auc,
    per_sample_interpretation_auc,
    precision_at_k,
    prediction_metrics,
)
from hepx.explain.metric.robustness import (
    E3,
    GROUPS,
    Group,
    Permutation,
    PhiShift,
    RotationZ,
    applicable_groups,
    cosine_per_sample,
    default_group,
    explanation_robustness,
    get_group,
    is_e3_invariant,
    model_invariance,
    normalise_per_sample,
    spearman_per_sample,
)
from hepx.explain.metric.sanity import model_perturbation, model_randomisation

__all__ = [
    "E3",
    "GROUPS",
    "Group",
    "Permutation",
    "PhiShift",
    "RotationZ",
    "applicable_groups",
    "capped_precision_at_k",
    "cosine_per_sample",
    "default_group",
    "explanation_robustness",
    "fidelity",
    "get_group",
    "interpretation_roc_auc",
    "is_e3_invariant",
    "model_invariance",
    "model_perturbation",
    "model_randomisation",
    "normalise_per_sample",
    "per_sample_interpretation_auc",
    "precision_at_k",
    "prediction_metrics",
    "spearman_per_sample",
    "topk_mask",
]
