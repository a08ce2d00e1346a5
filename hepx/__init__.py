"""hepx: interpretable geometric deep learning (LRI) on HEP tracking data.

``model = hepx.load(RUN_DIR)`` loads a trained run for notebooks (:mod:`hepx.api`).
Heavy submodules (torch, uproot, numba) are imported lazily so that ``import hepx`` is fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def numba_cache_dir() -> Path:
    """Where hepx's numba kernels are cached: ``$NUMBA_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/hepx/numba`` (default ``~/.cache/hepx/numba``), never the installed
    package (which may be read-only or shared between users and Python builds)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hepx" / "numba"


# numba reads NUMBA_CACHE_DIR when it is imported; when it was imported first, its config is
# set directly (the kernels' caches are located when hepx's modules define them, later).
os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
if "numba" in sys.modules:
    sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

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
    return sorted([*_SUBMODULES, "__version__", "load", "numba_cache_dir", "TrainedModel"])
