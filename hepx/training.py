"""Training of plain and LRI models: ``hepx train CONFIG.yaml --out RUN_DIR``.

A run directory holds

- ``config.yaml``: the resolved configuration (every default filled in);
- ``checkpoints/last.pt`` and ``checkpoints/best.pt``: ``state_dict`` + config + epoch, loadable
  with ``torch.load(path, weights_only=True)``;
- ``metrics.csv`` / ``metrics.json``: one row per epoch (losses, validation metrics, ``r``,
  ``lr_factor``);
- ``test_metrics.json``: test metrics of the selected epoch (best validation AUC, ties broken by
  the lower validation loss): prediction ROC AUC and accuracy, interpretation ROC AUC,
  precision@k.

With ``train.ema_decay`` set, validation, selection, ``best.pt`` and the test metrics use an
exponential moving average of the weights (:class:`hepx.ema.ExponentialMovingAverage`); the live
weights, which ``last.pt`` holds together with the average, train as without it. With
``train.ema_track_live: true`` as well, the live weights are validated too (``val_live_*``
columns) and ``test_metrics.json`` adds the test metrics of the epoch they would have
selected (``live_selected_epoch``, ``test_live_*``, from ``checkpoints/best_live.pt``): the run
without the average, on the same training trajectory.

``train.lr_schedule`` is ``constant`` (the reference) or ``cosine``: from epoch
``train.lr_decay_start`` on, both parameter groups' learning rates follow half a cosine down to
``train.lr_final_factor`` times their value at the last epoch (:func:`lr_factor`).

Randomness is re-seeded at every epoch from ``(seed, epoch)``, so a resumed run is identical
to an uninterrupted one, and a CPU run is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch_geometric.loader import DataLoader

from hepx._atomic import atomic_file
from hepx.config import check_keys, deep_merge
from hepx.ema import ExponentialMovingAverage
from hepx.errors import CheckpointError, ConfigError, InputError

log = logging.getLogger("hepx")

CHECKPOINT_FORMAT = "hepx-checkpoint"
# 2: model.message_dropout recorded (version 1 models had message dropout = model.dropout)
CHECKPOINT_VERSION = 2

DEFAULT_RUN: dict[str, Any] = {
    "dataset": {
        "path": None,
        "kind": None,
        "split": [0.7, 0.15, 0.15],
        "split_seed": 0,
    },
    "model": {},
    "train": {
        "epochs": 100,
        "warmup": 0,
        "batch_size": 128,
        "eval_batch_size": 256,
        "lr": 1.0e-3,
        "weight_decay": 1.0e-5,
        "extractor_lr": 1.0e-3,
        "extractor_weight_decay": 1.0e-5,
        "pred_loss_coef": 1.0,
        "info_loss_coef": 1.0,
        "seed": 0,
        "max_batches_per_epoch": None,
        "bn_recalibration_batches": 4,
        "ema_decay": None,
        "ema_track_live": False,
        "lr_schedule": "constant",
        "lr_decay_start": 0,
        "lr_final_factor": 0.01,
    },
    "eval": {"precision_k": [12, 24, 30]},
}

_TRAIN_TYPES: dict[str, tuple[type, ...]] = {
    "epochs": (int,),
    "warmup": (int,),
    "batch_size": (int,),
    "eval_batch_size": (int,),
    "lr": (int, float),
    "weight_decay": (int, float),
    "extractor_lr": (int, float),
    "extractor_weight_decay": (int, float),
    "pred_loss_coef": (int, float),
    "info_loss_coef": (int, float),
    "seed": (int,),
    "max_batches_per_epoch": (int, type(None)),
    "bn_recalibration_batches": (int,),
    "ema_decay": (int, float, type(None)),
    "ema_track_live": (bool,),
    "lr_schedule": (str,),
    "lr_decay_start": (int,),
    "lr_final_factor": (int, float),
}

LR_SCHEDULES = ("constant", "cosine")


def resolve_run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a run config (unknown keys, types) and fill in defaults."""
    if not isinstance(config, Mapping):
        raise ConfigError("run config must be a mapping with sections dataset, model, train, eval")
    check_keys(config, list(DEFAULT_RUN), where="run config")
    for section in DEFAULT_RUN:
        if section in config and not isinstance(config[section], Mapping):
            raise ConfigError(f"run config section '{section}' must be a mapping")
    check_keys(
        config.get("dataset", {}), list(DEFAULT_RUN["dataset"]), where="run config 'dataset'"
    )
    check_keys(config.get("train", {}), list(DEFAULT_RUN["train"]), where="run config 'train'")
    check_keys(config.get("eval", {}), list(DEFAULT_RUN["eval"]), where="run config 'eval'")
    out = deep_merge(DEFAULT_RUN, config)
    for key, types in _TRAIN_TYPES.items():
        value = out["train"][key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"run config 'train.{key}' must be {names}, got {value!r}")
    t = out["train"]
    if t["epochs"] < 1 or t["batch_size"] < 1 or t["warmup"] < 0:
        raise ConfigError("train.epochs and train.batch_size must be >= 1 and train.warmup >= 0")
    if t["bn_recalibration_batches"] < 0:
        raise ConfigError(
            "run config 'train.bn_recalibration_batches' must be >= 0 (0 switches the "
            f"recalibration off), got {t['bn_recalibration_batches']}"
        )
    if t["ema_decay"] is not None and not 0 < t["ema_decay"] < 1:
        raise ConfigError(
            "run config 'train.ema_decay' must be null (no weight average) or a number in "
            f"(0, 1), e.g. 0.995, got {t['ema_decay']}"
        )
    if t["ema_track_live"] and t["ema_decay"] is None:
        raise ConfigError(
            "run config 'train.ema_track_live' compares the live weights with their average: "
            "set train.ema_decay as well (e.g. 0.995) or remove ema_track_live"
        )
    if t["lr_schedule"] not in LR_SCHEDULES:
        raise ConfigError(
            f"run config 'train.lr_schedule' must be one of {', '.join(LR_SCHEDULES)}, "
            f"got {t['lr_schedule']!r}"
        )
    if t["lr_decay_start"] < 0:
        raise ConfigError(
            "run config 'train.lr_decay_start' must be an epoch >= 0 (the first with a "
            f"decayed learning rate), got {t['lr_decay_start']}"
        )
    if not 0 < t["lr_final_factor"] <= 1:
        raise ConfigError(
            "run config 'train.lr_final_factor' must be in (0, 1] (the last epoch's learning "
            f"rate over the initial one), got {t['lr_final_factor']}"
        )
    ks = out["eval"]["precision_k"]
    if not isinstance(ks, list) or not all(isinstance(k, int) and k > 0 for k in ks):
        raise ConfigError(
            f"run config 'eval.precision_k' must be a list of positive integers, got {ks!r}"
        )
    split = out["dataset"]["split"]
    if not isinstance(split, list) or len(split) != 3:
        raise ConfigError(
            f"run config 'dataset.split' must be [train, val, test] fractions, got {split!r}"
        )
    if out["dataset"]["path"] is None:
        raise ConfigError(
            "run config 'dataset.path' is required (a directory written by `hepx convert`)"
        )
    from hepx.models import resolve_config

    out["model"] = resolve_config(out["model"])
    return out


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
    """
    if schedule == "constant" or epoch < decay_start:
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}; expected one of {LR_SCHEDULES}")
    progress = min(1.0, (epoch - decay_start + 1) / (epochs - decay_start))
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- the training step


class TrainStep(nn.Module):
    """Loss of one batch, as a module so DistributedDataParallel sees every forward.

    ``forward(batch, lri=True)`` -> ``(loss, logits [B, 1], pred_loss, info_loss)``; with
    ``lri=False`` (warm-up, or a plain model) the wrapped classifier is trained alone.
    """

    def __init__(self, model: nn.Module, *, pred_coef: float, info_coef: float) -> None:
        super().__init__()
        self.model = model
        self.pred_coef = pred_coef
        self.info_coef = info_coef

    @property
    def is_lri(self) -> bool:
        return hasattr(self.model, "extractor")

    def forward(self, batch, lri: bool = True):
        y = batch.y.view(-1, 1).float()
        if self.is_lri and lri:
            out = self.model(batch)
            pred = F.binary_cross_entropy_with_logits(out.logits, y)
            info = out.info_loss
            return self.pred_coef * pred + self.info_coef * info, out.logits, pred, info
        classifier = self.model.classifier if self.is_lri else self.model
        logits = classifier(batch)
        pred = F.binary_cross_entropy_with_logits(logits, y)
        return self.pred_coef * pred, logits, pred, torch.zeros((), device=logits.device)


@torch.no_grad()
def recalibrate_batch_norm(
    module: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any] | None = None
) -> int:
    """Re-estimate the running statistics of every BatchNorm layer of ``module`` with its
    current weights: the equally weighted average of the batch statistics over ``batches``
    ("precise BN"), computed in training mode (dropout, LRI sampling) as in a training step.

    Why: the default running statistics are an exponential average (momentum 0.1) over the
    last ~10 training steps, taken while the weights moved. On an ActsTrack-sim plain EGNN the
    evaluation-mode logits of signal events sat about 3 units below their training-mode values
    (test accuracy 0.78 at ROC AUC 0.98; 0.94 after recalibration, AUC unchanged). The weights
    are not touched (the running statistics play no part in training-mode forwards).

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
        with torch.no_grad():
            for batch in batches:
                (forward or module)(batch)
                n += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        module.train(was_training)
    return n


@torch.no_grad()
def predict(
    model: nn.Module, loader, device: torch.device | str = "cpu", *, lri: bool = True
) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over ``loader``.

    Returns flat numpy arrays: per sample ``logits``, ``y``, ``event_id``; per point
    ``scores`` (LRI importance, empty for plain models), ``node_label``, ``batch`` (sample index),
    ``hit_index``; ``loss`` (mean BCE) and ``info_loss``.
    """
    model.eval()
    is_lri = hasattr(model, "extractor") and lri
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("logits", "y", "event_id", "scores", "node_label", "batch", "hit_index")
    }
    losses, infos, n_seen = [], [], 0
    for data in loader:
        data = data.to(device)
        if is_lri:
            res = model(data)
            logits, scores, info = res.logits, res.node_scores, res.info_loss
            out["scores"].append(scores.float().cpu().numpy())
            infos.append(float(info) * data.num_graphs)
        else:
            classifier = model.classifier if hasattr(model, "extractor") else model
            logits = classifier(data)
        y = data.y.view(-1, 1).float()
        losses.append(float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum")))
        out["logits"].append(logits.view(-1).cpu().numpy())
        out["y"].append(y.view(-1).cpu().numpy())
        out["event_id"].append(data.event_id.cpu().numpy())
        out["node_label"].append(data.node_label.cpu().numpy())
        out["hit_index"].append(data.hit_index.cpu().numpy())
        out["batch"].append(data.batch.cpu().numpy() + n_seen)
        n_seen += data.num_graphs
    res = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    res["loss"] = np.float64(sum(losses) / max(n_seen, 1))
    res["info_loss"] = np.float64(sum(infos) / max(n_seen, 1)) if infos else np.float64(0.0)
    return res


def metrics_of(pred: Mapping[str, np.ndarray], ks: Sequence[int]) -> dict[str, float]:
    """Prediction and (when scores exist) interpretation metrics of :func:`predict`'s output."""
    from hepx.explain.metrics import interpretation_roc_auc, precision_at_k, prediction_metrics

    m = prediction_metrics(pred["logits"], pred["y"])
    out = {"pred_auc": m["auc"], "pred_acc": m["acc"], "loss": float(pred["loss"])}
    if len(pred["scores"]):
        out["interp_auc"] = interpretation_roc_auc(
            pred["scores"], pred["node_label"], pred["batch"], pred["y"]
        )
        for k, v in precision_at_k(
            pred["scores"], pred["node_label"], pred["batch"], pred["y"], ks
        ).items():
            out[f"prec@{k}"] = v
        out["info_loss"] = float(pred["info_loss"])
    return out


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: Mapping,
    epoch: int,
    extra: Mapping | None = None,
    ema_state: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write a checkpoint atomically (plain tensors and JSON-like values only); ``ema_state``
    is the weight average of a run with ``train.ema_decay`` (``last.pt``)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "config": json.loads(json.dumps(config)),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "extra": json.loads(json.dumps(extra or {})),
    }
    if ema_state is not None:
        state["ema_state"] = dict(ema_state)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a hepx checkpoint safely (``weights_only=True``) and check that it is one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path}: not a readable hepx checkpoint, corrupted or foreign ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:120]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a hepx checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']} is newer than this hepx supports"
        )
    return state


def model_from_checkpoint(state: Mapping[str, Any]) -> nn.Module:
    """Rebuild the model recorded in a checkpoint and load its weights."""
    from hepx.models import build_model

    mcfg = _model_config_of(state)
    model = build_model(
        mcfg, pos_dim=mcfg["pos_dim"], x_dim=mcfg["x_dim"], period=mcfg.get("period")
    )
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint weights do not fit the recorded model ({' '.join(str(err).split())[:160]})"
        ) from None
    return model


def _model_config_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's model config in the current schema: version-1 checkpoints predate
    ``message_dropout`` and were trained with message dropout equal to ``dropout``."""
    mcfg = dict(state["config"]["model"])
    if int(state.get("version", 0)) < 2 and "message_dropout" not in mcfg:
        mcfg["message_dropout"] = mcfg.get("dropout", 0.2)
    return mcfg


_METRES_PER_UNIT = {"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0}


def check_frame_units(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Refuse a beam-frame model whose backbone frame is not in metres.

    The beam frame's curvature feature is compressed at 0.01 m^-1 (pT ~ 60 GeV at 2 T); with
    positions left in mm it would be flat and the model could not see track curvature. Only
    checked when the dataset declares a length unit (``meta["pos_unit"]``).
    """
    if model_cfg.get("frame", "global") != "beam":
        return
    unit = meta.get("pos_unit")
    if unit not in _METRES_PER_UNIT:
        return
    pos_scale = float(model_cfg.get("pos_scale", 1.0))
    if not math.isclose(pos_scale, _METRES_PER_UNIT[unit], rel_tol=1e-6):  # pos * scale in m
        raise ConfigError(
            f"model.frame 'beam' needs the backbone frame in metres; the dataset's positions are "
            f"in {unit}, so set model.pos_scale: {_METRES_PER_UNIT[unit]:g} (got {pos_scale:g})"
        )


# --------------------------------------------------------------------------- the loop


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))


def train(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    device: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train the model of ``config`` and write the run directory ``out_dir``.

    Parameters
    ----------
    config
        Run config (sections ``dataset``, ``model``, ``train``, ``eval``); see ``configs/``.
    device
        ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
    resume
        Continue from ``out_dir/checkpoints/last.pt``; the config must be the same except for
        ``train.epochs``.
    progress
        Show a progress bar per epoch (default: when stderr is a terminal).

    Returns
    -------
    dict
        The test metrics of the selected epoch.
    """
    from tqdm.auto import tqdm

    from hepx.data import load_dataset
    from hepx.models import build_model

    cfg = resolve_run_config(config)
    rank, world = _dist_info()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' requested but CUDA is not available here (use --device cpu)"
        )
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    if not resume and last_path.exists():
        raise InputError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )

    ds = load_dataset(cfg["dataset"]["path"])
    kind = cfg["dataset"]["kind"]
    if kind is not None and kind != ds.meta.get("kind"):
        raise InputError(
            f"config expects a '{kind}' dataset but {cfg['dataset']['path']} holds '{ds.meta.get('kind')}'"
        )
    check_frame_units(cfg["model"], ds.meta)
    splits = ds.split(cfg["dataset"]["split"], seed=cfg["dataset"]["split_seed"])
    torch.manual_seed(cfg["train"]["seed"])  # weight initialisation
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta.get("period")
    )
    cfg["model"] = model.config
    tcfg = cfg["train"]
    groups = (
        model.parameter_groups()
        if hasattr(model, "parameter_groups")
        else {"classifier": list(model.parameters())}
    )
    param_groups = [
        {
            "params": groups["classifier"],
            "lr": tcfg["lr"],
            "weight_decay": tcfg["weight_decay"],
            "name": "classifier",
        }
    ]
    if "extractor" in groups:
        param_groups.append(
            {
                "params": groups["extractor"],
                "lr": tcfg["extractor_lr"],
                "weight_decay": tcfg["extractor_weight_decay"],
                "name": "extractor",
            }
        )
    model.to(dev)
    optimizer = torch.optim.Adam(param_groups)
    step = TrainStep(model, pred_coef=tcfg["pred_loss_coef"], info_coef=tcfg["info_loss_coef"])
    is_lri = step.is_lri
    ddp_step: nn.Module = step
    if world > 1:
        ddp_step = nn.parallel.DistributedDataParallel(step, find_unused_parameters=is_lri)

    # the model that is validated, selected and saved as best.pt: the live one or its average
    ema = ExponentialMovingAverage(model, tcfg["ema_decay"]) if tcfg["ema_decay"] else None
    eval_model = model if ema is None else ema.module
    # (only for the BatchNorm recalibration forwards: the loss coefficients play no part)
    eval_step = step if ema is None else TrainStep(ema.module, pred_coef=1.0, info_coef=1.0)

    track_live = ema is not None and tcfg["ema_track_live"]
    best_live_path = ckpt_dir / "best_live.pt"

    history: list[dict[str, Any]] = []
    start_epoch = 0
    best: dict[str, Any] = {"epoch": -1, "auc": -math.inf, "loss": math.inf}
    best_live = dict(best)
    if resume:
        state = load_checkpoint(last_path)
        old = copy.deepcopy({**state["config"], "model": _model_config_of(state)})
        # train keys added since the run began take their defaults, which it trained with
        old["train"] = {**DEFAULT_RUN["train"], **old["train"]}
        new = copy.deepcopy(cfg)
        old["train"].pop("epochs", None)
        new["train"].pop("epochs", None)
        changed = config_diff(old, json.loads(json.dumps(new)))
        if changed:
            raise CheckpointError(
                f"{last_path}: the config differs from the run being resumed in "
                f"{', '.join(changed)} (only train.epochs may change)"
            )
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        start_epoch = state["epoch"] + 1
        history = state["extra"]["history"]
        best = state["extra"]["best"]
        if ema is not None:
            if "ema_state" not in state:
                raise CheckpointError(f"{last_path}: holds no weight average (train.ema_decay)")
            ema.load_state_dict(state["ema_state"], state["extra"]["ema_updates"])
        if track_live:
            best_live = state["extra"]["best_live"]
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False))

    ks = cfg["eval"]["precision_k"]
    eval_bs = tcfg["eval_batch_size"]
    val_loader = DataLoader(splits["val"], batch_size=eval_bs)
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(
            splits["train"], num_replicas=world, rank=rank, shuffle=True, seed=tcfg["seed"]
        )
    # tqdm: disable=None hides the bar when stderr is not a terminal.
    hide = True if rank != 0 or progress is False else (None if progress is None else False)
    for epoch in range(start_epoch, tcfg["epochs"]):
        t0 = time.perf_counter()
        _seed_epoch(tcfg["seed"], epoch, rank)
        gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([tcfg["seed"], epoch, 7]).generate_state(1)[0])
        )
        if sampler is not None:
            sampler.set_epoch(epoch)
            loader = DataLoader(splits["train"], batch_size=tcfg["batch_size"], sampler=sampler)
        else:
            loader = DataLoader(
                splits["train"], batch_size=tcfg["batch_size"], shuffle=True, generator=gen
            )
        factor = lr_factor(
            epoch,
            epochs=tcfg["epochs"],
            schedule=tcfg["lr_schedule"],
            decay_start=tcfg["lr_decay_start"],
            final_factor=tcfg["lr_final_factor"],
        )
        # set from the epoch, not a torch LR scheduler: nothing to save or restore on resume
        for group in optimizer.param_groups:
            base = tcfg["extractor_lr"] if group["name"] == "extractor" else tcfg["lr"]
            group["lr"] = base * factor
        warm = epoch < tcfg["warmup"]
        lri_phase = is_lri and not warm
        r = (
            model.set_epoch(epoch - tcfg["warmup"])
            if lri_phase and hasattr(model, "set_epoch")
            else None
        )
        if ema is not None:
            if r is not None:
                ema.module.set_epoch(epoch - tcfg["warmup"])
            if is_lri and 0 < tcfg["warmup"] == epoch:
                ema.reset(model)  # average LRI weights only, not those of the warm-up
        ddp_step.train()
        sums = np.zeros(3)
        n_seen = 0
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{tcfg['epochs']}" + (" (warm-up)" if warm and is_lri else ""),
            disable=hide,
            leave=False,
        )
        for i, batch in enumerate(bar):
            if tcfg["max_batches_per_epoch"] is not None and i >= tcfg["max_batches_per_epoch"]:
                break
            batch = batch.to(dev)
            loss, _, pred, info = ddp_step(batch, lri=lri_phase)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if warm and is_lri:
                for p in groups["extractor"]:
                    p.grad = None
            optimizer.step()
            if ema is not None:
                ema.update(model)
            b = batch.num_graphs
            sums += np.array([loss.item(), pred.item(), info.item()]) * b
            n_seen += b
            bar.set_postfix(loss=f"{sums[0] / n_seen:.4f}")
        bar.close()
        _recalibrate(eval_step, splits["train"], tcfg, epoch, lri_phase, dev)
        val = metrics_of(predict(eval_model, val_loader, dev, lri=lri_phase), ks)
        live_val: dict[str, float] = {}
        if track_live:  # what the run would have validated without the average
            _recalibrate(step, splits["train"], tcfg, epoch, lri_phase, dev)
            live_val = metrics_of(predict(model, val_loader, dev, lri=lri_phase), ks)
        row = {
            "epoch": epoch,
            "phase": "warmup" if (warm and is_lri) else ("lri" if is_lri else "plain"),
            "r": r,
            "lr_factor": factor,
            "train_loss": sums[0] / max(n_seen, 1),
            "train_pred_loss": sums[1] / max(n_seen, 1),
            "train_info_loss": sums[2] / max(n_seen, 1),
            **{f"val_{k}": v for k, v in val.items()},
            **{f"val_live_{k}": v for k, v in live_val.items()},
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        eligible = lri_phase or not is_lri or tcfg["warmup"] >= tcfg["epochs"]
        improved = eligible and _selects(val, best)
        if improved:
            best = _selection(val, epoch, row["phase"])
        live_improved = eligible and track_live and _selects(live_val, best_live)
        if live_improved:
            best_live = _selection(live_val, epoch, row["phase"])
        if rank == 0:
            log.info(
                "epoch %d/%d %s: train loss %.4f, val loss %.4f, val AUC %.4f%s (%.1f s)",
                epoch + 1,
                tcfg["epochs"],
                row["phase"],
                row["train_loss"],
                val["loss"],
                val["pred_auc"],
                f", val interp AUC {val['interp_auc']:.4f}" if "interp_auc" in val else "",
                row["seconds"],
            )
            _write_history(out, history)
            if improved:
                save_checkpoint(best_path, eval_model, None, cfg, epoch, {"val": val})
            if live_improved:
                save_checkpoint(best_live_path, model, None, cfg, epoch, {"val": live_val})
            extra = {"history": history, "best": best}
            if ema is not None:
                extra["ema_updates"] = ema.num_updates
            if track_live:
                extra["best_live"] = best_live
            save_checkpoint(
                last_path,
                model,
                optimizer,
                cfg,
                epoch,
                extra,
                ema_state=None if ema is None else ema.state_dict(),
            )
        if world > 1:
            torch.distributed.barrier()

    # Test metrics of the selected epoch (and of the live weights' selection, when tracked).
    test_loader = DataLoader(splits["test"], batch_size=eval_bs)
    result: dict[str, Any] = {"n_test": len(splits["test"])}
    for path, tag in (
        ((best_path, ""), (best_live_path, "live_")) if track_live else ((best_path, ""),)
    ):
        state = load_checkpoint(path)
        model.load_state_dict(state["model_state"])
        test = metrics_of(predict(model, test_loader, dev), ks)
        result[f"{tag}selected_epoch"] = state["epoch"]
        result.update({f"test_{tag}{k}": v for k, v in test.items()})
    if rank == 0:
        with atomic_file(out / "test_metrics.json") as tmp:
            tmp.write_text(json.dumps(_finite(result), indent=2) + "\n")
    return result


def _selection(val: Mapping[str, float], epoch: int, phase: str) -> dict[str, Any]:
    """An epoch's entry for :func:`_selects` (a NaN AUC never wins)."""
    auc = val["pred_auc"] if not math.isnan(val["pred_auc"]) else -math.inf
    return {"epoch": epoch, "auc": auc, "loss": val["loss"], "phase": phase}


def _selects(val: Mapping[str, float], best: Mapping[str, Any]) -> bool:
    """The reference's rule: a higher validation prediction AUC, ties broken by the lower
    validation loss."""
    new = _selection(val, -1, "")
    return new["auc"] > best["auc"] or (new["auc"] == best["auc"] and new["loss"] < best["loss"])


def _recalibrate(
    step: TrainStep, train_set, tcfg: Mapping[str, Any], epoch: int, lri: bool, dev: torch.device
) -> None:
    """:func:`recalibrate_batch_norm` on ``train.bn_recalibration_batches`` batches of the
    whole training split (the same on every rank), under its own seed so that the training
    random stream, and so the weights, are those of a run without recalibration."""
    n = tcfg["bn_recalibration_batches"]
    if n == 0:
        return
    seed = int(np.random.SeedSequence([tcfg["seed"], epoch, 11]).generate_state(1)[0])
    devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=dev.type):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        loader = DataLoader(train_set, batch_size=tcfg["batch_size"], shuffle=True, generator=gen)
        batches = (b.to(dev) for _, b in zip(range(n), loader, strict=False))
        recalibrate_batch_norm(step, batches, lambda b: step(b, lri=lri))


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like configs (``key (run X, now Y)``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}{key}"
            if key not in old or key not in new:
                run = old[key] if key in old else "absent"
                now = new[key] if key in new else "absent"
                out.append(f"{name} (run {run}, now {now})")
            else:
                out.extend(config_diff(old[key], new[key], name + "."))
        return out
    return [] if old == new else [f"{prefix.rstrip('.')} (run {old}, now {new})"]


def _finite(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_file(out / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    with atomic_file(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps([_finite(r) for r in history], indent=1) + "\n")
