"""Configuration: safe YAML loading, ``--set`` overrides, the shipped configs and the schema.

* :func:`load_yaml`, :func:`apply_overrides`, :func:`deep_merge` (:mod:`hepx.config.loader`);
* :func:`find_config`, :func:`shipped_configs` (:mod:`hepx.config.shipped`), and
  :func:`shorten_schedule` (:mod:`hepx.config.shorten`);
* :func:`resolve_run_config`, :data:`RUN_SCHEMA` (:mod:`hepx.config.run`);
* :class:`Field`, :func:`validate` (:mod:`hepx.config.schema`), the one validator.
"""

from hepx.config.loader import apply_overrides, deep_merge, load_yaml
from hepx.config.run import RUN_SCHEMA, resolve_model_config, resolve_run_config
from hepx.config.schema import Field, validate
from hepx.config.shipped import find_config, shipped_config_dir, shipped_configs
from hepx.config.shorten import shorten_schedule

__all__ = [
    "RUN_SCHEMA",
    "Field",
    "apply_overrides",
    "deep_merge",
    "find_config",
    "load_yaml",
    "resolve_model_config",
    "resolve_run_config",
    "shipped_config_dir",
    "shipped_configs",
    "shorten_schedule",
    "validate",
]
