"""YAML configuration files: safe loading (never eval) and ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hepx.errors import ConfigError


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Load a YAML mapping with ``yaml.safe_load``; errors name the file and the problem.

    A top-level ``include: other.yaml`` (relative to the file) is loaded first and
    deep-merged under this file's keys, so configs can share defaults.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({' '.join(str(err).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is not None:
        includes = [include] if isinstance(include, str) else include
        base: dict[str, Any] = {}
        for inc in includes:
            base = deep_merge(base, load_yaml(path.parent / inc))
        data = deep_merge(base, data)
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings; values are parsed as YAML scalars (safe)."""
    out = copy.deepcopy(dict(config))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. train.epochs=5)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"override {key}: cannot parse the value {raw!r} as YAML") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"override {key}: '{part}' is not a section of the config")
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
