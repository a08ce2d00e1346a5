"""A trained run: its directory layout, checkpoints, config, dataset and kind, in one place.

``hepx train CONFIG --out RUN_DIR`` writes::

    RUN_DIR/config.yaml              the resolved config (every default filled in)
    RUN_DIR/checkpoints/last.pt      weights + optimiser + history: what --resume continues
    RUN_DIR/checkpoints/best.pt      the selected epoch's weights
    RUN_DIR/checkpoints/best_live.pt the live weights' selection (train.ema_track_live only)
    RUN_DIR/metrics.csv, .json       one row per epoch
    RUN_DIR/test_metrics.json        test metrics of the selected epoch
    RUN_DIR/environment.json         threads, device and versions it was trained with

Checkpoints are plain tensors and JSON-like values, loaded with ``torch.load(...,
weights_only=True)`` (never unpickled), marked with a format name and a version; older
versions are migrated on load (:func:`migrate_checkpoint`). Besides the weights a checkpoint
records the run's config and the dataset it was trained on (kind, reader options, dimensions),
so a run can score new files without its training data.

:class:`TrainedRun` opens a run directory for everything downstream: the evaluation table,
``hepx score``, ``hepx.load``, the demo and the benchmarks.

Example
-------
>>> run = TrainedRun.open("runs/tau3mu_bern")                 # doctest: +SKIP
>>> run.kind.name, run.epoch                                    # doctest: +SKIP
('tau3mu', 42)
>>> model = run.model()                                         # doctest: +SKIP
>>> test = run.splits()["test"]                                 # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepx.atomic import atomic_file
from hepx.errors import CheckpointError, InputError
from hepx.torchfile import RefusedObject, UnreadableFile, load_weights_only

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hepx.data.dataset import PointCloudDataset
    from hepx.kinds import DatasetKind

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "RunLayout",
    "TrainedRun",
    "check_compatible",
    "dataset_record",
    "load_checkpoint",
    "migrate_checkpoint",
    "model_from_checkpoint",
    "resolve_dataset_path",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "hepx-checkpoint"
# 1: the first format.
# 2: model.message_dropout recorded (version-1 models had message dropout = model.dropout).
# 3: the dataset record (kind, reader options, dimensions) stored with the weights.
CHECKPOINT_VERSION = 4


@dataclass(frozen=True)
class RunLayout:
    """The paths of a run directory (nothing is created)."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.directory / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (``best``, ``last`` or ``best_live``)."""
        return self.checkpoints / f"{name}.pt"

    @property
    def metrics_csv(self) -> Path:
        return self.directory / "metrics.csv"

    @property
    def metrics_json(self) -> Path:
        return self.directory / "metrics.json"

    @property
    def test_metrics(self) -> Path:
        return self.directory / "test_metrics.json"

    @property
    def environment(self) -> Path:
        """Where and how the run was trained (threads, device, versions)."""
        return self.directory / "environment.json"


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    config: Mapping[str, Any],
    epoch: int,
    dataset: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    extra: Mapping[str, Any] | None = None,
    ema_state: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write a checkpoint atomically: plain tensors and JSON-like values only.

    Args:
        path: the file (``RunLayout.checkpoint(name)``).
        model: its ``state_dict`` is saved.
        config: the resolved run config.
        epoch: the epoch (0-based) the weights are from.
        dataset: :func:`dataset_record` of the training data.
        optimizer: its state (``last.pt``, for resuming).
        extra: JSON-like bookkeeping (history, selection state).
        ema_state: the weight average of a run with ``train.ema_decay`` (``last.pt``).
    """
    import torch

    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "config": json.loads(json.dumps(config)),
        "dataset": json.loads(json.dumps(dataset)),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "extra": json.loads(json.dumps(extra or {})),
    }
    if ema_state is not None:
        state["ema_state"] = dict(ema_state)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a hepx checkpoint safely (``weights_only=True``), check it, migrate it.

    Raises:
        CheckpointError: missing, unreadable, not a hepx checkpoint, or from a newer hepx.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = load_weights_only(path)
    except RefusedObject as err:
        raise CheckpointError(
            f"{path}: refused: it asks to load the Python object {err.name}, and hepx "
            "never unpickles; expected a checkpoint written by hepx train"
        ) from None
    except UnreadableFile as err:
        detail = (
            f"({err.detail})"
            if err.detail
            else "(not a torch file of tensors and plain values); expected a checkpoint "
            "written by hepx train"
        )
        raise CheckpointError(
            f"{path}: not a readable hepx checkpoint, corrupted or foreign {detail}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a hepx checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']} is newer than this hepx supports"
        )
    missing = [k for k in ("epoch", "config", "model_state") if k not in state]
    config = state.get("config")
    if not missing and not (isinstance(config, dict) and isinstance(config.get("model"), dict)):
        missing.append("config.model")
    if missing:
        raise CheckpointError(
            f"{path}: a damaged hepx checkpoint: missing {', '.join(missing)}; train the run "
            "again or use another checkpoint"
        )
    return migrate_checkpoint(state)


def migrate_checkpoint(state: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint of any older version in the current layout (a new dict).

    * version 1 -> 2: ``model.message_dropout`` did not exist; those models were trained with
      message dropout equal to ``model.dropout``.
    * version 2 -> 3: no dataset record; it is rebuilt from the dataset's manifest when that is
      still readable, else from the recorded dimensions.
    * version 3 -> 4: LRI-Bernoulli weighted the pool by the mask (``model.bernoulli.mask_pool``
      true); the default became the reference's unweighted pool (other methods get the
      default, which they do not use).
    * train and model keys added to hepx after a run began take their defaults, which it
      trained with (a new key's default is the behaviour before it existed; where it is not,
      a version step above says what the run had), as building the model from the config
      does anyway.
    """
    from hepx.config.run import MODEL_SCHEMA, TRAIN_SCHEMA
    from hepx.config.schema import defaults

    out = dict(state)
    config = copy.deepcopy(dict(out["config"]))
    version = int(out.get("version", 0))
    model = dict(config.get("model", {}))
    if version < 2 and "message_dropout" not in model:
        model["message_dropout"] = model.get("dropout", 0.2)
    if version < 4 and "bernoulli" in model:  # (other methods ignore the key)
        pooled = model.get("method") == "lri_bernoulli"
        model["bernoulli"] = {"mask_pool": pooled, **dict(model["bernoulli"] or {})}
    config["model"] = _with_defaults(model, defaults(MODEL_SCHEMA))
    config["train"] = {**defaults(TRAIN_SCHEMA), **dict(config.get("train", {}))}
    out["config"] = config
    if version < 3 or "dataset" not in out:
        out["dataset"] = _dataset_record_from_config(config)
    out["version"] = CHECKPOINT_VERSION
    return out


def _with_defaults(given: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` with the keys it lacks taken from ``default``, section by section."""
    out = dict(given)
    for key, value in default.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = _with_defaults(out[key], value)
    return out


def _dataset_record_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset record of a run that predates it: the manifest if readable, else dims."""
    from hepx.data.dataset import read_manifest

    ds_cfg = config.get("dataset", {})
    kind, options, meta = ds_cfg.get("kind"), {}, {}
    if ds_cfg.get("path"):
        try:
            manifest = read_manifest(resolve_dataset_path(ds_cfg["path"]))
            kind = kind or manifest.get("kind")
            options = dict(manifest.get("reader_options") or {})
            meta = manifest
        except InputError:  # the dataset cache may be gone; the model still knows its dims
            pass
    model = config.get("model", {})
    if kind is None:
        kind = {(3, 0): "actstrack", (2, 1): "tau3mu"}.get(
            (model.get("pos_dim"), model.get("x_dim"))
        )
    return {
        "kind": kind,
        "reader_options": options,
        "fingerprint": meta.get("fingerprint"),
        **{k: meta[k] for k in ("coords", "pos_unit", "x_names") if k in meta},
    }


def dataset_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of its training data, from the dataset's manifest: kind,
    reader options, coordinates and the content fingerprint (``None`` for datasets written
    before hepx recorded one)."""
    return {
        "kind": meta.get("kind"),
        "reader_options": dict(meta.get("reader_options") or {}),
        "fingerprint": meta.get("fingerprint"),
        **{k: meta[k] for k in ("coords", "pos_unit", "x_names") if k in meta},
    }


def model_from_checkpoint(state: Mapping[str, Any]) -> nn.Module:
    """Rebuild the model recorded in a (migrated) checkpoint and load its weights."""
    from hepx.models import build_model

    mcfg = state["config"]["model"]
    if "pos_dim" not in mcfg or "x_dim" not in mcfg:
        raise CheckpointError(
            "a damaged hepx checkpoint: its model config records no data dimensions "
            "(pos_dim, x_dim)"
        )
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


# --------------------------------------------------------------------------- the dataset


def resolve_dataset_path(path: str | os.PathLike) -> Path:
    """The one rule for a run's ``dataset.path``: a relative path is relative to the working
    directory. ``hepx train`` records it absolute, so the rule matters only for hand-written
    or older run configs."""
    return Path(os.path.abspath(path))


def _period(value: Any) -> list[float | None] | None:
    if value is None or all(p is None for p in value):
        return None
    return [float(p) if p else None for p in value]


def check_compatible(
    model_config: Mapping[str, Any], meta: Mapping[str, Any], *, what: str
) -> None:
    """Raise :class:`CheckpointError` if a trained model does not fit a dataset.

    Args:
        model_config: the model section recorded in a checkpoint (``pos_dim``, ``x_dim``,
            ``period``).
        meta: the dataset's manifest.
        what: the run and dataset, for the message.
    """
    rec = (model_config.get("pos_dim"), model_config.get("x_dim"))
    data = (int(meta.get("pos_dim", -1)), int(meta.get("x_dim", 0)))
    rec_per, data_per = _period(model_config.get("period")), _period(meta.get("period"))
    if rec != data or (rec_per is not None and data_per is not None and rec_per != data_per):
        raise CheckpointError(
            f"{what}: the model has pos_dim={rec[0]}, x_dim={rec[1]}, period={rec_per}; "
            f"the data have pos_dim={data[0]}, x_dim={data[1]}, period={data_per}"
        )


# --------------------------------------------------------------------------- the run


class TrainedRun:
    """A ``hepx train`` run directory, opened at one checkpoint.

    Use :meth:`open`. Attributes: ``directory``, ``layout`` (:class:`RunLayout`),
    ``checkpoint`` (its name), ``state`` (the migrated checkpoint), ``config``, ``epoch``.
    """

    def __init__(self, directory: Path, checkpoint: str, state: Mapping[str, Any]) -> None:
        self.directory = directory
        self.layout = RunLayout(directory)
        self.checkpoint = checkpoint
        self.state = state
        self.config: dict[str, Any] = state["config"]
        self.epoch: int = int(state.get("epoch", -1))

    @classmethod
    def open(cls, run_dir: str | os.PathLike, *, checkpoint: str = "best") -> TrainedRun:
        """Open ``run_dir`` at ``checkpoints/<checkpoint>.pt``.

        Raises:
            CheckpointError: no such directory, no such checkpoint, or not a hepx checkpoint.
        """
        directory = Path(run_dir)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: no such run directory")
        path = RunLayout(directory).checkpoint(checkpoint)
        if not path.exists():
            raise CheckpointError(
                f"{directory}: no checkpoints/{checkpoint}.pt; expected a run directory written "
                "by `hepx train`"
            )
        return cls(directory, checkpoint, load_checkpoint(path))

    def __repr__(self) -> str:
        m = self.config["model"]
        kind = self.state["dataset"].get("kind")
        return f"TrainedRun({self.directory}, {kind}, {m['method']} {m['backbone']}, epoch {self.epoch})"

    @property
    def checkpoint_path(self) -> Path:
        return self.layout.checkpoint(self.checkpoint)

    @property
    def method(self) -> str:
        """The model method: ``plain``, ``lri_bernoulli``, ``lri_gaussian``, ``gmt_lin``,
        ``gmt_sam`` or ``pointmask``."""
        return self.config["model"]["method"]

    @property
    def kind(self) -> DatasetKind:
        """The dataset kind the run was trained on.

        Raises:
            CheckpointError: the run does not record one (a generic dataset that is gone).
        """
        from hepx.kinds import get_kind

        name = self.state["dataset"].get("kind")
        if name is None:
            raise CheckpointError(f"{self.directory}: the run records no dataset kind")
        return get_kind(name)

    @property
    def reader_options(self) -> dict[str, Any]:
        """The reader options the training data were converted with."""
        return dict(self.state["dataset"].get("reader_options") or {})

    @property
    def eval_max_points(self) -> int | None:
        """Hits per evaluation batch the run was trained with (``train.
        eval_max_points_per_batch``; full events), ``None`` when it counted events: the default
        budget of scoring with this run."""
        return self.config["train"].get("eval_max_points_per_batch")

    @property
    def dataset_path(self) -> Path:
        """The training dataset's directory (:func:`resolve_dataset_path`)."""
        return resolve_dataset_path(self.config["dataset"]["path"])

    def model(self) -> nn.Module:
        """The model with this checkpoint's weights, in eval mode."""
        return model_from_checkpoint(self.state).eval()

    def dataset(self, path: str | os.PathLike | None = None) -> PointCloudDataset:
        """The training dataset, or the one at ``path``, checked against the model.

        Raises:
            InputError: the dataset is missing or of another kind than the run's.
            CheckpointError: the model does not fit its dimensions.
        """
        from hepx.data import load_dataset

        dpath = self.dataset_path if path is None else Path(path)
        try:
            ds = load_dataset(dpath)
        except InputError as err:
            raise InputError(
                f"run {self.directory}: cannot load its dataset {dpath} ({err})"
            ) from None
        kind, dkind = self.state["dataset"].get("kind"), ds.meta.get("kind")
        if kind is not None and kind != dkind:
            raise InputError(
                f"run {self.directory} was trained on a '{kind}' dataset but {dpath} holds '{dkind}'"
            )
        check_compatible(
            self.config["model"], ds.meta, what=f"run {self.directory} and data {dpath}"
        )
        if path is None:
            self._say_recorded_dataset(dpath, ds.meta)
        ds.meta["path"] = str(dpath)
        return ds

    def _say_recorded_dataset(self, dpath: Path, meta: Mapping[str, Any]) -> None:
        """Say that the run's recorded dataset path is followed, and whether its content is
        still what the run was trained on (a checkpoint's path is never followed silently)."""
        recorded, current = self.state["dataset"].get("fingerprint"), meta.get("fingerprint")
        if recorded is not None and recorded != current:
            log.warning(
                "run %s: the dataset at its recorded path %s is not the one it was trained on "
                "(other content); its splits are not the run's",
                self.directory,
                dpath,
            )
        else:
            log.info("run %s: using its recorded dataset %s", self.directory, dpath)

    def splits(self, path: str | os.PathLike | None = None) -> dict[str, PointCloudDataset]:
        """The run's train / val / test split of its dataset (or of the one at ``path``)."""
        d = self.config["dataset"]
        return self.dataset(path).split(d["split"], seed=d["split_seed"])

    def differences(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> list[str]:
        """What differs between this run and a training of the resolved ``config`` on the
        dataset of manifest ``meta``: config keys (``train.epochs`` included) and the data
        (another fingerprint, or none recorded). Empty: the run is that training."""
        from hepx.training.fit import config_diff

        recorded_dims = ("pos_dim", "x_dim", "period")
        old, new = (copy.deepcopy(dict(c)) for c in (self.config, json.loads(json.dumps(config))))
        for c in (old, new):
            c["dataset"].pop("path", None)
            c["model"] = {k: v for k, v in c["model"].items() if k not in recorded_dims}
        changed = config_diff(old, new)
        recorded, current = self.state["dataset"].get("fingerprint"), meta.get("fingerprint")
        if recorded is None or recorded != current:
            changed.append("the dataset's content (fingerprint)")
        return changed

    def test_metrics(self) -> dict[str, Any]:
        """``test_metrics.json`` of the run."""
        path = self.layout.test_metrics
        if not path.exists():
            raise CheckpointError(f"{self.directory}: no test_metrics.json (training unfinished?)")
        return json.loads(path.read_text())
