"""YAML configuration files: safe loading (never eval) and ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hepx.config.schema import short_repr
from hepx.errors import ConfigError


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases: a config has no use for them, and
    nested aliases expand a few hundred bytes into gigabytes (a "billion laughs" file)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "allowed in hepx configs; write the values out"
            )
        return super().compose_node(parent, index)


#: The most bytes hepx reads of one config file.
MAX_CONFIG_BYTES = 1 << 20


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes, too large for a config file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); expected a YAML config file"
        ) from None


def load_yaml(path: str | os.PathLike, *, _including: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a YAML mapping safely (no Python objects, no aliases); errors name the file and
    the problem.

    A top-level ``include: other.yaml`` (or a list of files, relative to the file) is loaded
    first and deep-merged under this file's keys, so configs can share defaults; an include
    cycle is an error.

    Example
    -------
    >>> from hepx.config import find_config
    >>> load_yaml(find_config("tau3mu/lri_bernoulli_egnn"))["model"]["backbone"]
    'egnn'
    """
    path = Path(path)
    if path.resolve() in _including:
        chain = " -> ".join(str(p) for p in (*_including, path.resolve()))
        raise ConfigError(f"{path}: include cycle ({chain})")
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({' '.join(str(err).split())[:300]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is not None:
        includes = [include] if isinstance(include, str) else include
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise ConfigError(f"{path}: 'include' must be a file name or a list of file names")
        base: dict[str, Any] = {}
        for inc in includes:
            sub = load_yaml(path.parent / inc, _including=(*_including, path.resolve()))
            base = deep_merge(base, sub)
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
            value = yaml.load(raw, Loader=_NoAliasLoader)
        except (yaml.YAMLError, ConfigError):
            raise ConfigError(
                f"override {key}: cannot parse the value {short_repr(raw)} as YAML"
            ) from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"override {key}: '{part}' is not a section of the config")
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
