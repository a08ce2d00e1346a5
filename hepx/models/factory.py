"""``build_model``: a validated config dict -> classifier / LRI model.

Config keys (all optional; defaults are the reference settings)::

    backbone:        "dgcnn" | "point_transformer" | "egnn"            (default "dgcnn")
    method:          "plain" | "lri_bernoulli" | "lri_gaussian"        (default "plain")
    hidden_channels: int    (64)
    num_layers:      int    (4)
    dropout:         float  (0.2)   on each layer's node update, the classifier head and the
                     LRI extractor
    message_dropout: float  (0.0)   inside the per-edge message MLPs (DGCNN, EGNN); see
                     hepx.models.backbones.PointEncoder for why it is off. Checkpoints of
                     version 1 predate the key and had it equal to dropout.
    aggr:            null | "mean" | "add" | "max"  (null: the layer's own, DGCNN "mean" as in
                     the LRI reference, EGNN "add") neighbourhood aggregation of DGCNN ("mean",
                     "add", "max") and EGNN ("add", "mean"); Point Transformer has none to set
    pos_scale:       float  (1.0)   positions are multiplied by it first (ActsTrack: 0.001, mm -> m)
    unit_direction:  bool   (false) replace positions by their unit direction from the origin
                     first (the reference's ActsTrack representation)
    frame:           "global" | "beam"  ("global") coordinates the layers see; "beam" (x, y, z
                     data, beam along z, backbone frame in metres): edge vectors in each point's
                     cylindrical frame, the beam-line curvature and each point's (rho, z), see
                     hepx.models.backbones.PointEncoder; not for periodic coordinates
    graph:           {kind: "knn"|"radius", k: int, r: float, max_num_neighbors: int,
                      loop: bool, backend: "auto"|"torch"|"cluster",
                      space: "position"|"direction"}   (knn, k=5, r=1.0, 32, True, auto, position)
                      r is in the backbone frame (after pos_scale). space "direction" searches
                      neighbours among the unit directions from the origin while the layers
                      still see positions (see hepx.models.classifier.GraphSpec).
    bernoulli:       {temperature, init_r, decay_r, decay_interval: int, final_r}
                      (1.0, 0.9, 0.1, 10, 0.5)
    gaussian:        {pos_coef, min_var}   (1.0, 1e-6)
    pos_dim, x_dim, period:   dimensions recorded with a trained model (checkpoints); when
                      present they must match the data's, otherwise CheckpointError.

The returned module carries ``model.config``: the fully resolved config (JSON-serialisable, with
``pos_dim``, ``x_dim`` and ``period`` recorded) to store in a checkpoint and pass back here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from hepx.errors import CheckpointError, ConfigError
from hepx.models.backbones import BACKBONES
from hepx.models.backbones.base import FRAMES
from hepx.models.classifier import GRAPH_SPACES, GraphSpec, PointCloudClassifier
from hepx.models.lri import LRIBernoulli, LRIGaussian

__all__ = ["DEFAULT_CONFIG", "METHODS", "build_model", "resolve_config"]

METHODS = ("plain", "lri_bernoulli", "lri_gaussian")

DEFAULT_CONFIG: dict[str, Any] = {
    "backbone": "dgcnn",
    "method": "plain",
    "hidden_channels": 64,
    "num_layers": 4,
    "dropout": 0.2,
    "message_dropout": 0.0,
    "aggr": None,
    "pos_scale": 1.0,
    "unit_direction": False,
    "frame": "global",
    "graph": {
        "kind": "knn",
        "k": 5,
        "r": 1.0,
        "max_num_neighbors": 32,
        "loop": True,
        "backend": "auto",
        "space": "position",
    },
    "bernoulli": {
        "temperature": 1.0,
        "init_r": 0.9,
        "decay_r": 0.1,
        "decay_interval": 10,
        "final_r": 0.5,
    },
    "gaussian": {"pos_coef": 1.0, "min_var": 1e-6},
}

# key -> (type tag, extra check or choices)
_SCHEMA: dict[str, Any] = {
    "backbone": ("str", tuple(BACKBONES)),
    "method": ("str", METHODS),
    "hidden_channels": ("posint", None),
    "num_layers": ("posint", None),
    "dropout": ("prob", None),
    "message_dropout": ("prob", None),
    "aggr": ("optstr", ("mean", "add", "max")),
    "pos_scale": ("posfloat", None),
    "unit_direction": ("bool", None),
    "frame": ("str", FRAMES),
    "graph": (
        "dict",
        {
            "kind": ("str", ("knn", "radius")),
            "k": ("posint", None),
            "r": ("posfloat", None),
            "max_num_neighbors": ("posint", None),
            "loop": ("bool", None),
            "backend": ("str", ("auto", "torch", "cluster")),
            "space": ("str", GRAPH_SPACES),
        },
    ),
    "bernoulli": (
        "dict",
        {
            "temperature": ("posfloat", None),
            "init_r": ("prob", None),
            "decay_r": ("nonnegfloat", None),
            "decay_interval": ("posint", None),
            "final_r": ("prob", None),
        },
    ),
    "gaussian": ("dict", {"pos_coef": ("posfloat", None), "min_var": ("posfloat", None)}),
    "pos_dim": ("posint", None),
    "x_dim": ("nonnegint", None),
    "period": ("period", None),
}

_EXPECTED = {
    "str": "a string",
    "optstr": "null or a string",
    "posint": "a positive integer",
    "nonnegint": "a non-negative integer",
    "posfloat": "a positive number",
    "nonnegfloat": "a non-negative number",
    "prob": "a number in [0, 1)",
    "bool": "true or false",
    "dict": "a mapping",
    "period": "null or a list of null / positive numbers",
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_value(name: str, tag: str, extra: Any, value: Any) -> Any:
    ok = {
        "str": lambda v: isinstance(v, str),
        "optstr": lambda v: v is None or isinstance(v, str),
        "posint": lambda v: _is_int(v) and v > 0,
        "nonnegint": lambda v: _is_int(v) and v >= 0,
        "posfloat": lambda v: _is_num(v) and v > 0,
        "nonnegfloat": lambda v: _is_num(v) and v >= 0,
        "prob": lambda v: _is_num(v) and 0 <= v < 1,
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, Mapping),
        "period": lambda v: (
            v is None
            or (
                isinstance(v, Sequence)
                and not isinstance(v, str)
                and all(p is None or (_is_num(p) and p > 0) for p in v)
            )
        ),
    }[tag](value)
    if not ok:
        raise ConfigError(
            f"model config key {name!r} must be {_EXPECTED[tag]}, got {value!r} "
            f"({type(value).__name__})"
        )
    if tag in ("str", "optstr") and extra is not None and value is not None and value not in extra:
        raise ConfigError(
            f"model config key {name!r} must be one of {', '.join(extra)}, got {value!r}"
        )
    if tag == "dict":
        return _merge(name + ".", extra, DEFAULT_CONFIG[name], value)
    if tag == "period":
        return None if value is None else [None if p is None else float(p) for p in value]
    if tag in ("posfloat", "nonnegfloat", "prob"):
        return float(value)
    return value


def _merge(prefix: str, schema: Mapping[str, Any], defaults: Mapping[str, Any], given: Any) -> dict:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if key not in schema:
            raise ConfigError(
                f"unknown model config key {prefix + str(key)!r}; allowed: {', '.join(schema)}"
            )
        tag, extra = schema[key]
        out[key] = _check_value(prefix + key, tag, extra, value)
    return out


def resolve_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``config`` and fill in the defaults (without the recorded dimensions)."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(config).__name__}")
    return _merge("", _SCHEMA, DEFAULT_CONFIG, config)


def build_model(
    config: Mapping[str, Any] | None,
    *,
    pos_dim: int,
    x_dim: int,
    period: Sequence[float | None] | None = None,
) -> nn.Module:
    """Build a :class:`PointCloudClassifier`, :class:`LRIBernoulli` or :class:`LRIGaussian`.

    Args:
        config: model config (see the module docstring); unknown keys or wrong types raise
            :class:`~hepx.errors.ConfigError`.
        pos_dim: coordinates per point of the data (ActsTrack 3, Tau3Mu 2).
        x_dim: features per point of the data (ActsTrack 0, Tau3Mu 1).
        period: per-axis period of the data's positions in data units (Tau3Mu ``[None, 2 pi]``).

    Returns:
        The model, with ``model.config`` set to the resolved config.

    Raises:
        ConfigError: bad key/type/value.
        CheckpointError: ``config`` records ``pos_dim``/``x_dim``/``period`` that differ from the
            data's.
    """
    cfg = resolve_config(config)
    if not _is_int(pos_dim) or pos_dim < 1:
        raise ConfigError(f"pos_dim must be a positive integer, got {pos_dim!r}")
    if not _is_int(x_dim) or x_dim < 0:
        raise ConfigError(f"x_dim must be a non-negative integer, got {x_dim!r}")
    per = _check_value("period", "period", None, None if period is None else list(period))
    if per is not None and len(per) != pos_dim:
        raise ConfigError(f"period has {len(per)} entries, expected pos_dim = {pos_dim}")
    if per is not None and all(p is None for p in per):
        per = None
    rec = {k: cfg.get(k) for k in ("pos_dim", "x_dim")}
    if (rec["pos_dim"] is not None and rec["pos_dim"] != pos_dim) or (
        rec["x_dim"] is not None and rec["x_dim"] != x_dim
    ):
        raise CheckpointError(
            f"model was built for pos_dim={rec['pos_dim']}, x_dim={rec['x_dim']} but the data has "
            f"pos_dim={pos_dim}, x_dim={x_dim}; use a checkpoint trained on this dataset"
        )
    if "period" in cfg:
        rec_per = cfg["period"]
        if rec_per is not None and all(p is None for p in rec_per):
            rec_per = None
        if rec_per != per:
            raise CheckpointError(
                f"model was built for period={rec_per} but the data has period={per}; "
                "use a checkpoint trained on this dataset"
            )
    cfg.update(pos_dim=pos_dim, x_dim=x_dim, period=per)

    scale = cfg["pos_scale"]
    g = cfg["graph"]
    spec = GraphSpec(
        kind=g["kind"],
        k=g["k"],
        r=g["r"],
        max_num_neighbors=g["max_num_neighbors"],
        loop=g["loop"],
        period=None if per is None else tuple(None if p is None else p * scale for p in per),
        backend=g["backend"],
        space=g["space"],
    )
    backbone = BACKBONES[cfg["backbone"]](
        x_dim,
        pos_dim,
        hidden_channels=cfg["hidden_channels"],
        num_layers=cfg["num_layers"],
        dropout=cfg["dropout"],
        frame=cfg["frame"],
        message_dropout=cfg["message_dropout"],
        aggr=cfg["aggr"],
    )
    if cfg["frame"] == "beam" and per is not None:
        raise ConfigError(
            f"frame 'beam' needs Cartesian (x, y, z) positions, but the data has period={per}; "
            "use frame 'global'"
        )
    clf = PointCloudClassifier(
        backbone,
        spec,
        pos_scale=scale,
        unit_direction=cfg["unit_direction"],
        dropout=cfg["dropout"],
    )
    model: nn.Module
    if cfg["method"] == "plain":
        model = clf
    elif cfg["method"] == "lri_bernoulli":
        model = LRIBernoulli(clf, dropout=cfg["dropout"], **cfg["bernoulli"])
    else:
        model = LRIGaussian(clf, dropout=cfg["dropout"], **cfg["gaussian"])
    model.config = cfg
    return model
