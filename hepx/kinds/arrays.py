"""Helpers of the kinds' reader-events -> point-cloud conversions (vectorised, no loops)."""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = ["event_fields", "flat", "offsets"]


def flat(array: ak.Array, dtype=None) -> np.ndarray:
    """A jagged ``[events, hits]`` array flattened to one contiguous numpy array ``[N]``."""
    out = ak.to_numpy(ak.flatten(array, axis=1))
    return out if dtype is None else np.ascontiguousarray(out, dtype=dtype)


def offsets(events: ak.Array, field: str) -> np.ndarray:
    """int64 offsets ``[S + 1]`` of ``events[field]``'s lists."""
    counts = ak.to_numpy(ak.num(events[field], axis=1)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(counts)])


def event_fields(events: ak.Array, source_file: int) -> dict[str, np.ndarray]:
    """Per-sample arrays of reader events: label, event id, input file index."""
    return {
        "y": ak.to_numpy(events.label).astype(np.int8),
        "event_id": ak.to_numpy(events.event_id).astype(np.int64),
        "source_file": np.full(len(events), source_file, dtype=np.int32),
    }
