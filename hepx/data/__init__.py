"""Point-cloud datasets and graph construction.

- :func:`load_dataset` / :class:`PointCloudDataset`: cached datasets written by ``hepx convert``.
- :func:`convert`: input files -> cached dataset (through the kind's reader, :mod:`hepx.kinds`).
- :mod:`hepx.data.graph`: batched kNN and radius graphs (torch-cluster or vectorised torch).
"""

from hepx.data.convert import KINDS, convert
from hepx.data.dataset import (
    PointCloudArrays,
    PointCloudDataset,
    load_arrays,
    load_dataset,
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
