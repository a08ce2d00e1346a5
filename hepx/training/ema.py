"""Exponential moving average of a model's weights (Polyak averaging), for evaluation.

``hepx train`` with ``train.ema_decay: D`` validates, selects and saves the averaged model instead
of the live one; the live weights train exactly as without it (the average is a shadow copy, so
the training random stream and losses are those of a run without ``ema_decay``).

Why: LRI-Bernoulli's importance scores stay close to the prior ``r`` (the KL term pulls every
point there) and the ranking of the hits rests on small deviations from it, which the constant
learning rate of the reference moves from epoch to epoch; selecting the epoch by prediction AUC
(the reference's rule) then lands at random on that spread. An average over the last few
hundred steps is a smoother model (docs: design decisions, where it is measured).

Not ``torch.optim.swa_utils.AveragedModel``: its ``state_dict`` nests the model under
``module.`` with an ``n_averaged`` buffer (``best.pt`` must load into a plain model), and its EMA
function has no ramp for the first updates; the update here is one ``torch._foreach_lerp_``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """A shadow copy of ``model`` whose floating-point parameters and buffers follow

        ``avg <- d * avg + (1 - d) * live``,  ``d = min(decay, (1 + n) / (10 + n))``

    after the ``n``-th update since the last :meth:`reset` (the ramp keeps the first updates
    from being dominated by the starting weights, as in TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``). Integer buffers (BatchNorm's
    ``num_batches_tracked``) are copied. With ``decay = 0.995`` the average spans about
    ``1 / (1 - decay) = 200`` optimiser steps.

    Args:
        model: the live model; it is deep-copied, so attributes such as LRI-Bernoulli's ``r``
            must be set on :attr:`module` as well.
        decay: in ``(0, 1)``.

    Attributes:
        module: the averaged model (no gradients), to evaluate and save.
        num_updates: updates since the last :meth:`reset`.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay of the next update."""
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimiser step)."""
        # state_dict tensors share storage with the parameters and buffers: updated in place
        avg, live = self.module.state_dict(), model.state_dict()
        if avg.keys() != live.keys():
            raise ValueError("the model does not have the averaged model's parameters")
        floats = [k for k in avg if avg[k].dtype.is_floating_point]
        torch._foreach_lerp_(
            [avg[k] for k in floats], [live[k] for k in floats], 1.0 - self.current_decay()
        )
        for k in avg.keys() - set(floats):
            avg[k].copy_(live[k])
        self.num_updates += 1

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restart the average at ``model``'s current weights (e.g. when LRI training starts
        after the warm-up: the weights of a plain classifier are no model to average with)."""
        self.module.load_state_dict(model.state_dict())
        self.num_updates = 0

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights (a plain ``state_dict`` of :attr:`module`)."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Tensor], num_updates: int) -> None:
        """Restore an average saved with :meth:`state_dict` after ``num_updates`` updates."""
        self.module.load_state_dict(state)
        self.num_updates = int(num_updates)
