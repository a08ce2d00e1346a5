"""The LRI authors' published data sets (processed PyTorch Geometric files) into hepx's format.

The reference code (Graph-COM/LRI) saves each processed data set with
``torch.save((data, slices, idx_split), path)``: ``data`` a collated
:class:`~torch_geometric.data.Data` (every sample's tensors concatenated), ``slices`` the
per-field offsets and ``idx_split`` the published ``{"train", "valid", "test"}`` indices.
:func:`import_lri` reads such a file without unpickling arbitrary objects
(``torch.load(weights_only=True)`` with only PyG's data classes and numpy arrays allowed; any
other object is refused, naming it) and writes a hepx dataset directory.

Field mapping (the reference's ``data/*.py``):

==============  ==============================================================  ============
LRI field       what it holds                                                   hepx field
==============  ==============================================================  ============
``pos``         ActsTrack: hit (x, y, z) in mm; Tau3Mu: (eta, phi [rad]);       ``pos``
                SynMol / PLBind: atom coordinates
``x``           ActsTrack: 8 track-truth features the reference never feeds     ``x`` (not
                its models (``feature_type: only_ones``); Tau3Mu: the bend;     for
                SynMol / PLBind: atom features                                  ActsTrack)
``node_label``  ground truth per point                                          ``node_label``
``y``           sample label                                                    ``y``
``node_dir``    ActsTrack: true momentum direction at each hit                  ``node_dir``
``track_ids``   ActsTrack: the hit's track in its event                         ``track_ids``
==============  ==============================================================  ============

Every sample also gets ``hit_index`` (its points' order), ``event_id`` (its index in the
file) and the published split as the sample field ``lri_split`` (0 train, 1 valid, 2 test;
-1 where the file has none). Fields of other shapes (PLBind's ligand ``x_lig`` / ``pos_lig``,
ActsTrack's ``signal_im`` ...) are not imported; the manifest lists them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hepx.errors import InputError
from hepx.torchfile import RefusedObject, UnreadableFile, load_weights_only

__all__ = ["import_lri", "read_lri_file"]

#: Kinds hepx can give an imported file (``None``: guessed from the fields).
LRI_KINDS = ("actstrack", "tau3mu", "generic")
_SPLIT_NAMES = ("train", "valid", "test")


def _allowed_globals() -> list[Any]:
    """PyG's data classes and numpy's array reconstruction: what a processed file may hold."""
    import numpy as np
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import BaseStorage, EdgeStorage, GlobalStorage, NodeStorage

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own _reconstruct
    allowed: list[Any] = [Data, DataEdgeAttr, DataTensorAttr, BaseStorage, GlobalStorage]
    allowed += [NodeStorage, EdgeStorage, np.ndarray, np.dtype, reconstruct]
    # files written under numpy 1 name the function by its old module path
    allowed.append((reconstruct, "numpy.core.multiarray._reconstruct"))
    allowed += [type(np.dtype(t)) for t in ("int64", "int32", "float32", "float64", "bool")]
    return allowed


def read_lri_file(path: str | os.PathLike) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(data, slices, idx_split)`` of a processed LRI file, loaded safely.

    Raises:
        InputError: missing, not a torch file, an object outside PyG's data classes, or not
            the ``(data, slices[, idx_split])`` layout.

    Example
    -------
    >>> data, slices, split = read_lri_file("tau3mu/processed/data.pt")  # doctest: +SKIP
    """

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected a processed LRI data set (data.pt)")
    try:
        state = load_weights_only(path, _allowed_globals())
    except RefusedObject as err:
        raise InputError(
            f"{path}: refused: it asks to load the Python object {err.name}, and hepx "
            "only loads PyG data and arrays; expected a processed LRI data set"
        ) from None
    except UnreadableFile as err:
        why = f" ({err.detail.split(':')[0]})" if err.detail else ", corrupted or foreign"
        raise InputError(
            f"{path}: not a readable torch file{why}; expected a processed LRI data set (data.pt)"
        ) from None
    return _unpack(path, state)


def _unpack(path: Path, state: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from torch_geometric.data import Data

    ok = isinstance(state, tuple) and len(state) in (2, 3)
    if not ok or not isinstance(state[0], Data) or not isinstance(state[1], dict):
        raise InputError(
            f"{path}: holds {type(state).__name__}, expected the reference's (data, slices, "
            "idx_split) tuple of a collated PyG Data"
        )
    split = state[2] if len(state) == 3 and isinstance(state[2], dict) else {}
    for field in ("pos", "y", "node_label"):
        if field not in state[1]:
            raise InputError(f"{path}: the data has no '{field}'; expected pos, y and node_label")
    return state[0], state[1], split


def _guess_kind(data: Any) -> str:
    pos_dim = data.pos.shape[1]
    if pos_dim == 3 and "track_ids" in data:
        return "actstrack"
    if pos_dim == 2 and data.get("x") is not None and data.x.shape[1] == 1:
        return "tau3mu"
    return "generic"


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _split_field(split: dict[str, Any], n: int, path: Path) -> np.ndarray:
    part = np.full(n, -1, dtype=np.int8)
    for code, name in enumerate(_SPLIT_NAMES):
        idx = _np(split.get(name, [])).astype(np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise InputError(f"{path}: idx_split['{name}'] points outside the {n} samples")
        part[idx] = code
    return part


def lri_arrays(data: Any, slices: dict[str, Any], split: dict[str, Any], kind: str, path: Path):
    """The :class:`~hepx.data.dataset.PointCloudArrays` of a collated LRI data set."""
    from hepx.data.store import PointCloudArrays

    ptr = _np(slices["pos"]).astype(np.int64)
    n_samples, sizes = len(ptr) - 1, np.diff(ptr)
    for field in ("node_label", "x"):
        if field in slices and not np.array_equal(_np(slices[field]), ptr):
            raise InputError(f"{path}: '{field}' is not one row per point of 'pos'")
    x = _np(data.x).astype(np.float32) if data.get("x") is not None else None
    if kind == "actstrack" or x is None:  # the reference never feeds ActsTrack's x to a model
        x = np.zeros((ptr[-1], 0), dtype=np.float32)
    point = {
        "pos": _np(data.pos).astype(np.float32),
        "x": x,
        "node_label": _np(data.node_label).reshape(-1).astype(np.int8),
        "hit_index": np.arange(ptr[-1], dtype=np.int64) - np.repeat(ptr[:-1], sizes),
    }
    for field in ("node_dir", "track_ids"):
        if field in slices and np.array_equal(_np(slices[field]), ptr):
            point[field] = _np(data[field])
    sample = {
        "y": _np(data.y).reshape(-1).astype(np.int8),
        "event_id": np.arange(n_samples, dtype=np.int64),
        "source_file": np.zeros(n_samples, dtype=np.int32),
        "lri_split": _split_field(split, n_samples, path),
    }
    meta = _meta(kind, point["pos"].shape[1], x.shape[1])
    return PointCloudArrays(ptr=ptr, point=point, sample=sample, meta=meta)


def _meta(kind: str, pos_dim: int, x_dim: int) -> dict[str, Any]:
    if kind == "tau3mu":
        from hepx.kinds.tau3mu import arrays_meta

        return arrays_meta()
    if kind == "actstrack":
        from hepx.kinds.actstrack import arrays_meta

        return arrays_meta()
    return {
        "kind": "generic",
        "pos_dim": pos_dim,
        "x_dim": x_dim,
        "coords": [f"pos_{i}" for i in range(pos_dim)],
        "pos_unit": "",
        "period": [None] * pos_dim,
        "x_names": [f"x_{i}" for i in range(x_dim)],
    }


def import_lri(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Import a processed LRI data set (``data.pt`` of the reference code) as a hepx dataset.

    Args:
        path: the processed file.
        out_dir: the dataset directory to write (atomically).
        kind: ``"actstrack"``, ``"tau3mu"`` or ``"generic"``; default: guessed from the
            fields (3-D positions with ``track_ids``: ActsTrack; 2-D positions with one
            feature: Tau3Mu; else generic).
        overwrite: replace what is at ``out_dir`` (only a hepx dataset is replaced without).

    Returns:
        The dataset's manifest (with ``lri_fields_not_imported``).

    Example
    -------
    >>> import_lri("tau3mu/processed/data.pt", "data/tau3mu_lri")["num_samples"]  # doctest: +SKIP
    """
    from hepx.atomic import check_output
    from hepx.data.store import is_dataset_dir, read_manifest, save_arrays

    if kind is not None and kind not in LRI_KINDS:
        raise InputError(f"unknown kind {kind!r} for an LRI file; expected {', '.join(LRI_KINDS)}")
    check_output(out_dir, overwrite=overwrite, is_ours=is_dataset_dir, what="output directory")
    path = Path(path)
    data, slices, split = read_lri_file(path)
    kind = kind or _guess_kind(data)
    if kind == "tau3mu" and (data.pos.shape[1] != 2 or data.x is None or data.x.shape[1] != 1):
        raise InputError(f"{path}: not Tau3Mu data (expected pos [N, 2] and x [N, 1])")
    if kind == "actstrack" and data.pos.shape[1] != 3:
        raise InputError(f"{path}: not ActsTrack data (expected pos [N, 3])")
    arrays = lri_arrays(data, slices, split, kind, path)
    imported = {*arrays.point, *arrays.sample}
    if arrays.meta["x_dim"] == 0:  # an empty x column stands in for ActsTrack's features
        imported.discard("x")
    extra = {
        "source_files": [str(path)],
        "lri_fields_not_imported": sorted(k for k in slices if k not in imported),
    }
    save_arrays(arrays, out_dir, extra_manifest=extra)
    return read_manifest(out_dir)
