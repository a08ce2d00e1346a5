"""Training of plain and LRI models (``hepx train``), in the shape of a fit loop.

* :func:`train` (:mod:`~hepx.training.fit`): config -> run directory.
* :class:`FitLoop` (:mod:`~hepx.training.loop`): per epoch train, validate, select, record.
* :class:`TrainStep`, :func:`make_optimizer` (:mod:`~hepx.training.step`).
* :class:`ModelSelection` (:mod:`~hepx.training.selection`): the reference's selection rule.
* The optional parts, each with its own state (:mod:`~hepx.training.callbacks`): precise
  BatchNorm statistics, the weight average (:class:`ExponentialMovingAverage`) and live tracking.
* :func:`lr_factor` (:mod:`~hepx.training.schedule`), distributed set-up
  (:mod:`~hepx.training.distributed`).

A run directory's layout and checkpoints are :mod:`hepx.run`'s.
"""

from hepx.training.batchnorm import recalibrate_batch_norm
from hepx.training.ema import ExponentialMovingAverage
from hepx.training.fit import check_frame_units, config_diff, train
from hepx.training.history import metrics_of
from hepx.training.loop import FitLoop
from hepx.training.schedule import lr_factor
from hepx.training.selection import ModelSelection
from hepx.training.step import TrainStep, make_optimizer

__all__ = [
    "ExponentialMovingAverage",
    "FitLoop",
    "ModelSelection",
    "TrainStep",
    "check_frame_units",
    "config_diff",
    "lr_factor",
    "make_optimizer",
    "metrics_of",
    "recalibrate_batch_norm",
    "train",
]
