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

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from hepx.data.store import (
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    OPTIONAL_POINT_FIELDS,
    POINT_FIELDS,
    SAMPLE_FIELDS,
    PointCloudArrays,
    file_fingerprint,
    is_dataset_dir,
    load_arrays,
    read_manifest,
    save_arrays,
    split_indices,
    write_dataset,
)
from hepx.errors import InputError

__all__ = [
    "ARRAYS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "OPTIONAL_POINT_FIELDS",
    "POINT_FIELDS",
    "SAMPLE_FIELDS",
    "PointCloudArrays",
    "PointCloudDataset",
    "file_fingerprint",
    "is_dataset_dir",
    "load_arrays",
    "load_dataset",
    "read_manifest",
    "save_arrays",
    "split_indices",
    "write_dataset",
]


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
