"""The run and conversion configs shipped inside the package (``hepx/configs/``).

``hepx train actstrack/lri_bernoulli_egnn`` names a shipped config; a path to a YAML file
works as well. The shipped files are package data, so a wheel install has them.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from hepx.errors import ConfigError

__all__ = ["find_config", "shipped_config_dir", "shipped_configs"]


def shipped_config_dir() -> Path:
    """The directory of the shipped configs (``hepx/configs`` in the installed package)."""
    return Path(str(resources.files("hepx") / "configs"))


def shipped_configs() -> list[str]:
    """Names of the shipped configs, e.g. ``"tau3mu/lri_bernoulli_egnn"``.

    Example
    -------
    >>> "tau3mu/lri_bernoulli_egnn" in shipped_configs()
    True
    """
    root = shipped_config_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def find_config(name_or_path: str | os.PathLike) -> Path:
    """A config file: an existing path as given, else the shipped config of that name.

    Raises:
        ConfigError: neither a file nor a shipped config; the message lists the shipped ones.

    Example
    -------
    >>> find_config("tau3mu/lri_bernoulli_egnn").name
    'lri_bernoulli_egnn.yaml'
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).replace("\\", "/").removesuffix(".yaml")
    shipped = shipped_config_dir() / f"{name}.yaml"
    if not name.startswith(("/", ".")) and shipped.is_file():
        return shipped
    if path.exists():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    runs = [
        n for n in shipped_configs() if "/" in n and not n.startswith(("datasets/", "convert/"))
    ]
    raise ConfigError(
        f"{name_or_path}: no such config file and no shipped config of that name "
        f"(shipped run configs: {', '.join(runs)})"
    )
