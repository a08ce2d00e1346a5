"""The options of the evaluation table (``hepx evaluate``, :func:`hepx.evaluation.evaluate`)."""

from __future__ import annotations

from hepx.config.schema import Field, Schema

__all__ = ["EVALUATE_SCHEMA", "PATH_BASELINES"]

#: Baselines of the path methods IG / GGIG (:func:`hepx.explain.algorithm.gradients.path_baseline`).
PATH_BASELINES = ("origin", "centroid")

EVALUATE_SCHEMA: Schema = {
    "max_samples": Field("posint", None, nullable=True, doc="test samples explained (null: all)"),
    "batch_size": Field("posint", 64, doc="samples per batch"),
    "robustness_samples": Field("posint", 32, doc="samples of the invariance and sanity checks"),
    "robustness_draws": Field("posint", 50, doc="Monte Carlo group draws"),
    "sanity": Field("bool", True, doc="run the sanity checks"),
    "robustness": Field("bool", True, doc="run the invariance checks"),
    "bernmask_iterations": Field("posint", None, nullable=True, doc="BernMask steps (null: 500)"),
    "fit_epochs": Field(
        "posint",
        None,
        nullable=True,
        doc="BernMask-P / post-hoc PointMask epochs (null: reference)",
    ),
    "fit_max_batches": Field("posint", None, nullable=True, doc="batches per fit epoch"),
    "fit_batch_size": Field(
        "posint",
        None,
        nullable=True,
        doc="samples per batch of the fits (null: the run's training batch size for BernMask-P, "
        "as the reference trains it; batch_size for the others)",
    ),
    "ig_steps": Field("posint", 50, doc="IG path steps"),
    "ig_baseline": Field("str", "origin", choices=PATH_BASELINES, doc="IG / GGIG path baseline"),
    "seed": Field("int", 0, doc="seed of fits, draws and perturbations"),
    "data": Field("path", None, nullable=True, doc="evaluate on this dataset instead"),
    "ensemble": Field(
        "posint",
        None,
        nullable=True,
        doc="also explain ensembles of this many plain runs per dataset and backbone (null: no)",
    ),
}
