"""Cached point-cloud datasets: a safe, versioned on-disk format and a PyG dataset over it.

On disk a dataset is a directory with

- ``manifest.json``: format name and version, the kind of data, dimensions, field list,
  source files, the readers' reports, the configuration used and the arrays' content
  fingerprint (sha256);
- ``arrays.npz``: flat arrays (uncompressed, loaded with ``allow_pickle=False``): per point
  ``pos`` [N, D], ``x`` [N, F], ``node_label`` [N], ``hit_index`` [N] (+ ``track_ids``,
  ``node_dir`` for ActsTrack), per sample ``y``, ``event_id``, ``source_file``, and ``ptr``
  [S + 1], the offsets of each sample's points.

No pickle anywhere, and no split frozen into the cache: splits are drawn at load time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from hepx.atomic import atomic_dir
from hepx.errors import InputError

FORMAT = "hepx-pointcloud"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

#: Per-point fields every dataset has, and those only some kinds have.
POINT_FIELDS = ("pos", "x", "node_label", "hit_index")
OPTIONAL_POINT_FIELDS = ("track_ids", "node_dir")
SAMPLE_FIELDS = ("y", "event_id", "source_file")


@dataclass
class PointCloudArrays:
    """Flat columnar point clouds: ``ptr`` offsets plus per-point and per-sample arrays.

    Attributes
    ----------
    ptr : np.ndarray, shape [S + 1]
        Sample ``i`` owns points ``ptr[i]:ptr[i + 1]``.
    point : dict[str, np.ndarray]
        Per-point arrays with first dimension N = ``ptr[-1]``.
    sample : dict[str, np.ndarray]
        Per-sample arrays with first dimension S.
    meta : dict
        ``kind``, ``pos_dim``, ``x_dim``, ``coords``, ``period``, ``x_names`` ...
    """

    ptr: np.ndarray
    point: dict[str, np.ndarray]
    sample: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_points = int(self.ptr[-1]) if len(self.ptr) else 0
        n_samples = len(self.ptr) - 1
        for name, arr in self.point.items():
            if len(arr) != n_points:
                raise InputError(f"point field '{name}' has {len(arr)} rows, expected {n_points}")
        for name, arr in self.sample.items():
            if len(arr) != n_samples:
                raise InputError(f"sample field '{name}' has {len(arr)} rows, expected {n_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_points(self) -> int:
        return int(self.ptr[-1])


def save_arrays(
    arrays: PointCloudArrays,
    out_dir: str | os.PathLike,
    *,
    extra_manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``arrays`` as a dataset directory, atomically (temporary name, renamed at the end)."""
    from hepx.data.writer import DatasetPart

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        part = DatasetPart(tmp / ".parts" / "00000")
        part.append(arrays)
        part.close(arrays.meta.get("report"))
        write_dataset(tmp, [part.directory], extra_manifest=extra_manifest)
    return out_dir


def write_dataset(
    directory: Path, parts: Sequence[Path], *, extra_manifest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Assemble dataset parts (:mod:`hepx.data.writer`) into ``directory``'s ``arrays.npz`` and
    ``manifest.json``, then remove the parts; returns the manifest."""
    import shutil

    from hepx.data.writer import write_npz

    summary = write_npz(parts, directory / ARRAYS)
    for part in parts:
        shutil.rmtree(part)
    with contextlib.suppress(OSError):  # the parts' folder, when now empty
        Path(parts[0]).parent.rmdir()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **summary["meta"],
        "num_samples": summary["num_samples"],
        "num_points": summary["num_points"],
        "num_positive": summary["num_positive"],
        "point_fields": summary["point_fields"],
        "sample_fields": summary["sample_fields"],
        "reports": summary["reports"],
        **(dict(extra_manifest) if extra_manifest else {}),
        "fingerprint": file_fingerprint(directory / ARRAYS),
    }
    text = json.dumps(manifest, indent=2, default=_json_default) + "\n"
    (directory / MANIFEST).write_text(text)
    return manifest


def file_fingerprint(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """``sha256:<hex>`` of a file's content, read in chunks: what a trained run records of
    its dataset, so that a run is never taken for one trained on other data."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a dataset directory written by hepx (its manifest says so)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path,)):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check a dataset's ``manifest.json``."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise InputError(f"{directory}: no such dataset directory (create one with `hepx convert`)")
    if not path.exists():
        raise InputError(
            f"{directory}: not a hepx dataset (no {MANIFEST}; create one with `hepx convert`)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: corrupted manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: a manifest is a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if int(manifest.get("version", -1)) > FORMAT_VERSION:
        raise InputError(
            f"{path}: dataset format version {manifest['version']} is newer than this hepx "
            f"supports ({FORMAT_VERSION}); upgrade hepx"
        )
    for key in ("point_fields", "sample_fields"):
        if not isinstance(manifest.get(key), dict):
            raise InputError(f"{path}: a damaged manifest: no '{key}' mapping; convert again")
    for key in ("kind", "pos_dim"):
        if key not in manifest:
            raise InputError(f"{path}: a damaged manifest: no '{key}'; convert again")
    return manifest


def load_arrays(directory: str | os.PathLike) -> PointCloudArrays:
    """Load a dataset directory into :class:`PointCloudArrays` (no pickle)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        with np.load(directory / ARRAYS, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise InputError(f"{directory}: missing {ARRAYS}") from None
    except Exception as err:
        raise InputError(
            f"{directory / ARRAYS}: unreadable or corrupted ({type(err).__name__}: {err})"
        ) from None
    missing = [
        k for k in ("ptr", *manifest["point_fields"], *manifest["sample_fields"]) if k not in data
    ]
    if missing:
        raise InputError(f"{directory / ARRAYS}: missing arrays {', '.join(missing)}")
    meta = {
        k: v
        for k, v in manifest.items()
        if k not in ("format", "version", "point_fields", "sample_fields")
    }
    return PointCloudArrays(
        ptr=data["ptr"],
        point={k: data[k] for k in manifest["point_fields"]},
        sample={k: data[k] for k in manifest["sample_fields"]},
        meta=meta,
    )


class PointCloudDataset(InMemoryDataset):
    r"""A PyG dataset of point clouds, one :class:`~torch_geometric.data.Data` per event.

    Each sample has ``pos`` [n, D], ``x`` [n, F], ``y`` [1, 1] (float), ``node_label`` [n],
    ``event_id`` [1], ``hit_index`` [n] and ``source_file`` [1]; ActsTrack samples also carry
    ``track_ids`` [n] and ``node_dir`` [n, 3] (unit true momentum direction at each hit).
    No graph is stored: models build it (the LRI-Gaussian noise moves the points first).

    Built directly from the flat arrays (no per-sample Python objects), so loading is fast.
    ``meta`` holds the manifest (``kind``, ``pos_dim``, ``x_dim``, ``period``, ...).
    """

    def __init__(self, arrays: PointCloudArrays, transform=None) -> None:
        super().__init__(None, transform)
        n_samples = arrays.num_samples
        tensors: dict[str, torch.Tensor] = {}
        slices: dict[str, torch.Tensor] = {}
        ptr = torch.from_numpy(arrays.ptr.astype(np.int64))
        sample_ptr = torch.arange(n_samples + 1)
        for name, arr in arrays.point.items():
            tensors[name] = _tensor(name, arr)
            slices[name] = ptr
        for name, arr in arrays.sample.items():
            t = _tensor(name, arr)
            # y is a float [1, 1] per sample, ready for BCE-with-logits.
            tensors[name] = t.view(-1, 1).float() if name == "y" else t
            slices[name] = sample_ptr
        self._data = Data(**tensors)
        self.slices = slices
        self.meta: dict[str, Any] = dict(arrays.meta)

    @property
    def num_point_features(self) -> int:
        return int(self.meta.get("x_dim", 0))

    @property
    def pos_dim(self) -> int:
        return int(self.meta["pos_dim"])

    @property
    def labels(self) -> torch.Tensor:
        """Per-sample labels of this (possibly index-selected) dataset, shape [len(self)]."""
        y = self._data.y.view(-1)
        return y if self._indices is None else y[torch.as_tensor(self.indices())]

    def split(
        self,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        *,
        seed: int = 0,
        names: Sequence[str] = ("train", "val", "test"),
        stratify: bool = True,
    ) -> dict[str, PointCloudDataset]:
        """Random split chosen now, with ``seed`` (stratified by label by default).

        Returns a dict ``name -> dataset view``; views share this dataset's storage.
        """
        idx = split_indices(self.labels.numpy(), fractions, seed=seed, stratify=stratify)
        if len(names) != len(idx):
            raise InputError(f"got {len(names)} split names for {len(idx)} fractions")
        base = np.asarray(self.indices())
        return {
            n: self.index_select(torch.from_numpy(base[i])) for n, i in zip(names, idx, strict=True)
        }

    def __repr__(self) -> str:
        return f"PointCloudDataset(kind={self.meta.get('kind')!r}, samples={len(self)})"

    def copy(self, idx=None) -> PointCloudDataset:
        out = super().copy(idx)
        out.meta = copy.deepcopy(self.meta)
        return out


def _tensor(name: str, arr: np.ndarray) -> torch.Tensor:
    if arr.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if arr.dtype.kind in "iub":
        return torch.from_numpy(np.ascontiguousarray(arr).astype(np.int64, copy=False))
    raise InputError(f"field '{name}' has unsupported dtype {arr.dtype}")


def split_indices(
    labels: np.ndarray,
    fractions: Sequence[float],
    *,
    seed: int = 0,
    stratify: bool = True,
) -> list[np.ndarray]:
    """Indices of a seeded random split into ``fractions`` (normalised if they do not sum to 1).

    With ``stratify`` each label value is split separately, so every part keeps the class ratio.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) < 1 or np.any(fractions < 0) or fractions.sum() <= 0:
        raise InputError(
            f"split fractions must be non-negative numbers with a positive sum, got {list(fractions)}"
        )
    fractions = fractions / fractions.sum()
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = rng.permutation(n)
    if stratify:
        # Spread each class evenly over the sequence (its i-th member sits at quantile
        # (i + 0.5) / n_class), so every contiguous cut keeps the class ratio.
        key = np.empty(n)
        for value in np.unique(labels):
            members = order[labels[order] == value]
            key[members] = (np.arange(len(members)) + 0.5) / len(members)
        order = order[np.argsort(key[order], kind="stable")]
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    return [np.sort(part) for part in np.split(order, bounds[:-1])]


def load_dataset(directory: str | os.PathLike, *, transform=None) -> PointCloudDataset:
    """Load a dataset written by ``hepx convert``.

    Examples
    --------
    >>> ds = hepx.data.load_dataset("data/tau3mu")          # doctest: +SKIP
    >>> splits = ds.split((0.7, 0.15, 0.15), seed=1)        # doctest: +SKIP
    >>> splits["train"][0]                                  # doctest: +SKIP
    Data(pos=[17, 2], x=[17, 1], node_label=[17], hit_index=[17], y=[1, 1], event_id=[1], ...)
    """
    return PointCloudDataset(load_arrays(directory), transform=transform)
