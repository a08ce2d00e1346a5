"""Precise BatchNorm statistics: re-estimated with the current weights before validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["recalibrate_batch_norm"]


@torch.no_grad()
def recalibrate_batch_norm(
    module: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any] | None = None
) -> int:
    """Re-estimate the running statistics of every BatchNorm layer of ``module`` with its
    current weights: the equally weighted average of the batch statistics over ``batches``
    ("precise BN"), computed in training mode (dropout, LRI sampling) as in a training step.

    Why: the default running statistics are an exponential average (momentum 0.1) over the
    last ~10 training steps, taken while the weights moved, which shifts evaluation-mode logits
    (docs: design decisions). The weights are not touched (the running statistics play no part
    in training-mode forwards).

    Args:
        module: the model (its mode is restored afterwards).
        batches: an iterable of inputs for ``forward``.
        forward: ``forward(batch)`` runs ``module`` (default: ``module(batch)``).

    Returns:
        The number of batches used (0 when ``module`` has no BatchNorm layer).
    """
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average of the batch statistics
    module.train()
    n = 0
    try:
        for batch in batches:
            (forward or module)(batch)
            n += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        module.train(was_training)
    return n
