"""Hit filters declared as data (branch, operator, value), never evaluated as code.

A filter is a mapping ``{"branch": "mu_hit_station", "op": "==", "value": 1}``; a list of
filters is combined with logical AND. This is what the YAML configs hold, e.g.::

    filters:
      - {branch: mu_hit_station, op: "==", value: 1}
      - {branch: mu_hit_type, op: "!=", value: 0}
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepx.errors import ConfigError

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SET_OPS = ("in", "not in")
ALLOWED_OPS = (*_OPS, *_SET_OPS)


@dataclass(frozen=True)
class HitFilter:
    """One cut on a per-hit branch: keep hits where ``branch op value`` holds."""

    branch: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in ALLOWED_OPS:
            raise ConfigError(
                f"filter on '{self.branch}': unknown operator {self.op!r} "
                f"(allowed: {', '.join(ALLOWED_OPS)})"
            )
        if self.op in _SET_OPS:
            if not isinstance(self.value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.value
            ):
                raise ConfigError(
                    f"filter on '{self.branch}': operator {self.op!r} needs a list of numbers, "
                    f"got {self.value!r}"
                )
        elif not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            raise ConfigError(
                f"filter on '{self.branch}': value must be a number, got {self.value!r}"
            )

    def mask(self, array: ak.Array | np.ndarray) -> ak.Array | np.ndarray:
        """Boolean mask, same (jagged) shape as ``array``."""
        if self.op in _SET_OPS:
            flat = ak.flatten(array, axis=None) if isinstance(array, ak.Array) else array
            keep = np.isin(np.asarray(flat), np.asarray(self.value))
            if self.op == "not in":
                keep = ~keep
            if isinstance(array, ak.Array) and array.ndim > 1:
                return ak.unflatten(keep, ak.num(array))
            return keep
        return _OPS[self.op](array, self.value)


def parse_filters(spec: Sequence[Mapping[str, Any] | HitFilter] | None) -> list[HitFilter]:
    """Validate a list of filter mappings (from YAML) into :class:`HitFilter` objects."""
    if spec is None:
        return []
    if isinstance(spec, Mapping) or isinstance(spec, str):
        raise ConfigError("filters must be a list of {branch, op, value} mappings")
    out = []
    for i, item in enumerate(spec):
        if isinstance(item, HitFilter):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"filters[{i}] must be a mapping with keys branch, op, value")
        keys = set(item)
        if keys != {"branch", "op", "value"}:
            extra = sorted(keys - {"branch", "op", "value"})
            missing = sorted({"branch", "op", "value"} - keys)
            raise ConfigError(
                f"filters[{i}]: expected keys branch, op, value"
                + (f"; unknown {', '.join(extra)}" if extra else "")
                + (f"; missing {', '.join(missing)}" if missing else "")
            )
        if not isinstance(item["branch"], str):
            raise ConfigError(f"filters[{i}]: branch must be a string")
        out.append(HitFilter(item["branch"], str(item["op"]), item["value"]))
    return out
