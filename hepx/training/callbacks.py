"""The optional parts of the fit loop, each a small object with its own state.

* :class:`BatchNormRecalibration`: precise BatchNorm statistics before every validation
  (``train.bn_recalibration_batches``).
* :class:`WeightAverage`: an exponential moving average of the weights is what gets validated,
  selected and saved (``train.ema_decay``).
* :class:`LiveTracking`: with a weight average, the live weights are validated and selected too
  (``train.ema_track_live``): the run without the average, on the same trajectory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.loader import DataLoader

from hepx.data.batching import make_loader
from hepx.errors import CheckpointError
from hepx.training.batchnorm import recalibrate_batch_norm
from hepx.training.ema import ExponentialMovingAverage
from hepx.training.selection import ModelSelection
from hepx.training.step import TrainStep

__all__ = ["BatchNormRecalibration", "LiveTracking", "WeightAverage", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream of one epoch, derived from the run's seed."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class BatchNormRecalibration:
    """Re-estimates BatchNorm statistics on ``n_batches`` batches of the whole training split
    (the same on every rank) under their own seed, so that the training random stream, and so
    the weights, are those of a run without recalibration.

    Args:
        train_set: the training split.
        n_batches: batches to average (0: off).
        batch_size: samples per batch.
        seed: the run's seed.
        device: where the model runs.
        max_points: the point budget of a batch (``train.max_points_per_batch``, with
            ``batch_size`` as the cap on samples), or ``None``: ``batch_size`` samples.
    """

    def __init__(
        self,
        train_set,
        *,
        n_batches: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        max_points: int | None = None,
    ) -> None:
        self.train_set = train_set
        self.n_batches = n_batches
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.max_points = max_points

    def __call__(self, step: TrainStep, epoch: int, lri: bool) -> None:
        """Recalibrate ``step``'s model as it is after ``epoch``."""
        if self.n_batches == 0:
            return
        seed = epoch_seed(self.seed, epoch, 11)
        dev = self.device
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=dev.type):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            if self.max_points is None:
                loader = DataLoader(
                    self.train_set, batch_size=self.batch_size, shuffle=True, generator=gen
                )
            else:
                loader = make_loader(
                    self.train_set,
                    batch_size=self.batch_size,
                    max_points=self.max_points,
                    shuffle=True,
                    seed=seed,
                    generator=gen,
                )
            batches = (b.to(dev) for _, b in zip(range(self.n_batches), loader, strict=False))
            recalibrate_batch_norm(step, batches, lambda b: step(b, lri=lri))


class WeightAverage:
    """The weight average of ``train.ema_decay``: updated after every optimiser step,
    restarted when LRI training begins after a warm-up, and the model that is validated,
    selected and saved as ``best.pt``.

    Args:
        model: the live model (deep-copied).
        decay: the EMA decay.
        warmup: warm-up epochs of the run.
        is_lri: whether the model is an LRI model.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: int, is_lri: bool) -> None:
        self.ema = ExponentialMovingAverage(model, decay)
        self.warmup = warmup
        self.is_lri = is_lri
        # only for the BatchNorm recalibration forwards: the loss coefficients play no part
        self.step = TrainStep(self.ema.module, pred_coef=1.0, info_coef=1.0)

    @property
    def model(self) -> nn.Module:
        return self.ema.module

    def on_epoch_start(self, live: nn.Module, epoch: int, r: float | None) -> None:
        if r is not None:
            self.ema.module.set_epoch(epoch - self.warmup)
        if self.is_lri and 0 < self.warmup == epoch:
            self.ema.reset(live)  # average LRI weights only, not those of the warm-up

    def on_train_batch_end(self, live: nn.Module) -> None:
        self.ema.update(live)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(ema_state, extra)`` for ``last.pt``."""
        return self.ema.state_dict(), {"ema_updates": self.ema.num_updates}

    def restore(self, checkpoint: Mapping[str, Any], path: Any) -> None:
        if "ema_state" not in checkpoint or "ema_updates" not in checkpoint.get("extra", {}):
            raise CheckpointError(f"{path}: holds no weight average (train.ema_decay)")
        self.ema.load_state_dict(checkpoint["ema_state"], checkpoint["extra"]["ema_updates"])


class LiveTracking:
    """Validates the live weights beside their average (``val_live_*`` columns), selects
    among them with the same rule into ``checkpoints/best_live.pt`` and reports their test
    metrics as ``live_selected_epoch`` / ``test_live_*``."""

    checkpoint = "best_live"
    prefix = "live_"

    def __init__(self, state: Mapping[str, Any] | None = None, metric: str = "pred_auc") -> None:
        self.selection = ModelSelection(state, metric)

    def state(self) -> dict[str, Any]:
        return {"best_live": self.selection.state_dict()}
