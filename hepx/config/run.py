"""The run config: the schema of ``hepx train``'s YAML (sections dataset, model, train, eval).

Every key, its type, range and default is declared here once; :func:`resolve_run_config`
checks a config against it and fills in the defaults, :func:`resolve_model_config` does the
same for the ``model`` section alone (what :func:`hepx.models.build_model` takes). The
reference tables of the documentation are generated from these declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hepx.config.schema import ABSENT, Field, Schema, validate
from hepx.errors import ConfigError

__all__ = [
    "BACKBONE_NAMES",
    "DATASET_KINDS",
    "DATASET_SCHEMA",
    "EVAL_SCHEMA",
    "FRAMES",
    "GRAPH_SPACES",
    "LR_SCHEDULES",
    "METHODS",
    "MODEL_SCHEMA",
    "POOLS",
    "RUN_SCHEMA",
    "SELECTION_METRICS",
    "TRAIN_SCHEMA",
    "resolve_model_config",
    "resolve_run_config",
]

BACKBONE_NAMES = ("dgcnn", "point_transformer", "egnn")
METHODS = ("plain", "lri_bernoulli", "lri_gaussian", "gmt_lin", "gmt_sam", "pointmask")
SELECTION_METRICS = ("pred_auc", "pred_acc")
FRAMES = ("global", "beam")
GRAPH_SPACES = ("position", "direction")
#: Global pools of the classifier (``model.pool``).
POOLS = ("add", "mean")
LR_SCHEDULES = ("constant", "cosine")
DATASET_KINDS = ("actstrack", "tau3mu", "generic")

DATASET_SCHEMA: Schema = {
    "path": Field("path", None, nullable=True, doc="dataset directory written by hepx convert"),
    "kind": Field(
        "str", None, choices=DATASET_KINDS, nullable=True, doc="expected kind of the dataset"
    ),
    "split": Field("fractions", [0.7, 0.15, 0.15], doc="train / validation / test fractions"),
    "split_seed": Field("int", 0, doc="seed of the stratified random split"),
}

MODEL_SCHEMA: Schema = {
    "backbone": Field("str", "dgcnn", choices=BACKBONE_NAMES, doc="message-passing backbone"),
    "method": Field("str", "plain", choices=METHODS, doc="plain classifier or an LRI model"),
    "hidden_channels": Field("posint", 64, doc="width of every layer"),
    "num_layers": Field("posint", 4, doc="message-passing layers"),
    "dropout": Field("prob", 0.2, doc="on node updates, the head and the LRI extractor"),
    "message_dropout": Field("prob", 0.0, doc="inside the per-edge message MLPs"),
    "aggr": Field(
        "str",
        None,
        choices=("mean", "add", "max"),
        nullable=True,
        doc="neighbourhood aggregation (null: the layer's own)",
    ),
    "pos_scale": Field("posnumber", 1.0, doc="positions are multiplied by it first"),
    "unit_direction": Field("bool", False, doc="replace positions by unit directions"),
    "frame": Field("str", "global", choices=FRAMES, doc="coordinates the layers see"),
    "pool": Field(
        "str", "add", choices=POOLS, doc="global pool: add (the reference) or mean (full events)"
    ),
    "graph": {
        "kind": Field("str", "knn", choices=("knn", "radius"), doc="kNN or radius graph"),
        "k": Field("posint", 5, doc="neighbours per point (kNN, self-loop included)"),
        "r": Field("posnumber", 1.0, doc="radius in the backbone frame (radius graph)"),
        "max_num_neighbors": Field("posint", 32, doc="cap of the radius graph"),
        "loop": Field("bool", True, doc="self-loops"),
        "backend": Field("str", "auto", choices=("auto", "torch", "cluster"), doc="builder"),
        "space": Field("str", "position", choices=GRAPH_SPACES, doc="where neighbours are found"),
    },
    "bernoulli": {
        "temperature": Field("posnumber", 1.0, doc="relaxed-Bernoulli temperature"),
        "init_r": Field("unit", 0.9, doc="first prior keep probability r"),
        "decay_r": Field("nonnegnumber", 0.1, doc="r step"),
        "decay_interval": Field("posint", 10, doc="epochs between r steps"),
        "final_r": Field("prob", 0.5, doc="last r"),
        "mask_pool": Field(
            "bool", False, doc="also weight the pool by the mask (the reference: edges only)"
        ),
    },
    "gmt": {
        "sampling_trials": Field("posint", 1, doc="GMT-sam: hard mask draws per step"),
        "early_info_factor": Field(
            "posnumber", 1.0, doc="GMT-sam: info loss factor before the first r step"
        ),
    },
    "pointmask": {"t": Field("prob", 0.2, doc="PointMask: the mask's threshold")},
    "gaussian": {
        "pos_coef": Field("posnumber", 1.0, doc="noise frame over the backbone frame"),
        "min_var": Field("posnumber", 1e-6, doc="floor of the isotropic variance"),
    },
    # recorded with a trained model (checkpoints); must then match the data's
    "pos_dim": Field("posint", ABSENT, doc="coordinates per point (recorded)"),
    "x_dim": Field("nonnegint", ABSENT, doc="features per point (recorded)"),
    "period": Field("period", ABSENT, nullable=True, doc="per-axis period (recorded)"),
}

TRAIN_SCHEMA: Schema = {
    "epochs": Field("posint", 100, doc="all epochs, warm-up included"),
    "warmup": Field("nonnegint", 0, doc="epochs of the classifier alone before LRI"),
    "batch_size": Field("posint", 128, doc="samples per training batch (per process)"),
    "eval_batch_size": Field("posint", 256, doc="samples per validation / test batch"),
    "max_points_per_batch": Field(
        "posint",
        None,
        nullable=True,
        doc="points per training batch at most, per process; batch_size then caps the samples "
        "and a larger event is a batch alone (null: batch_size samples)",
    ),
    "eval_max_points_per_batch": Field(
        "posint",
        None,
        nullable=True,
        doc="points per validation / test batch at most; eval_batch_size then caps the samples "
        "(null: eval_batch_size samples)",
    ),
    "lr": Field("posnumber", 1.0e-3, doc="Adam learning rate of the classifier"),
    "weight_decay": Field("nonnegnumber", 1.0e-5, doc="of the classifier"),
    "extractor_lr": Field("posnumber", 1.0e-3, doc="Adam learning rate of the LRI extractor"),
    "extractor_weight_decay": Field("nonnegnumber", 1.0e-5, doc="of the extractor"),
    "pred_loss_coef": Field("nonnegnumber", 1.0, doc="weight of the prediction loss"),
    "info_loss_coef": Field("nonnegnumber", 1.0, doc="weight of the LRI information loss"),
    "seed": Field("int", 0, doc="seed of weights, batches and noise"),
    "max_batches_per_epoch": Field("posint", None, nullable=True, doc="cut epochs short"),
    "bn_recalibration_batches": Field(
        "nonnegint", 4, doc="batches of precise BatchNorm statistics before validation (0: off)"
    ),
    "ema_decay": Field("open_unit", None, nullable=True, doc="weight average (null: off)"),
    "ema_track_live": Field("bool", False, doc="validate the live weights too"),
    "compile": Field(
        "bool",
        False,
        doc="fuse the message-passing layers with torch.compile (same model up to float "
        "rounding; the first batches compile)",
    ),
    "lr_schedule": Field("str", "constant", choices=LR_SCHEDULES, doc="learning-rate schedule"),
    "selection_metric": Field(
        "str", "pred_auc", choices=SELECTION_METRICS, doc="validation metric choosing best.pt"
    ),
    "lr_decay_start": Field("nonnegint", 0, doc="first epoch of the cosine decay"),
    "lr_final_factor": Field("unit", 0.01, doc="last epoch's rate over the initial one"),
}

EVAL_SCHEMA: Schema = {
    "precision_k": Field("intlist", [12, 24, 30], doc="k of the precision@k metrics"),
}

RUN_SCHEMA: Schema = {
    "dataset": DATASET_SCHEMA,
    "model": MODEL_SCHEMA,
    "train": TRAIN_SCHEMA,
    "eval": EVAL_SCHEMA,
}


def resolve_model_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a ``model`` section and fill in its defaults.

    Example
    -------
    >>> resolve_model_config({"backbone": "egnn"})["hidden_channels"]
    64
    """
    return validate(MODEL_SCHEMA, config, where="model config")


def resolve_run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a whole run config (unknown keys, types, ranges) and fill in every default.

    Raises:
        ConfigError: with the dotted key, what was expected and what was given.

    Example
    -------
    >>> cfg = resolve_run_config({"dataset": {"path": "data/tau3mu"}})
    >>> cfg["train"]["epochs"], cfg["model"]["backbone"]
    (100, 'dgcnn')
    """
    if not isinstance(config, Mapping):
        raise ConfigError("run config must be a mapping with sections dataset, model, train, eval")
    out = validate(RUN_SCHEMA, config, where="run config")
    train = out["train"]
    if train["ema_track_live"] and train["ema_decay"] is None:
        raise ConfigError(
            "run config 'train.ema_track_live' compares the live weights with their average: "
            "set train.ema_decay as well (e.g. 0.995) or remove ema_track_live"
        )
    if sum(out["dataset"]["split"]) <= 0:
        raise ConfigError("run config 'dataset.split' must have a positive sum")
    if out["dataset"]["path"] is None:
        raise ConfigError(
            "run config 'dataset.path' is required (a directory written by `hepx convert`)"
        )
    out["dataset"]["path"] = str(out["dataset"]["path"])
    return out
