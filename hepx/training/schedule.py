"""The learning-rate schedule of ``train.lr_schedule``."""

from __future__ import annotations

import math

from hepx.config.run import LR_SCHEDULES

__all__ = ["lr_factor"]


def lr_factor(
    epoch: int,
    *,
    epochs: int,
    schedule: str = "constant",
    decay_start: int = 0,
    final_factor: float = 0.01,
) -> float:
    """Learning rate of ``epoch`` (0-based) over the configured one.

    ``constant`` (the reference): 1. ``cosine``: 1 before ``decay_start``, then half a cosine
    from 1 down to ``final_factor``, reached at the last epoch ``epochs - 1``::

        f(e) = final + (1 - final) * (1 + cos(pi * (e - start + 1) / (epochs - start))) / 2

    The epochs before ``decay_start`` train exactly as with a constant rate. A start at or
    after ``epochs`` leaves the whole run constant, so a run stopped there and resumed with
    more epochs (``--resume``, ``train.epochs`` raised) decays as an uninterrupted one would.

    Example
    -------
    >>> lr_factor(9, epochs=10, schedule="cosine", decay_start=5, final_factor=0.1)
    0.1
    """
    if schedule == "constant" or epoch < decay_start:
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}; expected one of {LR_SCHEDULES}")
    progress = min(1.0, (epoch - decay_start + 1) / (epochs - decay_start))
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
