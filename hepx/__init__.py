"""hepx: interpretable geometric deep learning (LRI) on HEP tracking data.

``model = hepx.load(RUN_DIR)`` loads a trained run for notebooks (:mod:`hepx.api`).
Heavy submodules (torch, uproot, numba) are imported lazily so that ``import hepx`` is fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "config",
    "data",
    "errors",
    "evaluation",
    "explain",
    "inference",
    "io",
    "kinds",
    "models",
    "plot",
    "post",
    "run",
    "scoring",
    "sim",
    "training",
}


def __getattr__(name: str) -> Any:
    if name in ("load", "TrainedModel"):
        from hepx import api

        return getattr(api, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"hepx.{name}")
    raise AttributeError(f"module 'hepx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*_SUBMODULES, "__version__", "load", "TrainedModel"])
