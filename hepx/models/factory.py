"""``build_model``: a model config -> classifier / LRI model.

The keys of a model config, their types and defaults (the reference settings) are declared
once, in :data:`hepx.config.run.MODEL_SCHEMA` (the documentation's configuration reference is
generated from it). ``pos_dim``, ``x_dim`` and ``period`` are the data's dimensions, recorded
with a trained model: when present they must match the data's, otherwise
:class:`~hepx.errors.CheckpointError`.

The returned module carries ``model.config``: the fully resolved config (JSON-serialisable, with
``pos_dim``, ``x_dim`` and ``period`` recorded) to store in a checkpoint and pass back here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from hepx.config.run import METHODS, MODEL_SCHEMA, resolve_model_config
from hepx.config.schema import Field, defaults
from hepx.errors import CheckpointError, ConfigError
from hepx.models.backbones import BACKBONES
from hepx.models.classifier import GraphSpec, PointCloudClassifier
from hepx.models.gmt import GMTLin, GMTSam
from hepx.models.lri import LRIBernoulli, LRIGaussian
from hepx.models.pointmask import PointMask

__all__ = ["DEFAULT_CONFIG", "METHODS", "build_model", "resolve_config"]

#: The model defaults (the reference settings), from the run config's schema.
DEFAULT_CONFIG: dict[str, Any] = defaults(MODEL_SCHEMA)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def resolve_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a model config and fill in the defaults (without the recorded dimensions);
    see :func:`hepx.config.run.resolve_model_config`."""
    return resolve_model_config(config)


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
    per = _data_period(pos_dim, x_dim, period)
    _check_recorded(cfg, pos_dim, x_dim, per)
    cfg.update(pos_dim=pos_dim, x_dim=x_dim, period=per)
    scale = cfg["pos_scale"]
    spec = _graph_spec(
        cfg["graph"], None if per is None else [None if p is None else p * scale for p in per]
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
        pool=cfg["pool"],
    )
    model: nn.Module
    if cfg["method"] == "plain":
        model = clf
    elif cfg["method"] == "lri_bernoulli":
        model = LRIBernoulli(clf, dropout=cfg["dropout"], **cfg["bernoulli"])
    elif cfg["method"] == "gmt_lin":
        model = GMTLin(clf, dropout=cfg["dropout"], **cfg["bernoulli"])
    elif cfg["method"] == "gmt_sam":
        model = GMTSam(clf, dropout=cfg["dropout"], **cfg["bernoulli"], **cfg["gmt"])
    elif cfg["method"] == "pointmask":
        model = PointMask(clf, dropout=cfg["dropout"], **cfg["pointmask"])
    else:
        model = LRIGaussian(clf, dropout=cfg["dropout"], **cfg["gaussian"])
    model.config = cfg
    return model


def _data_period(
    pos_dim: int, x_dim: int, period: Sequence[float | None] | None
) -> list[float | None] | None:
    """The data's per-axis period, checked against its dimensions (``None``: no periodic axis)."""
    if not _is_int(pos_dim) or pos_dim < 1:
        raise ConfigError(f"pos_dim must be a positive integer, got {pos_dim!r}")
    if not _is_int(x_dim) or x_dim < 0:
        raise ConfigError(f"x_dim must be a non-negative integer, got {x_dim!r}")
    per = Field("period", nullable=True).check(None if period is None else list(period), "period")
    if per is not None and len(per) != pos_dim:
        raise ConfigError(f"period has {len(per)} entries, expected pos_dim = {pos_dim}")
    return None if per is None or all(p is None for p in per) else per


def _check_recorded(
    cfg: Mapping[str, Any], pos_dim: int, x_dim: int, per: list[float | None] | None
) -> None:
    """The dimensions a trained model records must be the data's."""
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


def _graph_spec(g: Mapping[str, Any], period: list[float | None] | None) -> GraphSpec:
    """The classifier's graph; ``period`` in the backbone frame."""
    return GraphSpec(
        kind=g["kind"],
        k=g["k"],
        r=g["r"],
        max_num_neighbors=g["max_num_neighbors"],
        loop=g["loop"],
        period=None if period is None else tuple(period),
        backend=g["backend"],
        space=g["space"],
    )
