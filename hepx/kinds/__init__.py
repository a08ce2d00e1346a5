"""Dataset kinds: ActsTrack, Tau3Mu and generic point clouds, each one object.

>>> from hepx.kinds import get_kind
>>> get_kind("tau3mu").pos_dim
2

See :class:`hepx.kinds.base.DatasetKind` for what a kind knows.
"""

from __future__ import annotations

from typing import Any

from hepx.errors import ConfigError, InputError
from hepx.kinds.actstrack import ActsTrack, actstrack_arrays
from hepx.kinds.base import DatasetKind, ScoringChunk
from hepx.kinds.generic import Generic, generic_arrays
from hepx.kinds.tau3mu import Tau3Mu, tau3mu_arrays

__all__ = [
    "KINDS",
    "ActsTrack",
    "DatasetKind",
    "Generic",
    "ScoringChunk",
    "Tau3Mu",
    "actstrack_arrays",
    "detect_kind",
    "generic_arrays",
    "get_kind",
    "tau3mu_arrays",
]

#: name -> the kind (one instance each).
KINDS: dict[str, DatasetKind] = {k.name: k for k in (ActsTrack(), Tau3Mu(), Generic())}


def get_kind(kind: str | DatasetKind) -> DatasetKind:
    """The kind of that name (a kind is returned as it is).

    Raises:
        ConfigError: unknown name; the message lists the known ones.
    """
    if isinstance(kind, DatasetKind):
        return kind
    if kind not in KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]


def detect_kind(events: Any) -> DatasetKind:
    """The kind of reader (or annotated) events.

    Raises:
        InputError: not the output of a hepx reader.
    """
    fields = set(getattr(events, "fields", []) or [])
    if "hits" not in fields:
        raise InputError("events have no 'hits' field: not the output of a hepx reader")
    for kind in KINDS.values():
        if kind.matches(events):
            return kind
    raise InputError(
        "events are neither ActsTrack (hits + tracks) nor Tau3Mu (muon hits with eta, phi, bend)"
    )
