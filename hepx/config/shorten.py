"""A run config's schedule shortened to fewer epochs, keeping its shape."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from hepx.config.run import MODEL_SCHEMA
from hepx.config.schema import defaults
from hepx.errors import ConfigError

__all__ = ["shorten_schedule"]


def shorten_schedule(config: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """``config`` with ``train.epochs = epochs`` and the schedule compressed to fit.

    The warm-up keeps its fraction of the run but at most half of it; LRI-Bernoulli's prior
    ``r`` schedule is compressed (never stretched) so that it reaches ``final_r`` by 80 % of
    the run, where the reference's 100-300 epoch schedule applied unchanged to a short run
    would leave ``r`` at its start value and the extractor nearly unregularised; a
    learning-rate decay (``train.lr_decay_start``) starts at the same fraction of the run.
    The benchmarks and ``hepx demo`` shorten the shipped configs this way.

    Example
    -------
    >>> from hepx.config import find_config, load_yaml
    >>> cfg = shorten_schedule(load_yaml(find_config("tau3mu/lri_bernoulli_dgcnn")), 10)
    >>> cfg["train"]["epochs"], cfg["train"]["warmup"]
    (10, 5)
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"a shortened schedule needs epochs >= 1, got {epochs!r}")
    cfg = copy.deepcopy(dict(config))
    train = cfg.setdefault("train", {})
    ref_epochs, ref_warmup = train.get("epochs", 100), train.get("warmup", 0)
    train["epochs"] = epochs
    train["warmup"] = min(round(epochs * ref_warmup / ref_epochs), epochs // 2)
    if "lr_decay_start" in train:  # the decay keeps its place in the run
        train["lr_decay_start"] = round(epochs * train["lr_decay_start"] / ref_epochs)
    model = cfg.setdefault("model", {})
    if model.get("method") in ("lri_bernoulli", "gmt_lin", "gmt_sam"):
        bern = model.setdefault("bernoulli", {})
        ref = {**defaults(MODEL_SCHEMA)["bernoulli"], **bern}
        steps = max(1, math.ceil((ref["init_r"] - ref["final_r"]) / ref["decay_r"] - 1e-9))
        bern["decay_interval"] = min(ref["decay_interval"], max(1, int(0.8 * epochs / steps)))
    return cfg
