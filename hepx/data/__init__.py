"""Point-cloud datasets and graph construction.

- :func:`load_dataset` / :class:`PointCloudDataset`: cached datasets written by ``hepx convert``.
- :func:`convert`: input files -> cached dataset (through the kind's reader, :mod:`hepx.kinds`).
- :mod:`hepx.data.store`: the on-disk format, without torch (conversion needs only it).
- :mod:`hepx.data.graph`: batched kNN and radius graphs (torch-cluster or vectorised torch).

The PyG dataset (and with it torch) is imported on first use of :class:`PointCloudDataset` or
:func:`load_dataset`, so that ``hepx convert`` never imports torch.
"""

from typing import Any

from hepx.data.convert import KINDS, convert
from hepx.data.store import (
    PointCloudArrays,
    load_arrays,
    read_manifest,
    save_arrays,
    split_indices,
)

__all__ = [
    "KINDS",
    "PointCloudArrays",
    "PointCloudDataset",
    "convert",
    "load_arrays",
    "load_dataset",
    "read_manifest",
    "save_arrays",
    "split_indices",
]

_TORCH_NAMES = ("PointCloudDataset", "load_dataset")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from hepx.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'hepx.data' has no attribute {name!r}")
