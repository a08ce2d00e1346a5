"""The fit loop: per epoch train, recalibrate, validate, select, record; then test.

Randomness is re-seeded at every epoch from ``(seed, epoch)``, so a resumed run is identical
to an uninterrupted one, and a CPU run is deterministic for a given seed and thread count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.loader import DataLoader

from hepx.atomic import atomic_file
from hepx.data.batching import make_loader
from hepx.inference import predict
from hepx.run import RunLayout, load_checkpoint, save_checkpoint
from hepx.training.callbacks import (
    BatchNormRecalibration,
    LiveTracking,
    WeightAverage,
    epoch_seed,
)
from hepx.training.distributed import barrier
from hepx.training.history import finite, metrics_of, write_history
from hepx.training.schedule import lr_factor
from hepx.training.selection import ModelSelection
from hepx.training.step import TrainStep

log = logging.getLogger("hepx")

__all__ = ["FitLoop"]


class FitLoop:
    """Trains one model; the run's state lives here and in the components it holds.

    Args:
        config: the resolved run config.
        layout: the run directory.
        model: the model (on ``device``).
        optimizer: its optimiser.
        step: the loss module (wrapped in DDP when distributed).
        splits: ``train`` / ``val`` / ``test`` datasets.
        dataset: the checkpoints' dataset record (:func:`hepx.run.dataset_record`).
        device: where the model runs.
        rank, world: this process and the number of processes.
        progress: show progress bars (``None``: on a terminal or in a notebook).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        layout: RunLayout,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        step: nn.Module,
        splits: Mapping[str, Any],
        *,
        dataset: Mapping[str, Any],
        device: torch.device,
        rank: int = 0,
        world: int = 1,
        progress: bool | None = None,
    ) -> None:
        self.config, self.layout = config, layout
        self.train_cfg = config["train"]
        self.model, self.optimizer, self.step = model, optimizer, step
        self.splits, self.dataset = splits, dataset
        self.device, self.rank, self.world = device, rank, world
        self.progress = progress
        self.is_lri = hasattr(model, "extractor")
        self._has_r = hasattr(model, "set_epoch")  # LRI-Bernoulli's prior schedule
        self._extractor = model.parameter_groups()["extractor"] if self.is_lri else []
        t = self.train_cfg
        self.average = (
            WeightAverage(model, t["ema_decay"], warmup=t["warmup"], is_lri=self.is_lri)
            if t["ema_decay"]
            else None
        )
        tracked = self.average is not None and t["ema_track_live"]
        self.live = LiveTracking(metric=t["selection_metric"]) if tracked else None
        self.recalibrate = BatchNormRecalibration(
            splits["train"],
            n_batches=t["bn_recalibration_batches"],
            batch_size=t["batch_size"],
            seed=t["seed"],
            device=device,
            max_points=t.get("max_points_per_batch"),
        )
        self.selection = ModelSelection(metric=t["selection_metric"])
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.val_loader = self.eval_loader("val")
        self.sampler = None
        if world > 1 and t.get("max_points_per_batch") is None:
            from torch.utils.data.distributed import DistributedSampler

            self.sampler = DistributedSampler(
                splits["train"], num_replicas=world, rank=rank, shuffle=True, seed=t["seed"]
            )

    # ------------------------------------------------------------------ state

    @property
    def eval_model(self) -> nn.Module:
        """The model that is validated, selected and saved as ``best.pt``."""
        return self.model if self.average is None else self.average.model

    @property
    def eval_step(self) -> TrainStep:
        return self._inner_step if self.average is None else self.average.step

    @property
    def _inner_step(self) -> TrainStep:
        return getattr(self.step, "module", self.step)

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from a ``last.pt`` checkpoint (weights, optimiser, history, selection)."""
        from hepx.errors import CheckpointError

        extra = checkpoint.get("extra")
        if (
            not isinstance(extra, dict)
            or not {"history", "best"} <= set(extra)
            or not checkpoint.get("optimizer_state")
        ):
            raise CheckpointError(
                f"{self.layout.checkpoint('last')}: cannot resume from it: it lacks the optimiser "
                "state or the training history (a damaged or best-only checkpoint)"
            )
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.start_epoch = checkpoint["epoch"] + 1
        extra = checkpoint["extra"]
        self.history = extra["history"]
        self.selection = ModelSelection(extra["best"], self.train_cfg["selection_metric"])
        if self.average is not None:
            self.average.restore(checkpoint, self.layout.checkpoint("last"))
        if self.live is not None:
            if "best_live" not in extra:
                raise CheckpointError(
                    f"{self.layout.checkpoint('last')}: holds no live-weight selection "
                    "(train.ema_track_live was off when it was written)"
                )
            self.live = LiveTracking(extra["best_live"], self.train_cfg["selection_metric"])

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Train the remaining epochs, then return (and write) the test metrics."""
        for epoch in range(self.start_epoch, self.train_cfg["epochs"]):
            self.run_epoch(epoch)
            barrier(self.world)
        return self.test()

    def phase(self, epoch: int) -> str:
        """``warmup`` (an LRI model's classifier alone), ``lri`` or ``plain``."""
        if not self.is_lri:
            return "plain"
        return "warmup" if epoch < self.train_cfg["warmup"] else "lri"

    def run_epoch(self, epoch: int) -> None:
        """Train one epoch, validate, select, and record it."""
        t = self.train_cfg
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(t["seed"], epoch, self.rank))
        loader = self.train_loader(epoch)
        factor = self.set_learning_rate(epoch)
        phase = self.phase(epoch)
        lri = phase == "lri"
        r = self.model.set_epoch(epoch - t["warmup"]) if lri and self._has_r else None
        if self.average is not None:
            self.average.on_epoch_start(self.model, epoch, r)
        sums = self.train_epoch(loader, epoch, phase)
        val, live_val = self.validate(epoch, lri)
        row = {
            "epoch": epoch,
            "phase": phase,
            "r": r,
            "lr_factor": factor,
            "train_loss": sums[0],
            "train_pred_loss": sums[1],
            "train_info_loss": sums[2],
            **{f"val_{k}": v for k, v in val.items()},
            **{f"val_live_{k}": v for k, v in live_val.items()},
            "seconds": time.perf_counter() - t0,
        }
        self.history.append(row)
        self.select_and_save(epoch, phase, val, live_val)

    def eval_loader(self, split: str) -> DataLoader:
        """Unshuffled batches of ``split``: ``train.eval_batch_size`` samples, or at most
        ``train.eval_max_points_per_batch`` points (and that many samples) when set."""
        t = self.train_cfg
        return make_loader(
            self.splits[split],
            batch_size=t["eval_batch_size"],
            max_points=t.get("eval_max_points_per_batch"),
        )

    def train_loader(self, epoch: int) -> DataLoader:
        """This epoch's shuffled training batches (its own seeded generator): ``batch_size``
        samples, or with ``train.max_points_per_batch`` at most that many points (and
        ``batch_size`` samples), this process's share under DDP."""
        t = self.train_cfg
        gen = torch.Generator().manual_seed(epoch_seed(t["seed"], epoch, 7))
        if t.get("max_points_per_batch") is not None:
            return make_loader(
                self.splits["train"],
                batch_size=t["batch_size"],
                max_points=t["max_points_per_batch"],
                shuffle=True,
                seed=t["seed"],
                epoch=epoch,
                num_replicas=self.world,
                rank=self.rank,
                generator=gen,  # (the loader's worker seeds; the order is the sampler's)
            )
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return DataLoader(
                self.splits["train"], batch_size=t["batch_size"], sampler=self.sampler
            )
        return DataLoader(
            self.splits["train"], batch_size=t["batch_size"], shuffle=True, generator=gen
        )

    def set_learning_rate(self, epoch: int) -> float:
        """Both groups' rates for ``epoch`` (from the epoch, not a torch LR scheduler: nothing
        to save or restore on resume). Returns the factor."""
        t = self.train_cfg
        factor = lr_factor(
            epoch,
            epochs=t["epochs"],
            schedule=t["lr_schedule"],
            decay_start=t["lr_decay_start"],
            final_factor=t["lr_final_factor"],
        )
        for group in self.optimizer.param_groups:
            base = t["extractor_lr"] if group["name"] == "extractor" else t["lr"]
            group["lr"] = base * factor
        return factor

    def train_epoch(self, loader: DataLoader, epoch: int, phase: str) -> np.ndarray:
        """One pass over ``loader``; returns the mean total, prediction and info losses."""
        from hepx.progress import progress_bar

        t = self.train_cfg
        warm = phase == "warmup"
        self.step.train()
        sums, n_seen = np.zeros(3), 0
        desc = f"epoch {epoch + 1}/{t['epochs']}" + (" (warm-up)" if warm else "")
        show = self.progress if self.rank == 0 else False
        bar = progress_bar(loader, progress=show, desc=desc, unit="batch")
        for i, batch in enumerate(bar):
            if t["max_batches_per_epoch"] is not None and i >= t["max_batches_per_epoch"]:
                break
            batch = batch.to(self.device)
            loss, _, pred, info = self.step(batch, lri=phase == "lri")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if warm:  # the extractor waits for the end of the warm-up
                for p in self._extractor:
                    p.grad = None
            self.optimizer.step()
            if self.average is not None:
                self.average.on_train_batch_end(self.model)
            b = batch.num_graphs
            sums += np.array([loss.item(), pred.item(), info.item()]) * b
            n_seen += b
            bar.set_postfix(loss=f"{sums[0] / n_seen:.4f}")
        bar.close()
        return sums / max(n_seen, 1)

    def validate(self, epoch: int, lri: bool) -> tuple[dict[str, float], dict[str, float]]:
        """Metrics of the validation split (and of the live weights when tracked)."""
        ks = self.config["eval"]["precision_k"]
        show = {"progress": self.progress if self.rank == 0 else False, "desc": "validate"}
        self.recalibrate(self.eval_step, epoch, lri)
        pred = predict(self.eval_model, self.val_loader, device=self.device, lri=lri, **show)
        val = metrics_of(pred, ks)
        live: dict[str, float] = {}
        if self.live is not None:  # what the run would have validated without the average
            self.recalibrate(self._inner_step, epoch, lri)
            pred = predict(self.model, self.val_loader, device=self.device, lri=lri, **show)
            live = metrics_of(pred, ks)
        return val, live

    def select_and_save(
        self, epoch: int, phase: str, val: Mapping[str, float], live_val: Mapping[str, float]
    ) -> None:
        """Offer the epoch to the selection(s); write the history and the checkpoints."""
        t = self.train_cfg
        eligible = phase != "warmup" or t["warmup"] >= t["epochs"]
        improved = eligible and self.selection.offer(val, epoch, phase)
        live_improved = (
            eligible and self.live is not None and self.live.selection.offer(live_val, epoch, phase)
        )
        if self.rank != 0:
            return
        self._log_epoch(epoch, val)
        write_history(self.layout, self.history)
        if improved:
            self.save("best", self.eval_model, epoch, {"val": dict(val)})
        if live_improved:
            self.save(LiveTracking.checkpoint, self.model, epoch, {"val": dict(live_val)})
        extra: dict[str, Any] = {"history": self.history, "best": self.selection.state_dict()}
        ema_state = None
        if self.average is not None:
            ema_state, more = self.average.state()
            extra.update(more)
        if self.live is not None:
            extra.update(self.live.state())
        self.save("last", self.model, epoch, extra, optimizer=True, ema_state=ema_state)

    def save(self, name: str, model: nn.Module, epoch: int, extra, **kw: Any) -> None:
        save_checkpoint(
            self.layout.checkpoint(name),
            model,
            config=self.config,
            epoch=epoch,
            dataset=self.dataset,
            optimizer=self.optimizer if kw.get("optimizer") else None,
            extra=extra,
            ema_state=kw.get("ema_state"),
        )

    def _log_epoch(self, epoch: int, val: Mapping[str, float]) -> None:
        row = self.history[-1]
        interp = f", val interp AUC {val['interp_auc']:.4f}" if "interp_auc" in val else ""
        log.info(
            "epoch %d/%d %s: train loss %.4f, val loss %.4f, val AUC %.4f%s (%.1f s)",
            epoch + 1,
            self.train_cfg["epochs"],
            row["phase"],
            row["train_loss"],
            val["loss"],
            val["pred_auc"],
            interp,
            row["seconds"],
        )

    # ------------------------------------------------------------------ test

    def test(self) -> dict[str, Any]:
        """Test metrics of the selected epoch (and of the live weights' selection, when
        tracked), written to ``test_metrics.json``."""
        loader = self.eval_loader("test")
        ks = self.config["eval"]["precision_k"]
        result: dict[str, Any] = {"n_test": len(self.splits["test"])}
        selections = [("best", "")]
        if self.live is not None:
            selections.append((LiveTracking.checkpoint, LiveTracking.prefix))
        for name, tag in selections:
            state = load_checkpoint(self.layout.checkpoint(name))
            self.model.load_state_dict(state["model_state"])
            test = metrics_of(predict(self.model, loader, device=self.device), ks)
            result[f"{tag}selected_epoch"] = state["epoch"]
            result.update({f"test_{tag}{k}": v for k, v in test.items()})
        if self.rank == 0:
            with atomic_file(self.layout.test_metrics) as tmp:
                tmp.write_text(json.dumps(finite(result), indent=2) + "\n")
        return result
