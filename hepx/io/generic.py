"""Generic point clouds (SynMol/PLBind style) in a documented columnar layout.

One row per sample, in Parquet or in a ROOT TTree (default name ``samples``):

============== ========================== ===================================================
column         type                       meaning
============== ========================== ===================================================
``y``          int (per sample)           the sample's class label (0/1)
``sample_id``  int (per sample, optional) an id to map results back (default: row number)
``pos_0`` ...  jagged float               coordinate ``d`` of each point; columns ``pos_0..``
``x_0`` ...    jagged float (optional)    point feature ``f``; columns ``x_0..``
``node_label`` jagged int (optional)      ground-truth importance of each point (0/1)
============== ========================== ===================================================

All jagged columns of a row must have the same length (the number of points).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

from hepx.atomic import atomic_file
from hepx.errors import InputError
from hepx.io.rootfile import iterate, open_tree

_POINT_COLUMN = re.compile(r"^(pos|x)_(\d+)$")


def read_generic(
    path: str | os.PathLike,
    *,
    tree: str = "samples",
    period: Sequence[float | None] | None = None,
    step_size: int | str = "100 MB",
    nonfinite: str = "error",
) -> ak.Array:
    """Read generic point clouds from Parquet (``.parquet``) or ROOT (``.root``).

    Parameters
    ----------
    path
        The file; its suffix picks the format.
    tree
        TTree name for ROOT input.
    period
        Optional period per coordinate (``None`` for a non-periodic axis), recorded with the
        data so that graphs wrap that axis.

    Returns
    -------
    awkward.Array
        One record per sample: ``sample_id`` (int64), ``y``, and ``points``, a jagged record of
        ``pos_0..pos_{D-1}``, ``x_0..x_{F-1}``, ``node_label`` when present and ``index`` (the
        point's position in the file's row).

    Example
    -------
    >>> samples = read_generic("synmol.parquet", nonfinite="drop")     # doctest: +SKIP
    >>> samples.attrs["hepx_report"]["dropped_nonfinite_points"]       # doctest: +SKIP
    0
    """
    path = Path(path)
    table, columns = _read_table(path, tree, step_size)
    pos_cols, point_cols = _point_columns(path, columns)
    if period is not None and len(period) != len(pos_cols):
        raise InputError(
            f"period has {len(period)} entries but the data has {len(pos_cols)} coordinates"
        )
    if len(table) == 0:
        raise InputError(f"{path}: holds no sample (0 rows); expected one row per point cloud")
    counts = _point_counts(table, point_cols, path)
    if nonfinite not in ("error", "drop"):
        raise InputError(f"nonfinite must be 'error' or 'drop', got {nonfinite!r}")
    n = len(table)
    sample_id = (
        ak.to_numpy(table["sample_id"]).astype(np.int64) if "sample_id" in columns else np.arange(n)
    )
    points = ak.zip({c: table[c] for c in point_cols})
    points = ak.with_field(points, ak.local_index(table[pos_cols[0]], axis=1), "index")
    value_cols = [c for c in point_cols if c != "node_label"]
    finite = _finite_points(table, value_cols, nonfinite, path)
    n_nonfinite = int(len(finite) - finite.sum())
    if n_nonfinite:
        points = points[ak.unflatten(finite, counts)]
        counts = ak.to_numpy(ak.num(points, axis=1))
    empty = counts == 0
    out = ak.zip(
        {
            "sample_id": sample_id[~empty],
            "y": ak.to_numpy(table["y"])[~empty],
            "points": points[~empty],
        },
        depth_limit=1,
    )
    report = {"events_read": n, "dropped_nonfinite_points": n_nonfinite}
    report["dropped_no_hits"] = int(empty.sum())
    report["events_kept"] = int((~empty).sum())
    if report["events_kept"] == 0:
        raise InputError(f"{path}: no sample has any point")
    attrs = {"hepx_report": report, "hepx_source": str(path)}
    if period is not None:
        attrs["hepx_period"] = [None if p is None else float(p) for p in period]
    return ak.Array(out, attrs=attrs)


def _point_counts(table: ak.Array, point_cols: Sequence[str], path: Path) -> np.ndarray:
    """Points per sample, checked equal across the jagged columns."""
    counts = ak.to_numpy(ak.num(table[point_cols[0]], axis=1))
    for c in point_cols[1:]:
        other = ak.to_numpy(ak.num(table[c], axis=1))
        if not np.array_equal(other, counts):
            bad = int(np.flatnonzero(other != counts)[0])
            raise InputError(
                f"{path}: jagged columns of mismatched length: {c} has {other[bad]} entries but "
                f"{point_cols[0]} has {counts[bad]} in sample {bad}"
            )
    return counts


def _finite_points(table: ak.Array, columns: Sequence[str], nonfinite: str, path: Path):
    """Flat boolean per point: all of ``columns`` finite; a non-finite value is an error
    unless ``nonfinite == "drop"``."""
    finite = None
    for c in columns:
        ok = np.isfinite(ak.to_numpy(ak.flatten(table[c], axis=1)).astype(np.float64))
        if not ok.all() and nonfinite == "error":
            raise InputError(
                f"{path}: column {c} has {int((~ok).sum())} non-finite values (NaN or inf); "
                "fix the file or read it with nonfinite: drop"
            )
        finite = ok if finite is None else finite & ok
    return finite


def _read_table(path: Path, tree: str, step_size: int | str) -> tuple[ak.Array, list[str]]:
    """The file's columns (Parquet, or the point-cloud branches of a ROOT TTree)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            table = ak.from_parquet(path)
        except Exception as err:
            raise InputError(
                f"{path}: not a readable Parquet file ({type(err).__name__}: {err})"
            ) from None
        return table, list(table.fields)
    if path.suffix == ".root":
        ttree = open_tree(path, tree)
        columns = [
            k
            for k in ttree.keys()
            if k in ("y", "sample_id", "node_label") or _POINT_COLUMN.match(k)
        ]
        chunks = list(iterate(ttree, columns, step_size=step_size)) if columns else []
        return (ak.concatenate(chunks) if chunks else ak.Array([])), columns
    raise InputError(f"{path}: unknown format '{path.suffix}' (expected .parquet or .root)")


def _point_columns(path: Path, columns: list[str]) -> tuple[list[str], list[str]]:
    """The coordinate columns and all per-point columns, checked to be a point-cloud layout."""
    pos_cols = sorted((c for c in columns if c.startswith("pos_")), key=lambda c: int(c[4:]))
    x_cols = sorted(
        (c for c in columns if c.startswith("x_") and _POINT_COLUMN.match(c)),
        key=lambda c: int(c[2:]),
    )
    if "y" not in columns or not pos_cols:
        raise InputError(
            f"{path}: not a generic point-cloud file: expected columns y, pos_0, pos_1, ... "
            f"(found: {', '.join(columns) or 'none'})"
        )
    expected = [f"pos_{d}" for d in range(len(pos_cols))]
    if pos_cols != expected:
        raise InputError(
            f"{path}: coordinate columns must be {', '.join(expected)}, found {', '.join(pos_cols)}"
        )
    point_cols = [*pos_cols, *x_cols, *(["node_label"] if "node_label" in columns else [])]
    return pos_cols, point_cols


def write_generic(
    path: str | os.PathLike,
    *,
    pos: ak.Array,
    y: np.ndarray,
    x: ak.Array | None = None,
    node_label: ak.Array | None = None,
    sample_id: np.ndarray | None = None,
) -> None:
    """Write point clouds in the generic layout (Parquet), atomically.

    ``pos`` is jagged [S, var, D]; ``x`` jagged [S, var, F]; ``node_label`` jagged [S, var].
    """
    pos = ak.Array(pos)
    columns = {"y": np.asarray(y)}
    if sample_id is not None:
        columns["sample_id"] = np.asarray(sample_id, dtype=np.int64)
    dim = len(ak.to_numpy(ak.flatten(pos, axis=1))[0]) if ak.sum(ak.num(pos)) else 0
    for d in range(dim):
        columns[f"pos_{d}"] = pos[:, :, d]
    if x is not None:
        x = ak.Array(x)
        for f in range(len(ak.to_numpy(ak.flatten(x, axis=1))[0])):
            columns[f"x_{f}"] = x[:, :, f]
    if node_label is not None:
        columns["node_label"] = ak.Array(node_label)
    with atomic_file(path) as tmp:
        ak.to_parquet(ak.zip(columns, depth_limit=1), tmp)
