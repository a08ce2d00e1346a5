"""From reader output (awkward events) to cached point-cloud datasets, vectorised.

``events_to_arrays`` turns the awkward events of :func:`hepx.io.read_acts`,
:func:`hepx.io.read_cms_muon` or :func:`hepx.io.read_generic` into flat arrays with
``ak.flatten``/``ak.num`` only: no loop over events.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepx.data.dataset import PointCloudArrays, concat_arrays, save_arrays
from hepx.errors import ConfigError, InputError

KINDS = ("actstrack", "tau3mu", "generic")


def _flat(array: ak.Array, dtype=None) -> np.ndarray:
    out = ak.to_numpy(ak.flatten(array, axis=1))
    return out if dtype is None else out.astype(dtype, copy=False)


def _ptr(events: ak.Array, field: str) -> np.ndarray:
    counts = ak.to_numpy(ak.num(events[field], axis=1)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(counts)])


def _event_fields(events: ak.Array, source_file: int) -> dict[str, np.ndarray]:
    """Per-sample arrays of reader events: label, event id, input file index."""
    return {
        "y": ak.to_numpy(events.label).astype(np.int8),
        "event_id": ak.to_numpy(events.event_id).astype(np.int64),
        "source_file": np.full(len(events), source_file, dtype=np.int32),
    }


def actstrack_arrays(events: ak.Array, *, source_file: int = 0) -> PointCloudArrays:
    """ActsTrack events -> arrays: ``pos`` = hit (x, y, z) in mm, no point features."""
    hits = events.hits
    pos = np.stack([_flat(hits.x), _flat(hits.y), _flat(hits.z)], axis=1).astype(np.float32)
    mom = np.stack([_flat(hits.px), _flat(hits.py), _flat(hits.pz)], axis=1).astype(np.float64)
    norm = np.linalg.norm(mom, axis=1, keepdims=True)
    node_dir = np.divide(mom, norm, out=np.zeros_like(mom), where=norm > 0).astype(np.float32)
    return PointCloudArrays(
        ptr=_ptr(events, "hits"),
        point={
            "pos": pos,
            "x": np.zeros((len(pos), 0), dtype=np.float32),
            "node_label": _flat(hits.node_label, np.int8),
            "hit_index": _flat(hits.hit_index, np.int64),
            "track_ids": _flat(hits.track, np.int32),
            "node_dir": node_dir,
        },
        sample=_event_fields(events, source_file),
        meta={
            "kind": "actstrack",
            "pos_dim": 3,
            "x_dim": 0,
            "coords": ["x", "y", "z"],
            "pos_unit": "mm",
            "period": [None, None, None],
            "x_names": [],
        },
    )


def tau3mu_arrays(events: ak.Array, *, source_file: int = 0) -> PointCloudArrays:
    """Tau3Mu events -> arrays: ``pos`` = (eta, phi [rad]) with phi periodic, ``x`` = bend."""
    hits = events.hits
    pos = np.stack([_flat(hits.eta), _flat(hits.phi)], axis=1).astype(np.float32)
    return PointCloudArrays(
        ptr=_ptr(events, "hits"),
        point={
            "pos": pos,
            "x": _flat(hits.bend, np.float32)[:, None],
            "node_label": _flat(hits.node_label, np.int8),
            "hit_index": _flat(hits.hit_index, np.int64),
        },
        sample=_event_fields(events, source_file),
        meta={
            "kind": "tau3mu",
            "pos_dim": 2,
            "x_dim": 1,
            "coords": ["eta", "phi"],
            "pos_unit": "rad",
            "period": [None, float(2 * np.pi)],
            "x_names": ["bend"],
        },
    )


def generic_arrays(samples: ak.Array, *, source_file: int = 0) -> PointCloudArrays:
    """Generic point clouds (see :func:`hepx.io.read_generic`) -> arrays."""
    pts = samples.points
    pos_names = sorted((f for f in pts.fields if f.startswith("pos_")), key=lambda f: int(f[4:]))
    x_names = sorted((f for f in pts.fields if f.startswith("x_")), key=lambda f: int(f[2:]))
    pos = np.stack([_flat(pts[f], np.float32) for f in pos_names], axis=1)
    n_pts = len(pos)
    x = (
        np.stack([_flat(pts[f], np.float32) for f in x_names], axis=1)
        if x_names
        else np.zeros((n_pts, 0), np.float32)
    )
    node_label = (
        _flat(pts.node_label, np.int8) if "node_label" in pts.fields else np.zeros(n_pts, np.int8)
    )
    n = len(samples)
    period = samples.attrs.get("hepx_period") if samples.attrs else None
    return PointCloudArrays(
        ptr=_ptr(samples, "points"),
        point={
            "pos": pos,
            "x": x,
            "node_label": node_label,
            "hit_index": ak.to_numpy(ak.flatten(ak.local_index(pts.pos_0, axis=1))).astype(
                np.int64
            ),
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


def check_options(func: Callable, options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate ``options`` against ``func``'s keyword-only parameters: names and basic types.

    The expected type is that of the parameter's default; ``None`` is accepted wherever the
    default is a value (it means "off" for the readers' optional branches).
    """
    params = {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for key, value in options.items():
        if key not in params:
            raise ConfigError(f"{where}: unknown key '{key}' (allowed: {', '.join(params)})")
        default = params[key]
        if value is None or default is None:
            continue
        if isinstance(default, bool):
            allowed: tuple[type, ...] = (bool,)
        elif isinstance(default, (int, float)):
            allowed = (int, float) if isinstance(default, float) else (int,)
            if isinstance(value, bool):
                allowed = ()
        elif isinstance(default, (list, tuple)):
            allowed = (list, tuple)
        else:
            allowed = (type(default),)
        if key == "step_size":
            allowed = (int, str)
        if not isinstance(value, allowed):
            names = " or ".join(t.__name__ for t in allowed) or "a number"
            raise ConfigError(f"{where}: key '{key}' must be {names}, got {value!r}")
    return dict(options)


def _actstrack_pairs(inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Resolve ActsTrack inputs (directories or hits files) into (hits, particles) pairs."""
    candidates = (
        "particles.root",
        "particles_simulation.root",
        "particles_initial.root",
        "fatras_particles_initial.root",
    )
    pairs = []
    for item in inputs:
        item = Path(item)
        hits = item / "hits.root" if item.is_dir() else item
        if not hits.exists():
            raise InputError(
                f"{hits}: no such file (an ActsTrack input is a directory with hits.root and particles.root, or a hits file)"
            )
        particles = next((hits.parent / c for c in candidates if (hits.parent / c).exists()), None)
        if particles is None:
            raise InputError(
                f"{hits.parent}: no particles file next to {hits.name} (looked for {', '.join(candidates)})"
            )
        pairs.append((hits, particles))
    return pairs


def convert(
    kind: str,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    reader_options: Mapping[str, Any] | None = None,
    executor: Any = None,
) -> PointCloudArrays:
    """Read ``inputs`` with the reader of ``kind`` and write a dataset to ``out_dir``.

    Parameters
    ----------
    kind
        ``"actstrack"`` (inputs: directories with hits.root + particles.root, or hits files),
        ``"tau3mu"`` (CMS muon ntuples) or ``"generic"`` (Parquet/ROOT point clouds).
    reader_options
        Keyword arguments of the reader (``read_acts``, ``read_cms_muon``, ``read_generic``),
        e.g. from the ``reader:`` section of a YAML config; unknown keys are refused.
    executor
        Optional callable ``executor(func, items) -> list`` mapping the per-file work (e.g. a dask
        client's map/gather); default: in this process.
    """
    from hepx import io

    if kind not in KINDS:
        raise ConfigError(f"unknown dataset kind '{kind}' (allowed: {', '.join(KINDS)})")
    if not inputs:
        raise InputError("no input files given")
    reader = {"actstrack": io.read_acts, "tau3mu": io.read_cms_muon, "generic": io.read_generic}[
        kind
    ]
    options = check_options(reader, reader_options or {}, where=f"reader options for {kind}")
    items: list[Any] = (
        _actstrack_pairs(inputs) if kind == "actstrack" else [Path(p) for p in inputs]
    )
    tasks = [(kind, item, i, options) for i, item in enumerate(items)]
    parts = (
        list(executor(convert_one, tasks))
        if executor is not None
        else [convert_one(t) for t in tasks]
    )
    arrays = concat_arrays(parts)
    reports = [p.meta.pop("report", {}) for p in parts]
    arrays.meta.pop("report", None)
    save_arrays(
        arrays,
        out_dir,
        extra_manifest={
            "source_files": [
                [str(x) for x in it] if isinstance(it, tuple) else str(it) for it in items
            ],
            "reports": reports,
            "reader_options": options,
        },
    )
    return arrays


def convert_one(task: tuple[str, Any, int, Mapping[str, Any]]) -> PointCloudArrays:
    """Convert one input (a file, or a (hits, particles) pair): the unit of parallel work."""
    from hepx import io

    kind, item, index, options = task
    if kind == "actstrack":
        events = io.read_acts(item[0], item[1], **options)
        arrays = actstrack_arrays(events, source_file=index)
    elif kind == "tau3mu":
        events = io.read_cms_muon(item, **options)
        arrays = tau3mu_arrays(events, source_file=index)
    else:
        events = io.read_generic(item, **options)
        arrays = generic_arrays(events, source_file=index)
    arrays.meta["report"] = dict(events.attrs.get("hepx_report", {})) if events.attrs else {}
    return arrays
