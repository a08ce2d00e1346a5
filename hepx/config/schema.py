"""The one config validator: declarative fields, defaults filled in, one-line errors.

Every configuration hepx reads (run configs, reader options, evaluation options) is described
by a *schema*, a mapping ``key -> Field`` (or ``key -> nested schema`` for a section), and
checked by :func:`validate`. Values are data, never code: nothing is evaluated.

Example
-------
>>> from hepx.config.schema import Field, validate
>>> schema = {"epochs": Field("posint", 100), "lr": Field("posnumber", 1e-3)}
>>> validate(schema, {"epochs": 5}, where="train")
{'epochs': 5, 'lr': 0.001}
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hepx.errors import ConfigError

__all__ = ["ABSENT", "Field", "Schema", "defaults", "describe", "short_repr", "validate"]


class _Absent:
    """Default of a field that is left out of the result unless given."""

    def __repr__(self) -> str:
        return "(absent)"


#: Default of a :class:`Field` that stays absent from the validated result when not given
#: (e.g. the data dimensions a trained model records).
ABSENT = _Absent()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_period(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(p is None or (_is_num(p) and p > 0) for p in v)


#: kind -> (test, what the error message says is expected)
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "any": (lambda v: True, "any value"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (_is_int, "an integer"),
    "posint": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "nonnegint": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "number": (_is_num, "a number"),
    "posnumber": (lambda v: _is_num(v) and v > 0, "a positive number"),
    "nonnegnumber": (lambda v: _is_num(v) and v >= 0, "a non-negative number"),
    "prob": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "open_unit": (lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1)"),
    "unit": (lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]"),
    "intlist": (
        lambda v: isinstance(v, list) and all(_is_int(k) and k > 0 for k in v) and len(v) > 0,
        "a list of positive integers",
    ),
    "fractions": (
        lambda v: isinstance(v, list) and len(v) == 3 and all(_is_num(f) and f >= 0 for f in v),
        "[train, val, test] fractions",
    ),
    "period": (_is_period, "a list of null / positive numbers"),
    "list": (lambda v: isinstance(v, (list, tuple)), "a list"),
    "mapping": (lambda v: isinstance(v, Mapping), "a mapping"),
    "path": (lambda v: isinstance(v, (str, os.PathLike)), "a path"),
    "size": (
        lambda v: (_is_int(v) and v > 0) or isinstance(v, str),
        "a number of entries or a size like '100 MB'",
    ),
}
_FLOAT_KINDS = {"number", "posnumber", "nonnegnumber", "prob", "open_unit", "unit"}


@dataclass(frozen=True)
class Field:
    """One configuration value.

    Args:
        kind: a key of the kinds table (``"posint"``, ``"prob"``, ``"str"``, ...).
        default: the value when the key is absent (copied).
        choices: allowed values (for strings).
        nullable: ``null`` (None) is allowed too.
        doc: what the value means, for generated documentation.
    """

    kind: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")

    def expected(self) -> str:
        """What a valid value is, in words."""
        text = (
            f"one of {', '.join(map(str, self.choices))}" if self.choices else _KINDS[self.kind][1]
        )
        return f"null or {text}" if self.nullable else text

    def check(self, value: Any, name: str) -> Any:
        """The value, normalised (numbers of float kinds as float), or a :class:`ConfigError`."""
        if value is None and self.nullable:
            return None
        test, _ = _KINDS[self.kind]
        if not test(value) or (self.choices is not None and value not in self.choices):
            raise ConfigError(f"{name} must be {self.expected()}, got {short_repr(value)}")
        if self.kind in _FLOAT_KINDS:
            return float(value)
        if self.kind == "period":
            return [None if p is None else float(p) for p in value]
        return copy.deepcopy(value)


#: ``key -> Field`` or ``key -> nested Schema`` (a section).
Schema = Mapping[str, Any]


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error line stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def defaults(schema: Schema) -> dict[str, Any]:
    """The schema's default values, nested like the schema."""
    return {
        k: (copy.deepcopy(f.default) if isinstance(f, Field) else defaults(f))
        for k, f in schema.items()
        if not (isinstance(f, Field) and f.default is ABSENT)
    }


def validate(
    schema: Schema, given: Mapping[str, Any] | None, *, where: str, prefix: str = ""
) -> dict[str, Any]:
    """Check ``given`` against ``schema`` and return it with every default filled in.

    Args:
        schema: ``key -> Field`` or ``key -> nested schema``.
        given: the user's values (``None``: all defaults).
        where: what is being configured, for the messages (``"run config"``).
        prefix: dotted path of ``given`` inside the whole config (``"model."``).

    Raises:
        ConfigError: an unknown key (the message lists the allowed ones) or a value of the
            wrong type or range (the message says what was expected).
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        name = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"{where} '{name}' must be a mapping, got {short_repr(given)}")
    for key in given:
        if key not in schema:
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}' (allowed: {', '.join(schema)})"
            )
    out: dict[str, Any] = {}
    for key, field in schema.items():
        if isinstance(field, Field):
            if key in given:
                out[key] = field.check(given[key], f"{where} '{prefix}{key}'")
            elif field.default is not ABSENT:
                out[key] = copy.deepcopy(field.default)
        else:
            out[key] = validate(field, given.get(key), where=where, prefix=f"{prefix}{key}.")
    return out


def describe(schema: Schema, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted key, expected, default, doc)`` for every field: the source of the reference
    tables in the documentation."""
    rows = []
    for key, field in schema.items():
        if isinstance(field, Field):
            rows.append((prefix + key, field.expected(), repr(field.default), field.doc))
        else:
            rows += describe(field, f"{prefix}{key}.")
    return rows
