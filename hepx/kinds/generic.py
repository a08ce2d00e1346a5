"""Generic point clouds (SynMol / PLBind style) in hepx's columnar layout (Parquet or ROOT)."""

from __future__ import annotations

from typing import Any, ClassVar

import awkward as ak
import numpy as np

from hepx.config.schema import Field
from hepx.kinds.base import DatasetKind

__all__ = ["Generic", "generic_arrays"]


class Generic(DatasetKind):
    """One row per sample: ``y``, optional ``sample_id``, jagged ``pos_0..``, ``x_0..``,
    ``node_label`` (see :func:`hepx.io.read_generic`). Dimensions come from the data."""

    name = "generic"
    title = "generic point clouds"
    reader_schema: ClassVar[dict[str, Field]] = {
        "tree": Field("str", "samples", doc="TTree name of ROOT input"),
        "period": Field("period", None, nullable=True, doc="period per coordinate"),
        "step_size": Field("size", "100 MB", doc="uproot read chunk"),
        "nonfinite": Field(
            "str", "error", choices=("error", "drop"), doc="NaN/inf in a point's values"
        ),
    }

    def reader(self):
        from hepx.io import read_generic

        return read_generic

    def to_arrays(self, events, *, source_file: int = 0):
        return generic_arrays(events, source_file=source_file)


def generic_arrays(samples: ak.Array, *, source_file: int = 0):
    """Generic point clouds (see :func:`hepx.io.read_generic`) -> point-cloud arrays.

    Example
    -------
    >>> arrays = generic_arrays(hepx.io.read_generic("synmol.parquet"))  # doctest: +SKIP
    >>> arrays.meta["pos_dim"]  # doctest: +SKIP
    3
    """
    from hepx.data.store import PointCloudArrays
    from hepx.kinds.arrays import flat, offsets

    pts = samples.points
    pos_names = sorted((f for f in pts.fields if f.startswith("pos_")), key=lambda f: int(f[4:]))
    x_names = sorted(
        (f for f in pts.fields if f.startswith("x_") and f[2:].isdigit()), key=lambda f: int(f[2:])
    )
    pos = np.stack([flat(pts[f], np.float32) for f in pos_names], axis=1)
    n_pts = len(pos)
    x = (
        np.stack([flat(pts[f], np.float32) for f in x_names], axis=1)
        if x_names
        else np.zeros((n_pts, 0), np.float32)
    )
    node_label = (
        flat(pts.node_label, np.int8) if "node_label" in pts.fields else np.zeros(n_pts, np.int8)
    )
    n = len(samples)
    period: Any = samples.attrs.get("hepx_period") if samples.attrs else None
    return PointCloudArrays(
        ptr=offsets(samples, "points"),
        point={
            "pos": pos,
            "x": x,
            "node_label": node_label,
            "hit_index": flat(pts["index"], np.int64),
        },
        sample={
            "y": ak.to_numpy(samples.y).astype(np.int8),
            "event_id": ak.to_numpy(samples.sample_id).astype(np.int64),
            "source_file": np.full(n, source_file, dtype=np.int32),
        },
        meta={
            "kind": "generic",
            "pos_dim": len(pos_names),
            "x_dim": len(x_names),
            "coords": pos_names,
            "pos_unit": "",
            "period": period or [None] * len(pos_names),
            "x_names": x_names,
        },
    )
